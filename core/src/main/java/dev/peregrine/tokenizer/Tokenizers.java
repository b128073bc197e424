package dev.peregrine.tokenizer;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufMetadata;

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
}
