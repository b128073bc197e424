package dev.peregrine.tokenizer;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.format.gguf.GgufArray;
import dev.peregrine.format.gguf.GgufMetadata;
import dev.peregrine.format.gguf.GgufValueType;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.FieldSource;

/**
 * Which tokens end a generation: llama.cpp's rules for GGUF vocabularies (llama-vocab.cpp,
 * {@code llama_vocab::impl::load}: the EOS, EOT, EOM and FIM pad/repo/separator ids, the texts it
 * ends on whatever the file says, and its two exceptions), and for Hugging Face tokenizers the
 * {@code eos_token_id}s of config.json and generation_config.json on top.
 */
class EndOfGenerationTest {

    /** The texts llama.cpp ends a generation on (its list, then the FIM pad, repo and separator texts). */
    static final List<String> TEXTS = List.of(
            "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
            "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
            "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
            "<｜end▁of▁sentence｜>", "[e~[",
            "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
            "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>");

    /** A "llama" vocabulary of {@code <unk>}, {@code <s>}, the EOS "<stop>", then {@code extra}, then "▁a", "b". */
    private static Map<String, Object> metadata(String... extra) {
        List<String> tokens = new ArrayList<>(List.of("<unk>", "<s>", "<stop>"));
        tokens.addAll(List.of(extra));
        tokens.addAll(List.of("▁a", "b"));
        int n = tokens.size();
        long[] types = new long[n];
        Arrays.fill(types, Vocabulary.NORMAL);
        types[0] = Vocabulary.UNKNOWN;
        types[1] = Vocabulary.CONTROL;
        types[2] = Vocabulary.CONTROL;
        Map<String, Object> m = new HashMap<>();
        m.put(Tokenizers.KEY_MODEL, "llama");
        m.put(Vocabulary.KEY_TOKENS, new GgufArray(GgufValueType.STRING, tokens.toArray(String[]::new)));
        m.put(Vocabulary.KEY_SCORES, new GgufArray(GgufValueType.FLOAT32, new float[n]));
        m.put(Vocabulary.KEY_TOKEN_TYPES, new GgufArray(GgufValueType.INT32, types));
        return m;
    }

    private static VocabularyTokenizer tokenizer(Map<String, Object> m) {
        return (VocabularyTokenizer) Tokenizers.fromGguf(GgufMetadata.of(Path.of("test.gguf"), m));
    }

    private static int[] endOfGeneration(Tokenizer t) {
        return IntStream.range(0, t.vocabularySize()).filter(t::isEndOfGeneration).toArray();
    }

    @ParameterizedTest
    @FieldSource("TEXTS")
    void everyTextLlamaCppEndsOnEndsAGenerationAndIsAControlToken(String text) {
        VocabularyTokenizer t = tokenizer(metadata(text));
        assertThat(endOfGeneration(t)).as("EOS and " + text).containsExactly(2, 3);
        assertThat(t.tokenBytes(3)).as("control tokens decode to nothing").isEmpty();
        assertThat(t.encode(text, false, true)).containsExactly(3);
    }

    @Test
    void idsTheFileNamesEndAGeneration() {
        Map<String, Object> m = metadata("x", "y", "z", "v", "w", "u");
        m.put(Vocabulary.KEY_EOS, 3L);
        m.put(Vocabulary.KEY_EOT, 4L);
        m.put(Vocabulary.KEY_EOM, 5L);
        m.put(Vocabulary.KEY_FIM_PAD, 6L);
        m.put(Vocabulary.KEY_FIM_REP, 7L);
        m.put(Vocabulary.KEY_FIM_SEP, 8L);
        VocabularyTokenizer t = tokenizer(m);
        assertThat(endOfGeneration(t)).containsExactly(3, 4, 5, 6, 7, 8);
        assertThat(t.vocabulary().endOfGenerationIds()).containsExactly(6, 7, 8);

        // a FIM id outside the vocabulary is ignored, as llama.cpp ignores it (with a warning)
        m.put(Vocabulary.KEY_FIM_PAD, 1000L);
        m.put(Vocabulary.KEY_FIM_SEP, 0xFFFF_FFFFL);
        assertThat(tokenizer(m).vocabulary().endOfGenerationIds()).containsExactly(7);
        assertThat(endOfGeneration(tokenizer(m))).containsExactly(3, 4, 5, 7);
    }

    @Test
    void withoutKeysOnlyEosAndTheTextsEnd() {
        VocabularyTokenizer t = tokenizer(metadata("<|im_start|>", "<|im_end|>", "<think>"));
        assertThat(endOfGeneration(t)).containsExactly(2, 4);
        assertThat(t.vocabulary().endOfGenerationIds()).isEmpty();
    }

    @Test
    void harmonyAndSolarOpenEndOfMessageIsNotTheEndOfGeneration() {
        // gpt-oss: <|end|> closes a message; <|return|> and <|call|> end the generation. llama.cpp
        // drops <|end|> from the list and makes it user-defined (so it decodes to its text).
        VocabularyTokenizer harmony = tokenizer(metadata("<|start|>", "<|end|>", "<|return|>", "<|call|>"));
        assertThat(endOfGeneration(harmony)).containsExactly(2, 5, 6);
        assertThat(new String(harmony.tokenBytes(4), UTF_8)).isEqualTo("<|end|>");
        assertThat(harmony.encode("▁a<|end|>", false, false)).as("user-defined: matched unparsed").endsWith(4);

        VocabularyTokenizer solar = tokenizer(metadata("<|end|>", "<|calls|>", "<|flush|>"));
        assertThat(endOfGeneration(solar)).containsExactly(2, 4, 5);

        // Phi-3 has <|end|> alone: it ends a generation
        assertThat(endOfGeneration(tokenizer(metadata("<|end|>", "<|return|>")))).containsExactly(2, 3, 4);
    }

    @Test
    void gemma4ClosingTagIsNormalText() {
        Map<String, Object> m = metadata("<eos>", "</s>", "<|tool_response>", "<turn|>");
        m.put(Vocabulary.KEY_EOS, 3L);
        VocabularyTokenizer gemma = tokenizer(m);
        assertThat(endOfGeneration(gemma)).containsExactly(3, 5, 6);
        assertThat(gemma.isEndOfGeneration(4)).isFalse();

        assertThat(endOfGeneration(tokenizer(metadata("</s>", "<turn|>")))).as("without <|tool_response>")
                .containsExactly(2, 3, 4);
    }

    @Test
    void realVocabularies() {
        // Llama 3: <|end_of_text|> (EOS), <|eot_id|>; its 128008 is still a reserved token
        Tokenizer llama3 = TokenizerFiles.load(TokenizerFiles.LLAMA_BPE);
        assertThat(endOfGeneration(llama3)).containsExactly(128001, 128009);
        Tokenizer phi3 = TokenizerFiles.load(TokenizerFiles.PHI_3);
        assertThat(endOfGeneration(phi3)).containsExactly(2, 32000, 32007);
        assertThat(phi3.piece(2)).isEqualTo("</s>");
        assertThat(phi3.piece(32000)).isEqualTo("<|endoftext|>");
        Tokenizer starcoder = TokenizerFiles.load(TokenizerFiles.STARCODER);
        assertThat(Arrays.stream(endOfGeneration(starcoder)).mapToObj(starcoder::piece))
                .containsExactly("<|endoftext|>", "<fim_pad>");
    }

    // ---- Hugging Face ---------------------------------------------------------------------------

    @Test
    void huggingFaceEosIdsOfTheModelFilesAreAdded() {
        HfTokenizer llama3 = HfTokenizerTest.tokenizer("llama3");
        assertThat(endOfGeneration(llama3)).containsExactly(128001, 128009);

        // Llama 3.1 Instruct's generation_config.json: [128001, 128008, 128009]; a fine-tune may
        // name any token, here a reserved one
        HfTokenizer more = llama3.withEndOfGeneration(128001, 128008, 128009, 128002);
        assertThat(endOfGeneration(more)).containsExactly(128001, 128002, 128008, 128009);
        assertThat(endOfGeneration(llama3)).as("the original is unchanged").containsExactly(128001, 128009);
        assertThat(more.encode("<|begin_of_text|>Hello<|eot_id|>", true, true))
                .containsExactly(llama3.encode("<|begin_of_text|>Hello<|eot_id|>", true, true));
        assertThat(more.eosId()).isEqualTo(llama3.eosId());
        assertThat(more.decode(new int[] {9906, 128002})).isEqualTo(llama3.decode(new int[] {9906, 128002}));

        // ids past the tokenizer (an embedding table padded past it) are left out
        assertThat(endOfGeneration(llama3.withEndOfGeneration(200_000))).containsExactly(128001, 128009);
        assertThat(llama3.withEndOfGeneration()).isSameAs(llama3);
    }

    @Test
    void qwen3EndsOnItsEndOfTextAndEndOfTurnAndFimPadding() {
        HfTokenizer qwen3 = HfTokenizerTest.tokenizer("qwen3");
        // "</s>" is an ordinary token of Qwen's vocabulary, but llama.cpp ends on that text too
        // (added for PaddleOCR), and so does a GGUF conversion of Qwen 3
        assertThat(Arrays.stream(endOfGeneration(qwen3)).mapToObj(qwen3::piece)).containsExactly(
                "</s>", "<|endoftext|>", "<|im_end|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>");
    }
}
