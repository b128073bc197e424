package dev.peregrine.tokenizer;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufMetadata;
import dev.peregrine.format.json.Json;
import java.nio.file.Files;
import java.nio.file.Path;

/** Builds the tokenizer a model file describes. */
public final class Tokenizers {
    public static final String KEY_MODEL = "tokenizer.ggml.model";

    private Tokenizers() {
    }

    /**
     * The tokenizer of GGUF metadata, chosen by {@code tokenizer.ggml.model} as llama.cpp does:
     * "llama" is SentencePiece BPE, "gpt2" byte-level BPE, "bert" WordPiece.
     *
     * @throws ModelFormatException if the key is missing, names a tokenizer Peregrine does not
     *                              support yet, or the vocabulary is malformed
     */
    public static Tokenizer fromGguf(GgufMetadata metadata) {
        String model = metadata.getString(KEY_MODEL);
        return switch (model) {
            case "llama" -> new SentencePieceTokenizer(Vocabulary.fromGguf(metadata));
            case "gpt2" -> ByteLevelBpeTokenizer.fromGguf(metadata);
            case "bert" -> WordPieceTokenizer.fromGguf(metadata);
            default -> throw new ModelFormatException("'" + KEY_MODEL + "' = '" + model
                    + "' is not supported yet (supported: llama, gpt2, bert)");
        };
    }

    /**
     * The tokenizer of a Hugging Face {@code tokenizer.json}, giving the ids and the decoded text of
     * Hugging Face's tokenizers library (see {@link HfTokenizer}).
     *
     * <p>Supported: BPE models (merges as "a b" strings or [a, b] pairs, {@code ignore_merges},
     * {@code byte_fallback}, unknown token, {@code fuse_unk}, subword prefix and suffix) and
     * WordPiece models; added tokens, special or not, with their {@code single_word},
     * {@code lstrip}, {@code rstrip} and {@code normalized} flags; normalizers NFC, NFD, NFKC, NFKD,
     * Lowercase, Strip, Prepend, Replace, BertNormalizer and Sequence; pre-tokenizers ByteLevel,
     * Split (regular expressions in java.util.regex with Unicode classes, Llama 3's, Qwen 2's and
     * GPT-2's expressions through hand-written scanners), Metaspace, Digits, Whitespace,
     * WhitespaceSplit, BertPreTokenizer, Punctuation, CharDelimiterSplit and Sequence;
     * post-processors TemplateProcessing (single sequences), ByteLevel, BertProcessing,
     * RobertaProcessing and Sequence; decoders ByteLevel, ByteFallback, Fuse, Replace, Strip,
     * Metaspace, WordPiece and Sequence.
     *
     * <p>Rejected with a {@link ModelFormatException} that names the JSON path: Unigram and
     * WordLevel models, BPE dropout, the normalizers StripAccents, Precompiled (SentencePiece's
     * compiled rules), Nmt and ByteLevel, the pre-tokenizers UnicodeScripts and FixedLength, the
     * decoders BPEDecoder and CTC, a post-processor Sequence with more than one processor that adds
     * tokens, and regular expressions that java.util.regex cannot compile. {@code truncation} and
     * {@code padding} are ignored (logged).
     *
     * <p>From {@code tokenizer_config.json}: BOS and EOS ({@code bos_token}, {@code eos_token}),
     * and, as transformers does when it loads a tokenizer, {@code add_bos_token} /
     * {@code add_eos_token} (true by default for the Llama and Gemma tokenizer classes), which then
     * decide the tokens put around a sequence instead of tokenizer.json's post-processor (so
     * DeepSeek-V3's files add BOS). transformers' decoding clean-up
     * ({@code clean_up_tokenization_spaces}) is not applied: decoding is the tokenizers library's.
     *
     * @param tokenizerConfigJson tokenizer_config.json, or null
     * @throws ModelFormatException if a file is missing, unreadable or malformed, or uses something
     *                              not supported; the message names the file and the JSON path
     */
    public static HfTokenizer fromHuggingFace(Path tokenizerJson, Path tokenizerConfigJson) {
        Object json = Json.read(tokenizerJson);
        Object config = tokenizerConfigJson == null ? null : Json.read(tokenizerConfigJson);
        return HfTokenizerReader.read(json, tokenizerJson, config, tokenizerConfigJson);
    }

    /**
     * A Hugging Face directory's tokenizer: its tokenizer.json (the caller has checked it is there)
     * with its tokenizer_config.json where it has one, read as {@link #fromHuggingFace} reads them
     * (for the command line; a model's load resolves the two itself, the chat template needing the latter).
     */
    public static HfTokenizer fromHuggingFaceDirectory(Path dir) {
        Path config = dir.resolve("tokenizer_config.json");
        return fromHuggingFace(dir.resolve("tokenizer.json"), Files.isRegularFile(config) ? config : null);
    }
}
