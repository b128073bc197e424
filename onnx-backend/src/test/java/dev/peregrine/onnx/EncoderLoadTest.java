package dev.peregrine.onnx;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import dev.peregrine.EmbeddingOptions;
import dev.peregrine.Model;
import dev.peregrine.ModelFormatException;
import dev.peregrine.ModelOptions;
import dev.peregrine.PeregrineException;
import dev.peregrine.onnx.OnnxGraphs.Node;
import dev.peregrine.onnx.OnnxGraphs.Value;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What loading accepts and refuses, and how an encoder model behaves as a {@link Model}. */
class EncoderLoadTest {
    @TempDir
    Path dir;

    /** A model file in a fresh directory, with the MiniLM tokenizer.json beside it. */
    private Path withTokenizer(String name) throws IOException {
        Files.copy(TestModels.Jar.MINILM_Q.tokenizer(), dir.resolve("tokenizer.json"));
        return dir.resolve(name);
    }

    private static void assertRejected(Path model, String... messageParts) {
        var thrown = assertThatThrownBy(() -> Model.load(model).close()).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(model.getFileName().toString());
        for (String part : messageParts) {
            thrown.hasMessageContaining(part);
        }
    }

    @Test
    void randomBytesEmptyAndTruncatedFilesFailClearlyAtLoad() throws IOException {
        byte[] random = new byte[4096];
        new Random(42).nextBytes(random);
        assertRejected(Files.write(withTokenizer("random.onnx"), random), "ONNX Runtime cannot load it");
        assertRejected(Files.write(dir.resolve("empty.onnx"), new byte[0]), "ONNX Runtime cannot load it");
        byte[] start = Arrays.copyOf(Files.readAllBytes(TestModels.Jar.MINILM_Q.onnx()), 1 << 20);
        assertRejected(Files.write(dir.resolve("truncated.onnx"), start), "ONNX Runtime cannot load it");
    }

    @Test
    void aGraphWithoutInputIdsIsNotAnEncoder() throws IOException {
        Path model = OnnxGraphs.write(withTokenizer("identity.onnx"), 13,
                List.of(new Node("Identity", List.of("x"), List.of("y"))),
                List.of(new Value("x", OnnxGraphs.FLOAT, 2, 3)), List.of(new Value("y", OnnxGraphs.FLOAT, 2, 3)));
        assertRejected(model, "not an encoder model", "input 'x'");
    }

    @Test
    void aGraphWithoutAThreeDimensionalFloatOutputIsNotAnEncoder() throws IOException {
        Path model = OnnxGraphs.write(withTokenizer("flat.onnx"), 13,
                List.of(new Node("Cast", List.of("input_ids"), List.of("y"), OnnxGraphs.intAttribute("to", OnnxGraphs.FLOAT))),
                List.of(new Value("input_ids", OnnxGraphs.INT64, "batch", "sequence"),
                        new Value("attention_mask", OnnxGraphs.INT64, "batch", "sequence")),
                List.of(new Value("y", OnnxGraphs.FLOAT, "batch", "sequence")));
        assertRejected(model, "not an encoder model", "no float [batch, sequence, hidden] output");
    }

    @Test
    void aDecoderStyleGraphWithCacheInputsIsNotAnEncoder() throws IOException {
        Path model = OnnxGraphs.write(withTokenizer("decoder.onnx"), 13,
                List.of(new Node("Identity", List.of("past_key_values.0.key"), List.of("present.0.key"))),
                List.of(new Value("input_ids", OnnxGraphs.INT64, "batch", "sequence"),
                        new Value("attention_mask", OnnxGraphs.INT64, "batch", "sequence"),
                        new Value("past_key_values.0.key", OnnxGraphs.FLOAT, "batch", 4, "past", 8)),
                List.of(new Value("present.0.key", OnnxGraphs.FLOAT, "batch", 4, "past", 8)));
        assertRejected(model, "not an encoder model", "'past_key_values.0.key'");
    }

    /**
     * A toy encoder whose hidden state of a token is its id (a 1-wide output whose width the graph
     * leaves dynamic): mean pooling without normalisation gives the mean of the text's ids, which
     * Hugging Face's own tokenizer (through DJL) tells independently.
     */
    @Test
    void aToyEncoderGivesTheMeanOfItsTokenIdsForInt64AndInt32Inputs() throws IOException {
        HuggingFaceTokenizer hf = HuggingFaceTokenizer.newInstance(TestModels.Jar.MINILM_Q.tokenizer(), Map.of("padding", "false"));
        List<String> texts = List.of("Hello world", "a somewhat longer sentence, with punctuation!", "x");
        withTokenizer("unused");
        for (int type : new int[] {OnnxGraphs.INT64, OnnxGraphs.INT32}) {
            Path file = dir.resolve("toy" + type + ".onnx");
            OnnxGraphs.write(file, 11,
                    List.of(new Node("Cast", List.of("input_ids"), List.of("ids"), OnnxGraphs.intAttribute("to", OnnxGraphs.FLOAT)),
                            new Node("Unsqueeze", List.of("ids"), List.of("last_hidden_state"), OnnxGraphs.intsAttribute("axes", 2))),
                    List.of(new Value("input_ids", type, "batch", "sequence"), new Value("attention_mask", type, "batch", "sequence")),
                    List.of(new Value("last_hidden_state", OnnxGraphs.FLOAT, "batch", "sequence", "hidden")));
            try (Model model = Model.load(file)) {
                assertThat(model.embeddingDimension()).isEqualTo(1);
                List<float[]> v = model.embed(texts, model.embeddingOptions().withNormalize(false));
                for (int i = 0; i < texts.size(); i++) {
                    double mean = Arrays.stream(hf.encode(texts.get(i)).getIds()).average().orElseThrow();
                    assertThat((double) v.get(i)[0]).as("type %d, text %d", type, i).isCloseTo(mean, within(1e-3));
                }
            }
        }
    }

    /** The same toy with its inputs fixed to one sequence of 16 positions: every text is padded to 16, one per run. */
    @Test
    void aToyEncoderWithFixedInputShapesGetsPaddedSingleSequences() throws IOException {
        HuggingFaceTokenizer hf = HuggingFaceTokenizer.newInstance(TestModels.Jar.MINILM_Q.tokenizer(), Map.of("padding", "false"));
        Path file = OnnxGraphs.write(withTokenizer("fixed.onnx"), 11,
                List.of(new Node("Cast", List.of("input_ids"), List.of("ids"), OnnxGraphs.intAttribute("to", OnnxGraphs.FLOAT)),
                        new Node("Unsqueeze", List.of("ids"), List.of("last_hidden_state"), OnnxGraphs.intsAttribute("axes", 2))),
                List.of(new Value("input_ids", OnnxGraphs.INT64, 1, 16), new Value("attention_mask", OnnxGraphs.INT64, 1, 16)),
                List.of(new Value("last_hidden_state", OnnxGraphs.FLOAT, 1, 16, "hidden")));
        List<String> texts = List.of("Hello world", "a somewhat longer sentence, with punctuation!", "x",
                "this text is longer than sixteen tokens so it has to be cut to fit the fixed shape");
        try (Model model = Model.load(file)) {
            assertThat(model.contextLength()).isEqualTo(16);
            List<float[]> v = model.embed(texts, model.embeddingOptions().withNormalize(false).withBatchSize(8));
            for (int i = 0; i < texts.size(); i++) {
                long[] ids = hf.encode(texts.get(i)).getIds();
                if (ids.length > 16) { // [CLS] and the first 14 text tokens, then [SEP]
                    long sep = ids[ids.length - 1];
                    ids = Arrays.copyOf(ids, 16);
                    ids[15] = sep;
                }
                double mean = Arrays.stream(ids).average().orElseThrow();
                assertThat((double) v.get(i)[0]).as("text %d", i).isCloseTo(mean, within(1e-3));
            }
        }
    }

    @Test
    void aGraphFixedToLargerBatchesIsRefused() throws IOException {
        Path model = OnnxGraphs.write(withTokenizer("batch8.onnx"), 11,
                List.of(new Node("Cast", List.of("input_ids"), List.of("ids"), OnnxGraphs.intAttribute("to", OnnxGraphs.FLOAT)),
                        new Node("Unsqueeze", List.of("ids"), List.of("last_hidden_state"), OnnxGraphs.intsAttribute("axes", 2))),
                List.of(new Value("input_ids", OnnxGraphs.INT64, 8, 16), new Value("attention_mask", OnnxGraphs.INT64, 8, 16)),
                List.of(new Value("last_hidden_state", OnnxGraphs.FLOAT, 8, 16, 1)));
        assertRejected(model, "fixed to batches of 8");
    }

    @Test
    void anEncoderModelEmbedsButDoesNotGenerate() throws IOException {
        try (Model model = Model.load(TestModels.Jar.MINILM_Q.onnx())) {
            assertThat(model.isEncoder()).isTrue();
            assertThat(model.embeddingDimension()).isEqualTo(384);
            assertThat(model.contextLength()).isEqualTo(128); // the jar's tokenizer.json truncates at 128
            assertThat(model.describe()).contains("encoder", "ONNX Runtime", "one text per run");
            assertThat(model.encode("Hello world")).containsExactly(101, 7592, 2088, 102);
            assertThatThrownBy(model::generator).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("is an encoder").hasMessageContaining("embed");
            assertThatThrownBy(model::newSession).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("is an encoder");
            float[] empty = model.embed("");
            assertThat(EmbeddingFidelityTest.cosine(empty, empty)).isCloseTo(1.0, within(1e-6));
            assertThatThrownBy(() -> model.embed(List.of(Sentences.varied().getLast()),
                    model.embeddingOptions().withTruncation(EmbeddingOptions.Truncation.FAIL)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("more than the maximum of 128");
        }
    }

    @Test
    void theContextLengthOptionSetsTheMaximumLength() {
        try (Model model = Model.load(TestModels.Jar.MINILM_Q.onnx(), ModelOptions.defaults().withContextLength(64))) {
            assertThat(model.contextLength()).isEqualTo(64);
            assertThat(model.embeddingOptions().maxLength()).isZero(); // 0: the model's, now 64
            float[] cut = model.embed(Sentences.varied().getLast());
            float[] explicit = model.embed(List.of(Sentences.varied().getLast()), model.embeddingOptions().withMaxLength(64)).getFirst();
            assertThat(cut).containsExactly(explicit);
        }
        // Too short for [CLS] and [SEP] and a token: the caller's option, not the file, is at fault.
        assertThatThrownBy(() -> Model.load(TestModels.Jar.MINILM_Q.onnx(), ModelOptions.defaults().withContextLength(2)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("leaves no room for text");
    }

    /**
     * Each load starts an ONNX Runtime session (about 50 MB resident for this model) and allocates
     * off-heap buffers; closing must free both. Java heap growth (tokenizers parsed per load) is
     * taken out of the resident memory growth, so what is left is native memory.
     */
    @Test
    void loadingAndClosingRepeatedlyFreesTheSessions() throws IOException {
        assumeTrue(Files.isReadable(Path.of("/proc/self/status")), "needs Linux's /proc to read resident memory");
        Path model = TestModels.Jar.MINILM_Q.onnx();
        for (int i = 0; i < 3; i++) {
            try (Model m = Model.load(model)) {
                m.embed("warm up");
            }
        }
        System.gc();
        long before = residentBytes() - committedHeap();
        for (int i = 0; i < 20; i++) {
            try (Model m = Model.load(model)) {
                m.embed(List.of("a first text", "a second, longer text to embed"));
            }
        }
        System.gc();
        // 20 leaked sessions would be about a gigabyte.
        assertThat(residentBytes() - committedHeap() - before).as("native memory growth").isLessThan(200L << 20);
    }

    private static long committedHeap() {
        return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getCommitted();
    }

    private static long residentBytes() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("\\D", "")) * 1024;
            }
        }
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }

    @Test
    void aDirectoryWithModelOnnxAndTokenizerJsonLoadsTheSameModel() throws IOException {
        Files.copy(TestModels.Jar.MINILM_Q.onnx(), dir.resolve("model.onnx"));
        Files.copy(TestModels.Jar.MINILM_Q.tokenizer(), dir.resolve("tokenizer.json"));
        List<String> texts = Sentences.varied().subList(0, 10);
        try (Model fromDir = Model.load(dir); Model fromFile = Model.load(TestModels.Jar.MINILM_Q.onnx())) {
            List<float[]> a = fromDir.embed(texts);
            List<float[]> b = fromFile.embed(texts);
            for (int i = 0; i < texts.size(); i++) {
                assertThat(a.get(i)).containsExactly(b.get(i));
            }
        }
    }

    @Test
    void threadsSharingOneModelGetTheSameVectorsAsOneThread() throws Exception {
        List<String> texts = Sentences.varied().subList(0, 20);
        try (Model model = Model.load(TestModels.Jar.MINILM.onnx(), ModelOptions.defaults().withThreads(2));
             var pool = Executors.newFixedThreadPool(4)) {
            List<float[]> expected = model.embed(texts);
            var futures = new ArrayList<Future<List<float[]>>>();
            for (int t = 0; t < 4; t++) {
                int shift = t;
                // Each thread sends the texts in another order and batch size, so the batches differ.
                futures.add(pool.submit(() -> {
                    List<String> rotated = new ArrayList<>(texts);
                    Collections.rotate(rotated, shift * 5);
                    List<float[]> v = new ArrayList<>(model.embed(rotated, model.embeddingOptions().withBatchSize(3 + shift)));
                    Collections.rotate(v, -shift * 5);
                    return v;
                }));
            }
            for (var f : futures) {
                List<float[]> v = f.get();
                for (int i = 0; i < texts.size(); i++) {
                    assertThat(EmbeddingFidelityTest.cosine(v.get(i), expected.get(i))).isCloseTo(1.0, within(1e-6));
                }
            }
        }
    }

    @Test
    void aClosedEncoderRefusesWork() {
        Model model = Model.load(TestModels.Jar.MINILM_Q.onnx());
        model.embed("warm");
        model.close();
        model.close(); // idempotent
        assertThatThrownBy(() -> model.embed("hello")).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
    }

    @Test
    void cudaIsRefusedClearlyWhenOnnxRuntimeHasNoCudaProvider() {
        assertThatThrownBy(() -> Model.load(TestModels.Jar.MINILM_Q.onnx(), ModelOptions.defaults().withBackend("cuda")).close())
                .isInstanceOf(PeregrineException.class).hasMessageContaining("CUDA").hasMessageContaining("onnxruntime_gpu");
        assertThatThrownBy(() -> Model.load(TestModels.Jar.MINILM_Q.onnx(), ModelOptions.defaults().withBackend("tpu")).close())
                .isInstanceOf(PeregrineException.class).hasMessageContaining("does not run encoders");
    }
}
