package dev.peregrine.onnx;

import dev.langchain4j.data.segment.TextSegment;
import dev.langchain4j.model.embedding.EmbeddingModel;
import dev.langchain4j.model.embedding.onnx.allminilml6v2.AllMiniLmL6V2EmbeddingModel;
import dev.langchain4j.model.embedding.onnx.allminilml6v2q.AllMiniLmL6V2QuantizedEmbeddingModel;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Consumer;

/**
 * Embedding throughput (sentences per second) of all-MiniLM-L6-v2, FP32 and int8, at batch 1 and
 * batch 32 with 2 threads: Peregrine next to LangChain4j's classes on the same ONNX files, in the
 * same run. A measurement, not a test. Run it from the project root with
 * <pre>
 * ./mvnw -q -pl onnx-backend -am test-compile -DskipTests
 * ./mvnw -q -pl onnx-backend dependency:build-classpath -Dmdep.outputFile=target/cp.txt -Dmdep.includeScope=test
 * (cd onnx-backend && java --enable-native-access=ALL-UNNAMED -cp target/test-classes:target/classes:$(cat target/cp.txt) \
 *     dev.peregrine.onnx.EmbeddingThroughput)
 * </pre>
 *
 * <p>"Batch 1" embeds one sentence per call, one after the other. "Batch 32" hands 32 sentences to
 * one call: Peregrine runs them as padded batches (one at a time for the int8 model, whose
 * activations are quantised per batch); LangChain4j embeds them one by one on its executor (2
 * threads here). Peregrine's ONNX Runtime session has 2 intra-op threads; LangChain4j's has ONNX
 * Runtime's default (one per core).
 */
public final class EmbeddingThroughput {
    private static final int THREADS = 2;
    private static final int SENTENCES = 256;
    private static final int REPS = 7;

    private EmbeddingThroughput() {
    }

    public static void main(String[] args) {
        List<String> corpus = corpus();
        System.out.printf(Locale.ROOT, "%d sentences, %d threads, %d cores, Java %s; median of %d interleaved runs%n",
                corpus.size(), THREADS, Runtime.getRuntime().availableProcessors(), Runtime.version(), REPS);
        System.out.printf(Locale.ROOT, "%-20s %6s %22s %22s%n", "model", "batch", "Peregrine sentences/s", "LangChain4j sentences/s");
        try (ExecutorService executor = Executors.newFixedThreadPool(THREADS)) {
            for (TestModels.Jar jar : List.of(TestModels.Jar.MINILM, TestModels.Jar.MINILM_Q)) {
                EmbeddingModel lc4j = jar == TestModels.Jar.MINILM
                        ? new AllMiniLmL6V2EmbeddingModel(executor) : new AllMiniLmL6V2QuantizedEmbeddingModel(executor);
                try (Model model = Model.load(jar.onnx(), ModelOptions.defaults().withThreads(THREADS))) {
                    Runnable ours1 = () -> corpus.forEach(model::embed);
                    Runnable theirs1 = () -> corpus.forEach(lc4j::embed);
                    Runnable ours32 = () -> inBatches(corpus, b -> model.embed(b, model.embeddingOptions().withBatchSize(32)));
                    Runnable theirs32 = () -> inBatches(corpus, b -> lc4j.embedAll(b.stream().map(TextSegment::from).toList()));
                    double[] batch1 = measure(ours1, theirs1);
                    double[] batch32 = measure(ours32, theirs32);
                    System.out.printf(Locale.ROOT, "%-20s %6d %22.1f %22.1f%n", jar.name, 1, batch1[0], batch1[1]);
                    System.out.printf(Locale.ROOT, "%-20s %6d %22.1f %22.1f%n", jar.name, 32, batch32[0], batch32[1]);
                }
            }
        }
    }

    private static void inBatches(List<String> corpus, Consumer<List<String>> embed) {
        for (int i = 0; i < corpus.size(); i += 32) {
            embed.accept(corpus.subList(i, Math.min(corpus.size(), i + 32)));
        }
    }

    /**
     * Sentences per second of two runs over the corpus, after one warm-up each: the median of
     * {@value #REPS} rounds, each round running both, so that a change in the machine's load
     * affects both alike.
     */
    private static double[] measure(Runnable a, Runnable b) {
        a.run();
        b.run();
        double[] ra = new double[REPS];
        double[] rb = new double[REPS];
        for (int r = 0; r < REPS; r++) {
            // Alternate which goes first, so neither always follows the other's leftovers (spinning threads, GC).
            if (r % 2 == 0) {
                ra[r] = rate(a);
                rb[r] = rate(b);
            } else {
                rb[r] = rate(b);
                ra[r] = rate(a);
            }
        }
        Arrays.sort(ra);
        Arrays.sort(rb);
        return new double[] {ra[REPS / 2], rb[REPS / 2]};
    }

    private static double rate(Runnable run) {
        long t0 = System.nanoTime();
        run.run();
        return SENTENCES / ((System.nanoTime() - t0) / 1e9);
    }

    /** {@value #SENTENCES} sentences of everyday lengths (the test sentences without the very long ones, repeated). */
    private static List<String> corpus() {
        List<String> base = new ArrayList<>();
        Sentences.varied().stream().filter(s -> !s.isBlank() && s.length() < 400).forEach(base::add);
        Sentences.triples().forEach(t -> base.addAll(List.of(t)));
        List<String> corpus = new ArrayList<>();
        for (int i = 0; corpus.size() < SENTENCES; i++) {
            corpus.add(base.get(i % base.size()));
        }
        return corpus;
    }
}
