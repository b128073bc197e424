package dev.peregrine.tokenizer;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.format.json.Json;
import dev.peregrine.tokenizer.LlamaCppVectorsTest.Case;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
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
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The five real tokenizer.json files of ../shared/models/tokenizers/hf against Hugging Face's own
 * ids and texts (see resources/dev/peregrine/tokenizer/README.md for how they were made), against
 * the llama-bpe GGUF made from the Llama 3 file, and BERT's WordPiece pipeline.
 */
class HfTokenizerTest {
    private static final String HF_DIR = "models/tokenizers/hf/";
    private static final Map<String, HfTokenizer> TOKENIZERS = new ConcurrentHashMap<>();

    /**
     * The tokenizer a reference case set was made with: "name" is the folder's tokenizer.json with
     * its tokenizer_config.json, except "deepseek-v3", which is tokenizer.json alone (the
     * tokenizers library's view); "deepseek-v3+config" adds the config, whose add_bos_token
     * transformers applies.
     */
    static HfTokenizer tokenizer(String name) {
        return TOKENIZERS.computeIfAbsent(name, n -> {
            String folder = HF_DIR + n.replace("+config", "") + "/";
            Path config = n.equals("deepseek-v3") ? null : TokenizerFiles.file(folder + "tokenizer_config.json");
            return Tokenizers.fromHuggingFace(TokenizerFiles.file(folder + "tokenizer.json"), config);
        });
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> resourceJson(String name) {
        return (Map<String, Object>) Json.read(BpeTokenizerTest.resource(name));
    }

    // ---- Hugging Face's ids and texts -----------------------------------------------------------------

    private static final Map<String, Object> CASES = resourceJson("hf-tokenizer-cases.json");

    @SuppressWarnings("unchecked")
    static List<String> inputs(Map<String, Object> cases) {
        return (List<String>) cases.get("inputs");
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama3", "llama3-new", "qwen3", "deepseek-v3", "deepseek-v3+config", "mistral"})
    void encodesAndDecodesLikeHuggingFace(String name) {
        int agreed = compare(tokenizer(name), CASES, name);
        assertThat(agreed).isGreaterThanOrEqualTo(40 * 6);
    }

    /**
     * Compares a tokenizer with one entry of a case file: for every input the ids with and without
     * special tokens added, with special text parsed and not (Hugging Face's split_special_tokens),
     * the decoded text of two of those, and the decoded text of random id sequences. Returns how
     * many agreed; fails listing every disagreement.
     */
    @SuppressWarnings("unchecked")
    static int compare(Tokenizer tokenizer, Map<String, Object> cases, String name) {
        List<String> inputs = inputs(cases);
        Map<String, Object> expected = (Map<String, Object>) ((Map<String, Object>) cases.get("tokenizers")).get(name);
        List<String> failures = new ArrayList<>();
        int agreed = 0;
        String[] kinds = {"ids", "idsSpecial", "idsPlain", "idsPlainSpecial"};
        for (int i = 0; i < inputs.size(); i++) {
            String text = inputs.get(i);
            for (int k = 0; k < kinds.length; k++) {
                int[] want = ids(((List<?>) expected.get(kinds[k])).get(i));
                int[] got = tokenizer.encode(text, k % 2 == 1, k < 2);
                if (Arrays.equals(want, got)) {
                    agreed++;
                } else {
                    failures.add(kinds[k] + " of " + LlamaCppVectorsTest.quoted(text) + ": " + Arrays.toString(got)
                            + ", Hugging Face " + Arrays.toString(want));
                }
            }
            agreed += compareDecode(tokenizer, ((List<?>) expected.get("idsSpecial")).get(i),
                    ((List<?>) expected.get("decoded")).get(i), failures);
            agreed += compareDecode(tokenizer, ((List<?>) expected.get("idsPlain")).get(i),
                    ((List<?>) expected.get("decodedPlain")).get(i), failures);
        }
        List<?> random = (List<?>) expected.get("randomIds");
        for (int i = 0; i < random.size(); i++) {
            agreed += compareDecode(tokenizer, random.get(i), ((List<?>) expected.get("randomDecoded")).get(i), failures);
        }
        System.out.printf("%s: %d of %d agree with Hugging Face (%d inputs x 4 encodings + %d decodes, %d random"
                + " decodes)%n", name, agreed, agreed + failures.size(), inputs.size(), 2 * inputs.size(), random.size());
        assertThat(failures).as(name).isEmpty();
        return agreed;
    }

    private static int compareDecode(Tokenizer tokenizer, Object ids, Object text, List<String> failures) {
        if (text == null) {
            return 0; // no reference: Hugging Face panicked on it
        }
        String got = tokenizer.decode(ids(ids));
        if (got.equals(text)) {
            return 1;
        }
        failures.add("decode of " + ids + ": " + LlamaCppVectorsTest.quoted(got) + ", Hugging Face "
                + LlamaCppVectorsTest.quoted((String) text));
        return 0;
    }

    static int[] ids(Object list) {
        return ((List<?>) list).stream().mapToInt(x -> Math.toIntExact((Long) x)).toArray();
    }

    /**
     * The 514 inputs of hf-stress.inp (llama.cpp's, edge cases, random strings) with the tokenizers
     * library's ids; Hugging Face always cuts special tokens out of the text, so special text is
     * parsed. The Llama 3 file also runs with the two pre-tokenizers BpeTokenizerTest uses on its
     * vocabulary.
     */
    static Stream<Arguments> stressCases() {
        return Stream.of(
                        BpeTokenizerTest.cases("hf-stress.llama3.out", "llama3"),
                        BpeTokenizerTest.cases("hf-stress.llama3-vocab-qwen2-split.out", "llama3 qwen2-split"),
                        BpeTokenizerTest.cases("hf-stress.llama3-vocab-gpt2-split.out", "llama3 gpt2-split"),
                        BpeTokenizerTest.cases("hf-stress.qwen3.out", "qwen3"),
                        BpeTokenizerTest.cases("hf-stress.deepseek-v3.out", "deepseek-v3"),
                        BpeTokenizerTest.cases("hf-stress.mistral.out", "mistral"))
                .map(cases -> Arguments.of(cases.getFirst().vocab(), cases));
    }

    private static final Map<String, HfTokenizer> VARIANTS = new ConcurrentHashMap<>();

    /** A tokenizer of a stress case set: a real file, or the Llama 3 file with another pre-tokenizer. */
    @SuppressWarnings("unchecked")
    private static HfTokenizer stressTokenizer(String label) {
        if (!label.contains(" ")) {
            return tokenizer(label);
        }
        return VARIANTS.computeIfAbsent(label, l -> {
            Path file = TokenizerFiles.file(HF_DIR + "llama3/tokenizer.json");
            Map<String, Object> json = new LinkedHashMap<>((Map<String, Object>) Json.read(file));
            Map<String, Object> model = new LinkedHashMap<>((Map<String, Object>) json.get("model"));
            model.put("ignore_merges", false);
            json.put("model", model);
            json.put("pre_tokenizer", l.endsWith("qwen2-split")
                    ? Map.of("type", "Sequence", "pretokenizers", List.of(
                            Map.of("type", "Split", "pattern", Map.of("Regex", HfTokenizerReader.QWEN2_SPLIT),
                                    "behavior", "Isolated", "invert", false),
                            Map.of("type", "ByteLevel", "add_prefix_space", false, "use_regex", false)))
                    : Map.of("type", "ByteLevel", "add_prefix_space", false, "use_regex", true));
            return HfTokenizerReader.read(json, Path.of(l), null, null);
        });
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("stressCases")
    void stressSetEncodesLikeHuggingFace(String label, List<Case> cases) {
        HfTokenizer tokenizer = stressTokenizer(label);
        List<String> failures = new ArrayList<>();
        for (Case c : cases) {
            int[] got = tokenizer.encode(c.text(), false, true);
            if (!Arrays.equals(got, c.expected())) {
                failures.add("#" + c.number() + " " + LlamaCppVectorsTest.quoted(c.text()) + ": " + Arrays.toString(got)
                        + ", Hugging Face " + Arrays.toString(c.expected()));
            }
        }
        System.out.printf("%s: %d of %d stress inputs agree with Hugging Face%n", label,
                cases.size() - failures.size(), cases.size());
        assertThat(failures).isEmpty();
    }

    // ---- the GGUF made from the Llama 3 file ----------------------------------------------------------

    @Test
    void llama3JsonAndLlamaBpeGgufGiveTheSameIds() {
        // llama.cpp's rules for the GGUF (control tokens parsed only with parseSpecial) and Hugging
        // Face's (special added tokens, likewise) agree here; the GGUF adds BOS with addSpecial,
        // tokenizer.json does not, so only addSpecial = false is compared.
        HfTokenizer json = tokenizer("llama3");
        Tokenizer gguf = LlamaCppVectorsTest.tokenizer(TokenizerFiles.LLAMA_BPE);
        List<String> texts = new ArrayList<>(inputs(CASES));
        BpeTokenizerTest.cases("hf-stress.llama3.out", "llama3").forEach(c -> texts.add(c.text()));
        List<String> failures = new ArrayList<>();
        for (String text : texts) {
            for (boolean parseSpecial : new boolean[] {true, false}) {
                int[] a = json.encode(text, false, parseSpecial);
                int[] b = gguf.encode(text, false, parseSpecial);
                if (!Arrays.equals(a, b)) {
                    failures.add(LlamaCppVectorsTest.quoted(text) + " parseSpecial=" + parseSpecial + ": json "
                            + Arrays.toString(a) + ", gguf " + Arrays.toString(b));
                }
            }
        }
        System.out.printf("llama3 tokenizer.json vs llama-bpe GGUF: %d of %d encodings agree%n",
                2 * texts.size() - failures.size(), 2 * texts.size());
        assertThat(failures).isEmpty();
        assertThat(json.vocabularySize()).isEqualTo(gguf.vocabularySize());
        for (int id = 0; id < json.vocabularySize(); id += 97) {
            if (json.vocabulary().tokenTypes()[id] != Vocabulary.CONTROL) { // the GGUF's decode to nothing
                assertThat(json.tokenBytes(id)).as("bytes of %d", id).isEqualTo(gguf.tokenBytes(id));
            }
        }
    }

    // ---- streaming ------------------------------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(strings = {"llama3", "llama3-new", "qwen3", "deepseek-v3", "mistral"})
    void streamingContinuesDecodeOfThePrompt(String name) {
        assertThat(streamingSplits(tokenizer(name), inputs(CASES))).isGreaterThan(200);
    }

    /**
     * Checks decode(prompt ++ rest) == decode(prompt) + streamed rest at every split of the inputs'
     * ids (with special tokens) where the prompt decodes to something and ends on a whole
     * character; returns the number of splits checked.
     */
    static int streamingSplits(Tokenizer tokenizer, List<String> texts) {
        int splits = 0;
        for (String text : texts) {
            int[] ids = tokenizer.encode(text, true, true);
            for (int k = 1; k < ids.length; k++) {
                int[] prompt = Arrays.copyOf(ids, k);
                StreamingDecoder probe = tokenizer.streamingDecoder();
                Arrays.stream(prompt).forEach(probe::accept);
                String head = tokenizer.decode(prompt);
                if (probe.hasPending() || head.isEmpty()) {
                    continue;
                }
                splits++;
                StringBuilder streamed = new StringBuilder(head);
                StreamingDecoder decoder = tokenizer.streamingDecoder();
                for (int i = k; i < ids.length; i++) {
                    streamed.append(decoder.accept(ids[i]));
                }
                streamed.append(decoder.flush());
                assertThat(streamed.toString()).as("%s split at %d", LlamaCppVectorsTest.quoted(text), k)
                        .isEqualTo(tokenizer.decode(ids));
            }
        }
        return splits;
    }

    @Test
    void specialTokensDecodeAndStreamAsTheirText() {
        HfTokenizer mistral = tokenizer("mistral");
        // Hugging Face's decode keeps special tokens; the first token's rule (Strip one leading space)
        // applies to the whole fused text, which starts with "<s>" here
        assertThat(mistral.decode(mistral.encode("Hello world", true, true))).isEqualTo("<s> Hello world");
        assertThat(mistral.decode(mistral.encode("Hello world", false, true))).isEqualTo("Hello world");
        assertThat(new String(mistral.tokenBytes(2), UTF_8)).isEqualTo("</s>");
        assertThat(new String(mistral.tokenBytes(22557), UTF_8)).as("▁Hello").isEqualTo(" Hello");
        assertThat(mistral.tokenBytes(3 + 0xE2)).as("<0xE2>").containsExactly(0xE2);
        // a byte-fallback run that is not UTF-8: Hugging Face gives one U+FFFD per byte
        assertThat(mistral.decode(new int[] {3 + 0xE2, 3 + 0x82})).isEqualTo("\uFFFD\uFFFD");
        assertThat(mistral.decode(new int[] {3 + 0xE2, 3 + 0x82, 3 + 0xAC})).isEqualTo("€");

        HfTokenizer llama3 = tokenizer("llama3-new");
        assertThat(new String(llama3.tokenBytes(128009), UTF_8)).isEqualTo("<|eot_id|>");
        assertThat(llama3.isEndOfGeneration(128009)).isTrue();
        assertThat(llama3.isEndOfGeneration(128001)).isTrue();
        assertThat(llama3.isEndOfGeneration(128000)).isFalse();
        assertThat(llama3.eosId()).as("tokenizer_config's eos_token").isEqualTo(128009);
        assertThat(llama3.vocabulary().addBos()).isTrue();
        assertThat(tokenizer("llama3").vocabulary().addBos()).isFalse();

        HfTokenizer qwen3 = tokenizer("qwen3");
        assertThat(qwen3.bosId()).isEqualTo(-1);
        assertThat(qwen3.isEndOfGeneration(qwen3.eosId())).isTrue();
        int think = qwen3.encode("<think>", false, false)[0];
        assertThat(qwen3.encode("<think>", false, false)).as("non-special: matched even unparsed").hasSize(1);
        assertThat(qwen3.vocabulary().tokenTypes()[think]).isEqualTo(Vocabulary.USER_DEFINED);
        assertThat(qwen3.vocabulary().tokenTypes()[151644]).isEqualTo(Vocabulary.CONTROL);
        assertThat(qwen3.piece(151644)).isEqualTo("<|im_start|>");
        // Shown as text, yet a control token (text constraints such as JSON output never allow it).
        assertThat(new String(qwen3.tokenBytes(151644), UTF_8)).isEqualTo("<|im_start|>");
        assertThat(qwen3.isControlToken(151644)).isTrue();
        assertThat(qwen3.isControlToken(think)).isFalse();
    }

    // ---- BERT: BGE's tokenizer.json, rebuilt from the GGUF made from it --------------------------------

    private static HfTokenizer bge;

    /**
     * BAAI/bge-small-en-v1.5's tokenizer.json: its structure as published, its vocabulary taken back
     * from ggml-vocab-bert-bge.gguf by undoing llama.cpp's conversion ("▁word" was "word", a
     * continuation "ing" was "##ing", "[CLS]"-like tokens are unchanged), which gives the original
     * 30522 tokens exactly (checked against the file once).
     */
    static synchronized HfTokenizer bge() {
        if (bge == null) {
            String[] gguf = TokenizerFiles.metadata(TokenizerFiles.BERT_BGE).optStringArray(Vocabulary.KEY_TOKENS).orElseThrow();
            Map<String, Object> vocab = new LinkedHashMap<>();
            for (int id = 0; id < gguf.length; id++) {
                String t = gguf[id];
                boolean bracketed = t.length() > 2 && t.startsWith("[") && t.endsWith("]");
                vocab.put(t.startsWith("\u2581") ? t.substring(1) : bracketed ? t : "##" + t, (long) id);
            }
            List<Object> added = new ArrayList<>();
            for (Object[] t : new Object[][] {{0L, "[PAD]"}, {100L, "[UNK]"}, {101L, "[CLS]"}, {102L, "[SEP]"}, {103L, "[MASK]"}}) {
                added.add(Map.of("id", t[0], "content", t[1], "single_word", false, "lstrip", false, "rstrip", false,
                        "normalized", false, "special", true));
            }
            Map<String, Object> json = new HashMap<>();
            json.put("added_tokens", added);
            json.put("normalizer", bertNormalizer());
            json.put("pre_tokenizer", Map.of("type", "BertPreTokenizer"));
            json.put("post_processor", Map.of("type", "TemplateProcessing",
                    "single", List.of(Map.of("SpecialToken", Map.of("id", "[CLS]", "type_id", 0L)),
                            Map.of("Sequence", Map.of("id", "A", "type_id", 0L)),
                            Map.of("SpecialToken", Map.of("id", "[SEP]", "type_id", 0L))),
                    "special_tokens", Map.of(
                            "[CLS]", Map.of("id", "[CLS]", "ids", List.of(101L), "tokens", List.of("[CLS]")),
                            "[SEP]", Map.of("id", "[SEP]", "ids", List.of(102L), "tokens", List.of("[SEP]")))));
            json.put("decoder", Map.of("type", "WordPiece", "prefix", "##", "cleanup", true));
            json.put("model", Map.of("type", "WordPiece", "unk_token", "[UNK]", "continuing_subword_prefix", "##",
                    "max_input_chars_per_word", 100L, "vocab", vocab));
            bge = HfTokenizerReader.read(json, Path.of("bge-small-en-v1.5-tokenizer.json"), null, null);
        }
        return bge;
    }

    private static Map<String, Object> bertNormalizer() {
        Map<String, Object> n = new HashMap<>();
        n.put("type", "BertNormalizer");
        n.put("clean_text", true);
        n.put("handle_chinese_chars", true);
        n.put("strip_accents", null);
        n.put("lowercase", true);
        return n;
    }

    @Test
    void bertEncodesAndDecodesLikeHuggingFace() {
        Map<String, Object> decoded = resourceJson("hf-stress.bge-decoded.json");
        List<Case> plain = BpeTokenizerTest.cases("hf-stress.bge.out", "bge");
        List<Case> special = BpeTokenizerTest.cases("hf-stress.bge-special.out", "bge");
        List<String> failures = new ArrayList<>();
        for (int i = 0; i < plain.size(); i++) {
            String text = plain.get(i).text();
            check(failures, "ids of " + LlamaCppVectorsTest.quoted(text), plain.get(i).expected(), bge().encode(text, false, true));
            check(failures, "ids with special tokens of " + LlamaCppVectorsTest.quoted(text), special.get(i).expected(),
                    bge().encode(text, true, true));
            String want = (String) ((List<?>) decoded.get("decoded")).get(i);
            String got = bge().decode(special.get(i).expected());
            if (!got.equals(want)) {
                failures.add("decode of " + LlamaCppVectorsTest.quoted(text) + ": " + got + ", Hugging Face " + want);
            }
        }
        List<?> random = (List<?>) decoded.get("randomIds");
        for (int i = 0; i < random.size(); i++) {
            String want = (String) ((List<?>) decoded.get("randomDecoded")).get(i);
            String got = bge().decode(ids(random.get(i)));
            if (!got.equals(want)) {
                failures.add("decode of " + random.get(i) + ": " + got + ", Hugging Face " + want);
            }
        }
        int total = 3 * plain.size() + random.size();
        System.out.printf("bge (WordPiece): %d of %d agree with Hugging Face%n", total - failures.size(), total);
        assertThat(failures).isEmpty();
    }

    @Test
    void bertJsonAndGgufGiveTheSameIds() {
        // the same pipeline, written twice: WordPieceTokenizer (GGUF) and the tokenizer.json reader
        Tokenizer gguf = LlamaCppVectorsTest.tokenizer(TokenizerFiles.BERT_BGE);
        for (Case c : BpeTokenizerTest.cases("hf-stress.bge.out", "bge")) {
            assertThat(bge().encode(c.text(), true, true)).isEqualTo(gguf.encode(c.text(), true, true));
        }
    }

    private static void check(List<String> failures, String what, int[] want, int[] got) {
        if (!Arrays.equals(want, got)) {
            failures.add(what + ": " + Arrays.toString(got) + ", Hugging Face " + Arrays.toString(want));
        }
    }

    // ---- loading --------------------------------------------------------------------------------------

    @Test
    void loadTimes() {
        // printed, not asserted: timings on a shared 2-core machine vary too much
        StringBuilder report = new StringBuilder("tokenizer.json load times (best of 3):");
        for (String name : new String[] {"llama3", "qwen3", "deepseek-v3", "mistral"}) {
            Path file = TokenizerFiles.file(HF_DIR + name + "/tokenizer.json");
            long best = Long.MAX_VALUE;
            for (int i = 0; i < 3; i++) {
                long start = System.nanoTime();
                Tokenizers.fromHuggingFace(file, null);
                best = Math.min(best, System.nanoTime() - start);
            }
            report.append(String.format(" %s (%.1f MB) %d ms;", name, file.toFile().length() / 1e6, best / 1_000_000));
        }
        System.out.println(report);
    }

    @Test
    void manyThreadsShareOneTokenizer() throws Exception {
        HfTokenizer qwen3 = Tokenizers.fromHuggingFace(TokenizerFiles.file(HF_DIR + "qwen3/tokenizer.json"), null);
        List<Case> cases = BpeTokenizerTest.cases("hf-stress.qwen3.out", "qwen3");
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<Boolean>> results = new ArrayList<>();
            for (int t = 0; t < 8; t++) {
                results.add(pool.submit(() -> cases.stream().allMatch(
                        c -> Arrays.equals(qwen3.encode(c.text(), false, true), c.expected()))));
            }
            for (Future<Boolean> result : results) {
                assertThat(result.get()).isTrue();
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void everyLlama3TokenRoundTrips() {
        // as llama.cpp's test-tokenizer-1-bpe: a token's text, encoded, decodes to that text, and
        // with ignore_merges is that one token
        HfTokenizer llama3 = tokenizer("llama3");
        List<String> failures = new ArrayList<>();
        for (int id = 0; id < 128000; id++) {
            String text = wholeUtf8(llama3.tokenBytes(id));
            if (text == null) {
                continue;
            }
            int[] ids = llama3.encode(text, false, false);
            if (!Arrays.equals(ids, new int[] {id}) || !llama3.decode(ids).equals(text)) {
                failures.add(id + " " + LlamaCppVectorsTest.quoted(text) + " -> " + Arrays.toString(ids));
            }
        }
        assertThat(failures).isEmpty();
    }

    private static String wholeUtf8(byte[] bytes) {
        try {
            return UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            return null;
        }
    }
}
