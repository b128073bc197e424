package dev.peregrine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufArray;
import dev.peregrine.format.gguf.GgufMetadata;
import dev.peregrine.format.gguf.GgufValueType;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

class VocabularyTest {
    private static final String[] TOKENS = {"<unk>", "<s>", "</s>", "<0x41>", "▁a", "b"};

    /** A small valid "llama" vocabulary; tests change or remove entries. */
    private static Map<String, Object> metadata() {
        Map<String, Object> m = new HashMap<>();
        m.put(Tokenizers.KEY_MODEL, "llama");
        m.put(Vocabulary.KEY_TOKENS, new GgufArray(GgufValueType.STRING, TOKENS.clone()));
        m.put(Vocabulary.KEY_SCORES, new GgufArray(GgufValueType.FLOAT32, new float[] {0, 0, 0, 0, -1, -2}));
        m.put(Vocabulary.KEY_TOKEN_TYPES, new GgufArray(GgufValueType.INT32, new long[] {2, 3, 3, 6, 1, 1}));
        return m;
    }

    private static Vocabulary vocabulary(Map<String, Object> m) {
        return Vocabulary.fromGguf(GgufMetadata.of(Path.of("test.gguf"), m));
    }

    private static Tokenizer tokenizer(Map<String, Object> m) {
        return Tokenizers.fromGguf(GgufMetadata.of(Path.of("test.gguf"), m));
    }

    @Test
    void absentKeysTakeLlamaCppDefaultsForTheLlamaModel() {
        // llama.cpp llama_vocab::impl::load, tokenizer model "llama": BOS 1, EOS 2, UNK 0, add BOS,
        // no EOS, add_space_prefix true
        Vocabulary v = vocabulary(metadata());
        assertThat(v.bosId()).isEqualTo(1);
        assertThat(v.eosId()).isEqualTo(2);
        assertThat(v.unkId()).isZero();
        assertThat(v.padId()).isEqualTo(-1);
        assertThat(v.eotId()).isEqualTo(-1);
        assertThat(v.addBos()).isTrue();
        assertThat(v.addEos()).isFalse();
        assertThat(v.addSpacePrefix()).isTrue();
    }

    @Test
    void readsStoredIdsAndFlags() {
        Map<String, Object> m = metadata();
        m.put(Vocabulary.KEY_BOS, 2L);
        m.put(Vocabulary.KEY_EOS, 1L);
        m.put(Vocabulary.KEY_PAD, 0xFFFF_FFFFL); // "none", as converters write it
        m.put(Vocabulary.KEY_ADD_BOS, false);
        m.put(Vocabulary.KEY_ADD_EOS, true);
        m.put(Vocabulary.KEY_ADD_SPACE_PREFIX, false);
        Vocabulary v = vocabulary(m);
        assertThat(v.bosId()).isEqualTo(2);
        assertThat(v.eosId()).isEqualTo(1);
        assertThat(v.padId()).isEqualTo(-1);
        assertThat(v.addBos()).isFalse();
        assertThat(v.addEos()).isTrue();
        assertThat(v.addSpacePrefix()).isFalse();
    }

    @Test
    void addsEosAndHonoursAnAbsentSpacePrefix() {
        Map<String, Object> m = metadata();
        m.put(Vocabulary.KEY_ADD_EOS, true);
        m.put(Vocabulary.KEY_ADD_SPACE_PREFIX, false);
        // Without the prefix "a" is no token and has no byte token <0x61>: it becomes <unk>.
        // With it, "▁a" is a token.
        assertThat(tokenizer(m).encode("ab")).containsExactly(1, 0, 5, 2);
        assertThat(tokenizer(metadata()).encode("ab")).containsExactly(1, 4, 5);
    }

    @Test
    void defaultIdsOutsideATinyVocabularyAreDropped() {
        Map<String, Object> m = metadata();
        m.put(Vocabulary.KEY_TOKENS, new GgufArray(GgufValueType.STRING, new String[] {"<unk>", "<s>"}));
        m.remove(Vocabulary.KEY_SCORES);
        m.remove(Vocabulary.KEY_TOKEN_TYPES);
        Vocabulary v = vocabulary(m);
        assertThat(v.eosId()).isEqualTo(-1);
        assertThat(v.bosId()).isEqualTo(1);
        assertThat(v.scores()).containsExactly(0f, 0f);
        assertThat(v.tokenTypes()).containsExactly(Vocabulary.NORMAL, Vocabulary.NORMAL);
    }

    @Test
    void lengthMismatchNamesTheKey() {
        Map<String, Object> m = metadata();
        m.put(Vocabulary.KEY_SCORES, new GgufArray(GgufValueType.FLOAT32, new float[] {0, 0, 0}));
        assertThatThrownBy(() -> vocabulary(m)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(Vocabulary.KEY_SCORES).hasMessageContaining("3").hasMessageContaining("6");

        Map<String, Object> m2 = metadata();
        m2.put(Vocabulary.KEY_TOKEN_TYPES, new GgufArray(GgufValueType.INT32, new long[] {1, 1, 1, 1, 1, 1, 1}));
        assertThatThrownBy(() -> vocabulary(m2)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(Vocabulary.KEY_TOKEN_TYPES);
    }

    @Test
    void idOutsideTheVocabularyNamesTheKey() {
        for (String key : new String[] {Vocabulary.KEY_BOS, Vocabulary.KEY_EOS, Vocabulary.KEY_UNK,
                Vocabulary.KEY_SEP, Vocabulary.KEY_CLS, Vocabulary.KEY_PAD, Vocabulary.KEY_EOT, Vocabulary.KEY_EOM}) {
            for (long bad : new long[] {6, 1000, -2}) {
                Map<String, Object> m = metadata();
                m.put(key, bad);
                assertThatThrownBy(() -> vocabulary(m)).as("%s = %d", key, bad)
                        .isInstanceOf(ModelFormatException.class).hasMessageContaining(key);
            }
        }
    }

    @Test
    void separatorAndDefaultsOfOtherTokenizerModels() {
        // the defaults each tokenizer model passes: here BERT's, whose ids are outside this vocabulary
        Vocabulary.Defaults bert = new Vocabulary.Defaults(101, -1, 100, 102, 0, false, false, false);
        Map<String, Object> m = metadata();
        m.put(Vocabulary.KEY_CLS, 1L); // older BERT files: [CLS] is the BOS
        m.put(Vocabulary.KEY_SEP, 2L);
        m.put(Vocabulary.KEY_ADD_SEP, true);
        Vocabulary v = Vocabulary.fromGguf(GgufMetadata.of(Path.of("test.gguf"), m), bert);
        assertThat(v.bosId()).isEqualTo(1);
        assertThat(v.sepId()).isEqualTo(2);
        assertThat(v.addSep()).isTrue();
        assertThat(v.eosId()).isEqualTo(-1);
        assertThat(v.unkId()).as("default 100 is outside the vocabulary").isEqualTo(-1);
        assertThat(v.addBos()).isFalse();
        assertThat(v.addSpacePrefix()).isFalse();

        m.put(Vocabulary.KEY_BOS, 3L); // the BOS key wins over the [CLS] key
        assertThat(Vocabulary.fromGguf(GgufMetadata.of(Path.of("test.gguf"), m), bert).bosId()).isEqualTo(3);

        m.remove(Vocabulary.KEY_SEP);
        assertThatThrownBy(() -> Vocabulary.fromGguf(GgufMetadata.of(Path.of("test.gguf"), m), bert))
                .isInstanceOf(ModelFormatException.class).hasMessageContaining(Vocabulary.KEY_ADD_SEP);
    }

    @Test
    void addBosWithoutBosIsRejected() {
        Map<String, Object> m = metadata();
        m.put(Vocabulary.KEY_TOKENS, new GgufArray(GgufValueType.STRING, new String[] {"<unk>"}));
        m.remove(Vocabulary.KEY_SCORES);
        m.remove(Vocabulary.KEY_TOKEN_TYPES);
        assertThatThrownBy(() -> vocabulary(m)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(Vocabulary.KEY_ADD_BOS);
    }

    @Test
    void wrongValueTypesAreRejected() {
        Map<String, Object> m = metadata();
        m.put(Vocabulary.KEY_SCORES, new GgufArray(GgufValueType.STRING, new String[] {"a", "b", "c", "d", "e", "f"}));
        assertThatThrownBy(() -> vocabulary(m)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(Vocabulary.KEY_SCORES);
        Map<String, Object> m2 = metadata();
        m2.put(Vocabulary.KEY_BOS, "one");
        assertThatThrownBy(() -> vocabulary(m2)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(Vocabulary.KEY_BOS);
    }

    @Test
    void missingTokenListIsRejected() {
        Map<String, Object> m = metadata();
        m.remove(Vocabulary.KEY_TOKENS);
        assertThatThrownBy(() -> vocabulary(m)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(Vocabulary.KEY_TOKENS);
    }

    @Test
    void duplicateTokensAreRejected() {
        Map<String, Object> m = metadata();
        m.put(Vocabulary.KEY_TOKENS, new GgufArray(GgufValueType.STRING,
                new String[] {"<unk>", "<s>", "</s>", "<0x41>", "b", "b"}));
        assertThatThrownBy(() -> tokenizer(m)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("'b'").hasMessageContaining("4 and 5");
    }

    @Test
    void malformedByteTokenIsRejected() {
        Map<String, Object> m = metadata();
        m.put(Vocabulary.KEY_TOKENS, new GgufArray(GgufValueType.STRING,
                new String[] {"<unk>", "<s>", "</s>", "<0xZZ>", "▁a", "b"}));
        assertThatThrownBy(() -> tokenizer(m)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("<0xZZ>").hasMessageContaining(Vocabulary.KEY_TOKENS);
    }

    @Test
    void emptyTokenTextsAreRenamedAsLlamaCppDoes() {
        Map<String, Object> m = metadata();
        m.put(Vocabulary.KEY_TOKENS, new GgufArray(GgufValueType.STRING,
                new String[] {"<unk>", "<s>", "</s>", "<0x41>", "", "b"}));
        assertThat(vocabulary(m).tokens()[4]).isEqualTo("[EMPTY_4]");
    }

    @Test
    void characterWithoutByteTokenOrUnknownTokenIsReported() {
        // no unknown token, no space prefix; only 'A' has a byte token (<0x41>)
        Vocabulary v = new Vocabulary(TOKENS.clone(), new float[6], new int[] {2, 3, 3, 6, 1, 1},
                1, 2, -1, -1, -1, -1, -1, true, false, false, false, "");
        SentencePieceTokenizer tokenizer = new SentencePieceTokenizer(v);
        assertThat(tokenizer.encode("Ab", false, false)).containsExactly(3, 5);
        assertThatThrownBy(() -> tokenizer.encode("Az", false, false)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("U+007A").hasMessageContaining("<0x7A>");
    }

    @Test
    void emptyTokenTextIsRejectedWhenBuiltDirectly() {
        assertThatThrownBy(() -> new Vocabulary(new String[] {"<unk>", ""}, new float[2], new int[2],
                -1, -1, 0, -1, -1, -1, -1, false, false, false, true, ""))
                .isInstanceOf(ModelFormatException.class).hasMessageContaining(Vocabulary.KEY_TOKENS + "'[1]");
    }

    @Test
    void factoryDispatchesOnTheTokenizerModel() {
        assertThat(tokenizer(metadata())).isInstanceOf(SentencePieceTokenizer.class);

        Map<String, Object> m = metadata();
        m.put(Tokenizers.KEY_MODEL, "t5");
        assertThatThrownBy(() -> tokenizer(m)).isInstanceOf(ModelFormatException.class)
                .hasMessage("'tokenizer.ggml.model' = 't5' is not supported yet (supported: llama, gpt2, bert)");

        Map<String, Object> gpt2 = metadata();
        gpt2.put(Tokenizers.KEY_MODEL, "gpt2");
        assertThatThrownBy(() -> tokenizer(gpt2)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(ByteLevelBpeTokenizer.KEY_MERGES);

        Map<String, Object> bert = metadata();
        bert.put(Tokenizers.KEY_MODEL, "bert");
        bert.put(Vocabulary.KEY_CLS, 1L); // the defaults (101, 102) are outside this small vocabulary
        bert.put(Vocabulary.KEY_SEP, 2L);
        assertThat(tokenizer(bert)).isInstanceOf(WordPieceTokenizer.class);

        Map<String, Object> m2 = metadata();
        m2.remove(Tokenizers.KEY_MODEL);
        assertThatThrownBy(() -> tokenizer(m2)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(Tokenizers.KEY_MODEL);
    }
}
