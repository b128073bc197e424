package dev.peregrine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufArray;
import dev.peregrine.format.gguf.GgufMetadata;
import dev.peregrine.format.gguf.GgufValueType;
import dev.peregrine.tokenizer.LlamaCppVectorsTest.Case;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.FieldSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Byte-level BPE beyond llama.cpp's vectors: Hugging Face's ids on a stress set, llama.cpp's
 * round-trip checks (test-tokenizer-1-bpe), special tokens, and malformed vocabularies.
 */
class BpeTokenizerTest {

    /** The vocabularies llama.cpp's test-tokenizer-1-bpe round-trips (gpt-neox has no vectors). */
    static final List<String> ROUND_TRIP = List.of(TokenizerFiles.FALCON, TokenizerFiles.GPT_2,
            TokenizerFiles.GPT_NEOX, TokenizerFiles.LLAMA_BPE, TokenizerFiles.MPT, TokenizerFiles.REFACT,
            TokenizerFiles.STARCODER);
    /** The Llama 3 vocabulary by pre-tokenizer name, for the Hugging Face cases. */
    private static final Map<String, ByteLevelBpeTokenizer> BY_PRE = new ConcurrentHashMap<>();

    private static ByteLevelBpeTokenizer tokenizer(String vocab) {
        return (ByteLevelBpeTokenizer) LlamaCppVectorsTest.tokenizer(vocab);
    }

    /** The Llama 3 vocabulary with another tokenizer.ggml.pre. */
    private static ByteLevelBpeTokenizer llama3VocabularyWith(String pre) {
        Map<String, Object> m = new HashMap<>(TokenizerFiles.metadata(TokenizerFiles.LLAMA_BPE).asMap());
        m.put(ByteLevelBpeTokenizer.KEY_PRE, pre);
        return ByteLevelBpeTokenizer.fromGguf(GgufMetadata.of(Path.of("llama-bpe-" + pre + ".gguf"), m));
    }

    // ---- Hugging Face references ------------------------------------------------------------------

    /**
     * Ids from Hugging Face's tokenizers (see resources/dev/peregrine/tokenizer/README.md) for 514
     * inputs: llama.cpp's 46, edge cases and seeded random strings. The Llama 3 tokenizer.json is
     * the one the llama-bpe GGUF was made from; the two variants swap its pre-tokenizer for Qwen 2's
     * expression (single digits) and GPT-2's, to check those splitters on the same vocabulary.
     * Hugging Face always cuts added tokens out of the text, so special text is parsed here.
     */
    static Stream<Arguments> huggingFaceCases() {
        return Stream.of(
                        cases("hf-stress.llama3.out", "llama-bpe"),
                        cases("hf-stress.llama3-vocab-qwen2-split.out", "qwen2"),
                        cases("hf-stress.llama3-vocab-gpt2-split.out", "gpt-2"))
                .flatMap(List::stream).map(c -> Arguments.of(c));
    }

    static List<Case> cases(String outputs, String pre) {
        return LlamaCppVectorsTest.read(pre, resource("hf-stress.inp"), resource(outputs));
    }

    static Path resource(String name) {
        try {
            return Path.of(BpeTokenizerTest.class.getResource(name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("huggingFaceCases")
    void encodesLikeHuggingFace(Case c) {
        ByteLevelBpeTokenizer tokenizer = BY_PRE.computeIfAbsent(c.vocab(), BpeTokenizerTest::llama3VocabularyWith);
        assertThat(tokenizer.encode(c.text(), false, true))
                .as("ids of %s", LlamaCppVectorsTest.quoted(c.text())).containsExactly(c.expected());
        assertThat(tokenizer.decode(c.expected())).isEqualTo(c.text());
    }

    // ---- llama.cpp's round trips (test-tokenizer-1-bpe) ---------------------------------------------

    @ParameterizedTest
    @FieldSource("ROUND_TRIP")
    void everyTokenRoundTrips(String vocab) {
        // test-tokenizer-1-bpe: a token's text, encoded with special text parsed, decodes to that
        // text; with Llama 3's ignore_merges it is that one token. Control tokens decode to
        // nothing here (llama.cpp's test renders them), and text that is not whole UTF-8 is
        // skipped, as there.
        ByteLevelBpeTokenizer tokenizer = tokenizer(vocab);
        boolean single = vocab.equals(TokenizerFiles.LLAMA_BPE);
        List<String> failures = new ArrayList<>();
        for (int id = 0; id < tokenizer.vocabularySize(); id++) {
            String text = wholeUtf8(tokenizer.tokenBytes(id));
            if (text == null || text.isEmpty()) {
                continue;
            }
            int[] ids = tokenizer.encode(text, false, true);
            if (!tokenizer.decode(ids).equals(text) || (single && !Arrays.equals(ids, new int[] {id}))) {
                failures.add(id + " " + LlamaCppVectorsTest.quoted(text) + " -> " + Arrays.toString(ids));
            }
        }
        assertThat(failures).isEmpty();
    }

    @ParameterizedTest
    @FieldSource("ROUND_TRIP")
    void everyCodePointRoundTrips(String vocab) {
        // test-tokenizer-1-bpe: every code point but surrogates and U+40000..U+E0000 (unassigned),
        // alone, encodes and decodes back to itself. Falcon's vocabulary has no token for 14 control
        // bytes (found by listing GPT-2's byte stand-ins missing from its tokens with a Python
        // script); llama.cpp drops those bytes too, so they cannot come back.
        List<String> expected = vocab.equals(TokenizerFiles.FALCON)
                ? List.of("3", "4", "5", "b", "11", "13", "14", "15", "16", "17", "19", "1c", "1d", "1e")
                : List.of();
        ByteLevelBpeTokenizer tokenizer = tokenizer(vocab);
        List<String> failures = new ArrayList<>();
        for (int cp = 0; cp < 0x110000; cp++) {
            if ((cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0x40000 && cp <= 0xE0000)) {
                continue;
            }
            String text = Character.toString(cp);
            if (!tokenizer.decode(tokenizer.encode(text, false, false)).equals(text)) {
                failures.add(Integer.toHexString(cp));
            }
        }
        assertThat(failures).isEqualTo(expected);
    }

    private static String wholeUtf8(byte[] bytes) {
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            return null;
        }
    }

    // ---- special tokens and flags -------------------------------------------------------------------

    @Test
    void llama3SpecialTokens() {
        ByteLevelBpeTokenizer llama3 = tokenizer(TokenizerFiles.LLAMA_BPE);
        int begin = 128000;
        int startHeader = 128006;
        int endHeader = 128007;
        int eot = 128009;
        // "Hello" = 9906, "user" = 882, "\n\n" = 271 (see the vectors and tokenizer.json)
        assertThat(llama3.encode("<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>", false, true))
                .containsExactly(startHeader, 882, endHeader, 271, 9906, eot);
        assertThat(llama3.encode("Hello", true, false)).as("add_bos_token is true").containsExactly(begin, 9906);
        int[] plain = llama3.encode("<|eot_id|>", false, false);
        assertThat(plain).doesNotContain(eot);
        assertThat(llama3.decode(plain)).isEqualTo("<|eot_id|>");
        assertThat(llama3.decode(new int[] {begin, 9906, eot})).as("control tokens decode to nothing")
                .isEqualTo("Hello");
        assertThat(llama3.isEndOfGeneration(eot)).isTrue();
        assertThat(llama3.isEndOfGeneration(128001)).as("<|end_of_text|>, the EOS").isTrue();
        assertThat(llama3.isEndOfGeneration(begin)).isFalse();
        assertThat(llama3.bosId()).isEqualTo(begin);
        assertThat(llama3.piece(22691)).isEqualTo("ĠHello");
        assertThat(new String(llama3.tokenBytes(22691), StandardCharsets.UTF_8)).isEqualTo(" Hello");
    }

    @Test
    void flagsAndDefaultsOfOtherVocabularies() {
        // gpt-2 and falcon files set no add_bos_token: llama.cpp adds no BOS to byte-level BPE
        // text unless the pre-tokenizer is Llama 3's
        ByteLevelBpeTokenizer gpt2 = tokenizer(TokenizerFiles.GPT_2);
        assertThat(gpt2.encode("Hello", true, false)).containsExactly(15496);
        assertThat(gpt2.isEndOfGeneration(50256)).as("<|endoftext|>").isTrue();
        ByteLevelBpeTokenizer falcon = tokenizer(TokenizerFiles.FALCON);
        assertThat(falcon.bosId()).isEqualTo(11);
        // deepseek-coder sets add_bos_token; its BOS is <｜begin▁of▁sentence｜>
        ByteLevelBpeTokenizer deepseek = tokenizer(TokenizerFiles.DEEPSEEK_CODER);
        assertThat(deepseek.encode("", true, false)).containsExactly(32013);
    }

    @Test
    void userDefinedTokensAreMatchedEvenWithoutParsingSpecialText() {
        // MPT's vocabulary has added tokens for runs of spaces (user-defined, not special): like
        // Hugging Face, they are cut out of the text before splitting
        ByteLevelBpeTokenizer mpt = tokenizer(TokenizerFiles.MPT);
        int run = -1;
        for (int id = 0; id < mpt.vocabularySize() && run < 0; id++) {
            if (mpt.vocabulary().tokenTypes()[id] == Vocabulary.USER_DEFINED && mpt.piece(id).isBlank()) {
                run = id;
            }
        }
        assertThat(run).isPositive();
        String spaces = mpt.piece(run);
        assertThat(mpt.encode("a" + spaces + "b", false, false)).contains(run);
        assertThat(mpt.decode(mpt.encode("a" + spaces + "b", false, false))).isEqualTo("a" + spaces + "b");
    }

    @Test
    void gptNeoxWithoutPreTokenizerNameUsesLlamaCppsDefault() {
        // The file has no tokenizer.ggml.pre. llama.cpp then warns and uses its "default"
        // expressions, which isolate punctuation runs and cut numbers into groups of three digits
        // (MPT, the same vocabulary, uses GPT-2's expression and keeps "12345" whole).
        ByteLevelBpeTokenizer neox = tokenizer(TokenizerFiles.GPT_NEOX);
        ByteLevelBpeTokenizer mpt = tokenizer(TokenizerFiles.MPT);
        assertThat(neox.vocabulary().tokens()).isEqualTo(mpt.vocabulary().tokens());
        assertThat(neox.encode("Hello world, this is a test.", false, false))
                .containsExactly(mpt.encode("Hello world, this is a test.", false, false));
        assertThat(neox.encode("12345", false, false)).containsExactly(concat(
                mpt.encode("123", false, false), mpt.encode("45", false, false)));
        assertThat(mpt.encode("12345", false, false)).hasSizeLessThan(neox.encode("12345", false, false).length);
    }

    /** As llama.cpp ("unknown pre-tokenizer type"): splitting words another way would tokenize wrongly, silently. */
    @Test
    void anUnknownPreTokenizerIsRefused() {
        assertThatThrownBy(() -> llama3VocabularyWith("no-such-pre-tokenizer"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("'tokenizer.ggml.pre' = 'no-such-pre-tokenizer' is a pre-tokenizer Peregrine does"
                        + " not support (supported: ")
                .hasMessageContaining("llama-bpe");
    }

    @Test
    void manyThreadsShareOneTokenizer() throws Exception {
        ByteLevelBpeTokenizer llama3 = llama3VocabularyWith("llama3"); // a fresh, empty word cache
        List<Case> cases = cases("hf-stress.llama3.out", "llama3");
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<Boolean>> results = new ArrayList<>();
            for (int t = 0; t < 8; t++) {
                results.add(pool.submit(() -> cases.stream().allMatch(
                        c -> Arrays.equals(llama3.encode(c.text(), false, true), c.expected()))));
            }
            for (Future<Boolean> result : results) {
                assertThat(result.get()).isTrue();
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void longWordsAndLongTexts() {
        ByteLevelBpeTokenizer llama3 = tokenizer(TokenizerFiles.LLAMA_BPE);
        String word = "abcdefghij".repeat(20_000); // one 200,000-letter word: merged in O(n log n)
        assertThat(llama3.decode(llama3.encode(word, false, false))).isEqualTo(word);
        String text = "Ünïcödé 🦙 and ascii, 12345 numbers\n".repeat(5_000);
        assertThat(llama3.decode(llama3.encode(text, false, false))).isEqualTo(text);
    }

    // ---- malformed vocabularies ---------------------------------------------------------------------

    private static Map<String, Object> smallVocabulary() {
        Map<String, Object> m = new HashMap<>();
        m.put(Tokenizers.KEY_MODEL, "gpt2");
        m.put(ByteLevelBpeTokenizer.KEY_PRE, "gpt-2");
        m.put(Vocabulary.KEY_TOKENS, new GgufArray(GgufValueType.STRING, new String[] {"a", "b", "ab", "Ġ", "Ġab"}));
        m.put(ByteLevelBpeTokenizer.KEY_MERGES, new GgufArray(GgufValueType.STRING, new String[] {"a b", "Ġ ab"}));
        return m;
    }

    private static Tokenizer load(Map<String, Object> m) {
        return Tokenizers.fromGguf(GgufMetadata.of(Path.of("small.gguf"), m));
    }

    @Test
    void smallVocabularyMergesByRank() {
        Tokenizer t = load(smallVocabulary());
        assertThat(t.encode("ab ab", false, false)).containsExactly(2, 4);
        assertThat(t.encode("ba", false, false)).containsExactly(1, 0);
        // bytes without a token are dropped, as llama.cpp drops them
        assertThat(t.encode("abc", false, false)).containsExactly(2);
        assertThat(t.decode(new int[] {2, 4})).isEqualTo("ab ab");
    }

    @Test
    void malformedMergesAreReportedByKey() {
        Map<String, Object> m = smallVocabulary();
        m.put(ByteLevelBpeTokenizer.KEY_MERGES, new GgufArray(GgufValueType.STRING, new String[] {"a b", "ab"}));
        assertThatThrownBy(() -> load(m)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(ByteLevelBpeTokenizer.KEY_MERGES + "'[1]");

        m.remove(ByteLevelBpeTokenizer.KEY_MERGES);
        assertThatThrownBy(() -> load(m)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(ByteLevelBpeTokenizer.KEY_MERGES);

        m.put(ByteLevelBpeTokenizer.KEY_MERGES, new GgufArray(GgufValueType.INT32, new long[] {1}));
        assertThatThrownBy(() -> load(m)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(ByteLevelBpeTokenizer.KEY_MERGES);
    }

    @Test
    void mergesOfUnknownTokensAreIgnored() {
        Map<String, Object> m = smallVocabulary();
        m.put(ByteLevelBpeTokenizer.KEY_MERGES, new GgufArray(GgufValueType.STRING,
                new String[] {"x y", "a b", "b a", "Ġ ab"}));
        assertThat(load(m).encode("ab ba", false, false)).containsExactly(2, 3, 1, 0);
    }

    private static int[] concat(int[] a, int[] b) {
        int[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
