package dev.peregrine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufArray;
import dev.peregrine.format.gguf.GgufMetadata;
import dev.peregrine.format.gguf.GgufValueType;
import dev.peregrine.tokenizer.LlamaCppVectorsTest.Case;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class WordPieceTokenizerTest {
    private static final int UNK = 100;
    private static final int CLS = 101;
    private static final int SEP = 102;

    private static WordPieceTokenizer bge;

    @BeforeAll
    static void load() {
        bge = TokenizerFiles.load(TokenizerFiles.BERT_BGE);
    }

    /**
     * Ids from Hugging Face's tokenizers with BAAI/bge-small-en-v1.5's tokenizer.json, whose
     * vocabulary is the GGUF's token for token (see resources/dev/peregrine/tokenizer/README.md), on
     * the 514 stress inputs, without and with special tokens. Hugging Face always cuts added tokens
     * such as "[CLS]" out of the text, so special text is parsed here.
     */
    static Stream<Arguments> huggingFaceCases() {
        return Stream.of(BpeTokenizerTest.cases("hf-stress.bge.out", "bge"),
                        BpeTokenizerTest.cases("hf-stress.bge-special.out", "bge+special"))
                .flatMap(List::stream).map(c -> Arguments.of(c));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("huggingFaceCases")
    void encodesLikeHuggingFace(Case c) {
        boolean addSpecial = c.vocab().endsWith("+special");
        assertThat(bge.encode(c.text(), addSpecial, true))
                .as("ids of %s", LlamaCppVectorsTest.quoted(c.text())).containsExactly(c.expected());
    }

    @Test
    void vocabularyAndDefaults() {
        // the file stores [CLS] under tokenizer.ggml.cls_token_id, [SEP] under seperator_token_id
        assertThat(bge.bosId()).isEqualTo(CLS);
        assertThat(bge.vocabulary().sepId()).isEqualTo(SEP);
        assertThat(bge.vocabulary().unkId()).isEqualTo(UNK);
        assertThat(bge.vocabulary().addBos()).isTrue();
        assertThat(bge.vocabulary().addSep()).isTrue();
        assertThat(bge.eosId()).isEqualTo(-1);
        // GGUF's convention: word starts carry "▁", continuations are stored without "##"
        assertThat(bge.piece(7592)).isEqualTo("▁hello");
        assertThat(bge.encode("Hello, World!")).containsExactly(CLS, 7592, 1010, 2088, 999, SEP);
        assertThat(bge.encode("", true, false)).containsExactly(CLS, SEP);
    }

    @Test
    void continuationPiecesAndUnknownWords() {
        int[] ids = bge.encode("tokenization", false, false);
        assertThat(ids).hasSizeGreaterThan(1);
        assertThat(bge.piece(ids[0])).startsWith("▁");
        assertThat(bge.piece(ids[1])).doesNotStartWith("▁");
        assertThat(bge.decode(ids)).isEqualTo("tokenization");
        assertThat(bge.encode("🦙", false, false)).containsExactly(UNK);
        // Hugging Face's max_input_chars_per_word: a word of more than 100 characters is [UNK]
        assertThat(bge.encode("a".repeat(100), false, false)).doesNotContain(UNK);
        assertThat(bge.encode("a".repeat(101), false, false)).containsExactly(UNK);
    }

    @Test
    void decodingJoinsPiecesWithoutTheFirstSpace() {
        int[] ids = bge.encode("Hello, World! Tokenization", true, false);
        assertThat(bge.decode(ids)).isEqualTo("hello , world ! tokenization");
        StringBuilder streamed = new StringBuilder();
        StreamingDecoder decoder = bge.streamingDecoder();
        for (int id : ids) {
            streamed.append(decoder.accept(id));
        }
        assertThat(streamed.toString()).isEqualTo(" hello , world ! tokenization");
        assertThat(bge.isEndOfGeneration(SEP)).isFalse();
    }

    @Test
    void specialTokensAreParsedOnlyWhenAsked() {
        assertThat(bge.encode("[CLS] hi [SEP]", false, true)).containsExactly(CLS, 7632, SEP);
        assertThat(bge.encode("[CLS] hi [SEP]", false, false)).doesNotContain(CLS, SEP);
    }

    // ---- normaliser options -----------------------------------------------------------------------

    private static Map<String, Object> metadata() {
        return new HashMap<>(TokenizerFiles.metadata(TokenizerFiles.BERT_BGE).asMap());
    }

    private static WordPieceTokenizer load(Map<String, Object> m) {
        return WordPieceTokenizer.fromGguf(GgufMetadata.of(Path.of("bge.gguf"), m));
    }

    @Test
    void normaliserOptionsFromTheFile() {
        Map<String, Object> cased = metadata();
        cased.put(WordPieceTokenizer.KEY_LOWERCASE, false);
        // without lower-casing accents are kept too (strip_accents follows lowercase, as in
        // Hugging Face's BertNormalizer and llama.cpp); this vocabulary has no capitals
        WordPieceTokenizer casedTokenizer = load(cased);
        assertThat(casedTokenizer.encode("HELLO", false, false)).isNotEqualTo(bge.encode("HELLO", false, false));
        assertThat(casedTokenizer.encode("hello", false, false)).isEqualTo(bge.encode("hello", false, false));
        assertThat(casedTokenizer.encode("café", false, false)).isNotEqualTo(bge.encode("café", false, false));

        Map<String, Object> keepAccents = metadata();
        keepAccents.put(WordPieceTokenizer.KEY_STRIP_ACCENTS, false);
        WordPieceTokenizer accents = load(keepAccents);
        assertThat(accents.encode("CAFE", false, false)).isEqualTo(bge.encode("cafe", false, false));
        assertThat(accents.encode("café", false, false)).isNotEqualTo(bge.encode("cafe", false, false));
        assertThat(bge.encode("café", false, false)).isEqualTo(bge.encode("cafe", false, false));
    }

    @Test
    void vocabularyWithoutUnknownTokenCannotEncodeUnknownWords() {
        Map<String, Object> m = new HashMap<>();
        m.put(Tokenizers.KEY_MODEL, "bert");
        m.put(Vocabulary.KEY_TOKENS, new GgufArray(GgufValueType.STRING, new String[] {"[CLS]", "[SEP]", "▁a", "b"}));
        m.put(Vocabulary.KEY_TOKEN_TYPES, new GgufArray(GgufValueType.INT32, new long[] {3, 3, 1, 1}));
        m.put(Vocabulary.KEY_BOS, 0L);
        m.put(Vocabulary.KEY_SEP, 1L);
        Tokenizer small = Tokenizers.fromGguf(GgufMetadata.of(Path.of("small.gguf"), m));
        assertThat(small.encode("ab a", true, false)).containsExactly(0, 2, 3, 2, 1);
        assertThatThrownBy(() -> small.encode("c", false, false)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(Vocabulary.KEY_UNK);
    }
}
