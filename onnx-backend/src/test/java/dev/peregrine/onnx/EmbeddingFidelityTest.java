package dev.peregrine.onnx;

import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.EmbeddingOptions;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.Pooling;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Peregrine's embeddings equal LangChain4j's on the same ONNX files, for 50 varied texts (see
 * {@link LangChain4jReference} for texts longer than the model's maximum).
 */
class EmbeddingFidelityTest {
    private static final double MAX_COSINE_DISTANCE = 1e-5;

    private static List<String> texts() {
        // LangChain4j cannot embed an empty text (it has no tokens to average); Peregrine's is checked elsewhere.
        return Sentences.varied().stream().filter(s -> !s.isBlank()).toList();
    }

    private static void assertSameEmbeddings(TestModels.Jar jar, EmbeddingOptions.Input input, String prefix, Pooling pooling) {
        List<String> texts = texts();
        LangChain4jReference reference = new LangChain4jReference(jar);
        try (Model model = Model.load(jar.onnx(), ModelOptions.defaults().withThreads(2))) {
            // Batches of 32, sorted and padded; LangChain4j runs one text at a time.
            EmbeddingOptions options = model.embeddingOptions().withPooling(pooling).withBatchSize(32)
                    .withPrefixes("query: ", "passage: ").withInput(input);
            List<float[]> ours = model.embed(texts, options);
            List<String> worst = new ArrayList<>();
            double max = 0;
            for (int i = 0; i < texts.size(); i++) {
                float[] ref = reference.embed(prefix + texts.get(i));
                assertThat(ours.get(i)).hasSize(ref.length);
                double d = 1 - cosine(ours.get(i), ref);
                max = Math.max(max, d);
                if (d > MAX_COSINE_DISTANCE) {
                    worst.add(String.format("text %d (cosine distance %.3g): %.60s", i, d, texts.get(i)));
                }
            }
            assertThat(worst).as("%s: texts further than %.0e from LangChain4j (largest %.3g)",
                    jar, MAX_COSINE_DISTANCE, max).isEmpty();
        }
    }

    static double cosine(float[] a, float[] b) {
        double dot = 0;
        double na = 0;
        double nb = 0;
        for (int i = 0; i < a.length; i++) {
            dot += (double) a[i] * b[i];
            na += (double) a[i] * a[i];
            nb += (double) b[i] * b[i];
        }
        return dot / Math.sqrt(na * nb);
    }

    @Test
    void miniLmFp32() {
        assertSameEmbeddings(TestModels.Jar.MINILM, EmbeddingOptions.Input.TEXT, "", Pooling.MEAN);
    }

    @Test
    void miniLmInt8() {
        assertSameEmbeddings(TestModels.Jar.MINILM_Q, EmbeddingOptions.Input.TEXT, "", Pooling.MEAN);
    }

    @Test
    void bgeSmallWithClsPooling() {
        assertSameEmbeddings(TestModels.Jar.BGE_Q, EmbeddingOptions.Input.TEXT, "", Pooling.CLS);
    }

    @Test
    void e5SmallQueriesAndPassagesWithTheirPrefixes() {
        assertSameEmbeddings(TestModels.Jar.E5_Q, EmbeddingOptions.Input.QUERY, "query: ", Pooling.MEAN);
        assertSameEmbeddings(TestModels.Jar.E5_Q, EmbeddingOptions.Input.PASSAGE, "passage: ", Pooling.MEAN);
    }
}
