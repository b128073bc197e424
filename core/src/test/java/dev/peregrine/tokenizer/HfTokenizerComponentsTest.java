package dev.peregrine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.json.Json;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The tokenizer.json components the five real files do not use (Metaspace, Split behaviours,
 * Digits, Whitespace, normalizers, added-token flags, WordPiece, other post-processors and
 * decoders), on small tokenizer.json files made for the purpose, against Hugging Face's ids and
 * texts for them; and malformed or unsupported files.
 */
class HfTokenizerComponentsTest {
    private static final Map<String, Object> CASES = HfTokenizerTest.resourceJson("hf-synthetic-cases.json");

    @SuppressWarnings("unchecked")
    static Stream<String> synthetic() {
        return ((Map<String, Object>) CASES.get("tokenizers")).keySet().stream();
    }

    @ParameterizedTest
    @MethodSource("synthetic")
    @SuppressWarnings("unchecked")
    void encodesAndDecodesLikeHuggingFace(String name) {
        Object json = ((Map<String, Object>) ((Map<String, Object>) CASES.get("tokenizers")).get(name)).get("json");
        HfTokenizer tokenizer = HfTokenizerReader.read(json, Path.of(name + ".json"), null, null);
        assertThat(HfTokenizerTest.compare(tokenizer, CASES, name)).isGreaterThan(100);
        if (!name.equals("metaspace-always-nosplit")) {
            // (that one's Strip decoder also strips the end of the text, so decode of a prompt may
            // lose a space that the whole text keeps: the one documented exception)
            assertThat(HfTokenizerTest.streamingSplits(tokenizer, HfTokenizerTest.inputs(CASES))).isGreaterThan(20);
        }
    }

    // ---- a minimal file -------------------------------------------------------------------------------

    private static final String MINIMAL = """
            {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "c": 3}, "merges": ["a b"]}}""";

    private static HfTokenizer load(String json) {
        return HfTokenizerReader.read(Json.parse(json, Path.of("t.json")), Path.of("t.json"), null, null);
    }

    @Test
    void minimalBpeWithoutPipeline() {
        HfTokenizer t = load(MINIMAL);
        assertThat(t.encode("ab", true, true)).containsExactly(2);
        assertThat(t.encode("bab", true, true)).containsExactly(1, 2);
        assertThat(t.encode("xa", true, true)).as("no token, no bytes, no unknown: dropped").containsExactly(0);
        // without a decoder Hugging Face joins the tokens with spaces
        assertThat(t.decode(new int[] {2, 3})).isEqualTo("ab c");
        assertThat(t.vocabularySize()).isEqualTo(4);
        assertThat(t.bosId()).isEqualTo(-1);
        assertThat(t.encode("", true, true)).isEmpty();
    }

    @Test
    void mergesAsPairsMayHoldSpaces() {
        HfTokenizer t = load("""
                {"model": {"type": "BPE", "vocab": {"a": 0, " ": 1, "a ": 2, "a a": 3},
                           "merges": [["a", " "], ["a ", "a"]]}}""");
        assertThat(t.encode("a a", false, false)).containsExactly(3);
    }

    @Test
    void addedTokensTakeTheirIdsAsHuggingFaceAssignsThem() {
        // "id" says 7 but Hugging Face gives the next id after the model's vocabulary
        HfTokenizer t = load("""
                {"added_tokens": [{"id": 7, "content": "<x>", "special": true}, {"id": 1, "content": "b", "special": false}],
                 "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}}""");
        assertThat(t.encode("a<x>b", false, true)).containsExactly(0, 2, 1);
        assertThat(t.encode("a<x>b", false, false)).as("special text not parsed; <, x, > are no tokens")
                .containsExactly(0, 1);
        assertThat(t.vocabulary().tokenTypes()).containsExactly(Vocabulary.NORMAL, Vocabulary.USER_DEFINED, Vocabulary.CONTROL);
    }

    @Test
    void transformersAddBosTokenReplacesThePostProcessor(@TempDir Path dir) throws IOException {
        Path json = Files.writeString(dir.resolve("tokenizer.json"), """
                {"added_tokens": [{"id": 2, "content": "<s>", "special": true}, {"id": 3, "content": "</s>", "special": true}],
                 "post_processor": {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}],
                                    "special_tokens": {}},
                 "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}}""");
        Path config = Files.writeString(dir.resolve("tokenizer_config.json"), """
                {"add_bos_token": true, "add_eos_token": true, "bos_token": "<s>",
                 "eos_token": {"__type": "AddedToken", "content": "</s>"}}""");
        assertThat(Tokenizers.fromHuggingFace(json, null).encode("ab", true, true)).containsExactly(0, 1);
        HfTokenizer t = Tokenizers.fromHuggingFace(json, config);
        assertThat(t.encode("ab", true, true)).containsExactly(2, 0, 1, 3);
        assertThat(t.encode("ab", false, true)).containsExactly(0, 1);
        assertThat(t.bosId()).isEqualTo(2);
        assertThat(t.eosId()).isEqualTo(3);
        assertThat(t.vocabulary().addBos()).isTrue();
        assertThat(t.vocabulary().addEos()).isTrue();

        Files.writeString(config, """
                {"tokenizer_class": "LlamaTokenizerFast", "bos_token": "<s>"}""");
        assertThat(Tokenizers.fromHuggingFace(json, config).encode("ab", true, true))
                .as("a Llama tokenizer class adds BOS unless told not to").containsExactly(2, 0, 1);
    }

    @Test
    void onigurumaScriptClassesRunInJava() {
        assertThat(HfTokenizerReader.javaRegex("[\\p{Han}\\P{Hiragana}]+|\\p{L}|\\\\p{Han}"))
                .isEqualTo("[\\p{IsHan}\\P{IsHiragana}]+|\\p{L}|\\\\p{Han}");
        HfTokenizer t = load("""
                {"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\\\p{Han}+"}, "behavior": "Isolated"},
                 "model": {"type": "BPE", "vocab": {"日": 0, "本": 1, "a": 2, "日本": 3}, "merges": ["日 本"]}}""");
        assertThat(t.encode("a日本a", false, false)).containsExactly(2, 3, 2);
    }

    /**
     * java.util.regex recurses on a repeated group: a file's pattern of that shape on a long text
     * fails the encoding with a ModelFormatException naming the pattern, not a StackOverflowError
     * (in the pre-tokenizer, the normalizer and the decoder alike).
     */
    @Test
    void aFilesRegexThatOverflowsTheStackIsAModelFormatError() throws Exception {
        // (a|b)* recurses once per repetition and backtracks linearly; run on a thread with a small
        // stack, so that it overflows whatever -Xss the tests run with.
        String pattern = "(a|b)*c";
        String model = "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": []}";
        String text = "a".repeat(200_000);
        for (String component : List.of(
                "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"" + pattern + "\"}, \"behavior\": \"Isolated\"}",
                "\"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"Regex\": \"" + pattern + "\"}, \"content\": \"b\"}")) {
            HfTokenizer t = load("{" + component + ", " + model + "}");
            assertThat(t.encode("ba", false, false)).as(component).containsExactly(1, 0);
            assertThat(onSmallStack(() -> t.encode(text, false, false))).as(component).isInstanceOf(ModelFormatException.class)
                    .hasMessageContaining("'" + pattern + "' overflowed the stack on a text of 200000 characters");
        }
        // The decoder meets it at load, decoding every token once.
        assertThat(onSmallStack(() -> load("{\"decoder\": {\"type\": \"Replace\", \"pattern\": {\"Regex\": \"" + pattern
                + "\"}, \"content\": \"b\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"" + text + "\": 0}, \"merges\": []}}")))
                .isInstanceOf(ModelFormatException.class).hasMessageContaining("overflowed the stack");
    }

    /** What {@code action} throws on a thread with a 512 KB stack (null if nothing). */
    private static Throwable onSmallStack(Runnable action) throws InterruptedException {
        Throwable[] thrown = new Throwable[1];
        Thread t = new Thread(null, () -> {
            try {
                action.run();
            } catch (Throwable e) {
                thrown[0] = e;
            }
        }, "small-stack", 512 * 1024);
        t.start();
        t.join();
        return thrown[0];
    }

    // ---- malformed and unsupported files ----------------------------------------------------------------

    private static void assertRejected(String json, String... messageParts) {
        assertThatThrownBy(() -> load(json)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("t.json").hasMessageContainingAll(messageParts);
    }

    @Test
    void malformedFilesNameTheFileAndTheJsonPath() {
        assertRejected("[1, 2]", "'(top level)' is not an object");
        assertRejected("{}", "'model.type' is missing");
        assertRejected("""
                {"model": {"type": "BPE", "vocab": {"a": 0, "b": "1"}, "merges": []}}""", "'model.vocab.b' is not an integer");
        assertRejected("""
                {"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}}""", "'model.vocab.b' = 0 is also the id of 'a'");
        assertRejected("""
                {"model": {"type": "BPE", "vocab": {"a": 0, "b": 5}, "merges": []}}""", "'model.vocab.b' = 5 is outside 0..1");
        assertRejected("""
                {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", "a c"]}}""",
                "'model.merges[1]' merges 'c', which is not in model.vocab");
        assertRejected("""
                {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b c"]}}""",
                "'model.merges[0]' = 'a b c' is not two tokens separated by one space");
        assertRejected("""
                {"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a"]]}}""", "'model.merges[0]' is not a pair of tokens");
        assertRejected("""
                {"model": {"type": "BPE", "vocab": {"a": 0}, "merges": 3}}""", "'model.merges' is not an array");
        assertRejected("""
                {"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"}}""",
                "'model.unk_token' = '<unk>' is not in model.vocab");
        assertRejected("""
                {"added_tokens": [{"content": 5}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}""",
                "'added_tokens[0].content' is not a string");
        assertRejected("""
                {"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"},
                 "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}""",
                "'pre_tokenizer.pattern.Regex' is a regular expression Peregrine cannot run");
        assertRejected("""
                {"pre_tokenizer": {"type": "Split", "pattern": {"String": "x"}, "behavior": "Sideways"},
                 "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}""", "'pre_tokenizer.behavior' is 'Sideways'");
        assertRejected("""
                {"post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}},
                     {"Sequence": {"id": "A"}}], "special_tokens": {}},
                 "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}""",
                "'post_processor.single[0].SpecialToken.id' = '<s>' is not in post_processor.special_tokens");
        assertRejected("""
                {"post_processor": {"type": "BertProcessing", "cls": ["[CLS]", 9], "sep": ["[SEP]", 0]},
                 "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}""", "adds token id 9, outside the vocabulary of 1");
    }

    @Test
    void unsupportedComponentsAreNamed() {
        String model = "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}";
        assertRejected("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}",
                "'model.type' is 'Unigram': only BPE and WordPiece models are supported");
        assertRejected("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"dropout\": 0.1}}",
                "'model.dropout' is 0.1: BPE dropout");
        assertRejected("{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Precompiled\"}]}, " + model + "}",
                "'normalizer.normalizers[0].type' is 'Precompiled', a normalizer that is not supported");
        assertRejected("{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"UnicodeScripts\"}]}, "
                + model + "}", "'pre_tokenizer.pretokenizers[0].type' is 'UnicodeScripts', a pre-tokenizer that is not supported");
        assertRejected("{\"decoder\": {\"type\": \"CTC\"}, " + model + "}", "'decoder.type' is 'CTC', a decoder that is not supported");
        assertRejected("{\"post_processor\": {\"type\": \"Sequence\", \"processors\": [{\"type\": \"BertProcessing\","
                + " \"cls\": [\"a\", 0], \"sep\": [\"a\", 0]}, {\"type\": \"RobertaProcessing\", \"cls\": [\"a\", 0],"
                + " \"sep\": [\"a\", 0]}]}, " + model + "}",
                "'post_processor.processors[1]' follows another processor that adds tokens");
    }

    @Test
    void filesThatAreNotJsonOrMissing(@TempDir Path dir) throws IOException {
        Path truncated = Files.writeString(dir.resolve("tokenizer.json"), "{\"model\": {\"type\": \"BPE\",\n  \"vocab\": {\"a\": 0");
        assertThatThrownBy(() -> Tokenizers.fromHuggingFace(truncated, null)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(truncated.toString()).hasMessageContaining("line 2");
        Path missing = dir.resolve("nothing.json");
        assertThatThrownBy(() -> Tokenizers.fromHuggingFace(missing, null)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("not found").hasMessageContaining(missing.toString());
        Path config = Files.writeString(dir.resolve("tokenizer_config.json"), "{\"bos_token\": 3}");
        Path good = Files.writeString(dir.resolve("good.json"), MINIMAL);
        assertThatThrownBy(() -> Tokenizers.fromHuggingFace(good, config)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(config.toString()).hasMessageContaining("'bos_token' is not a string");
    }
}
