package dev.peregrine.embedding;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.peregrine.EmbeddingOptions;
import dev.peregrine.Pooling;
import dev.peregrine.spi.EncoderBatch;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The pipeline against the fake encoder, whose output for one text is worked out here directly
 * from the text (no padding, no batching): batching, sorting and padding must not change it.
 */
class EmbeddingPipelineTest {
    private static final List<String> TEXTS = List.of("a", "hello world", "", "xyz", "a much longer text here", "mid text");

    private final FakeEncoders.RecordingEncoder encoder = new FakeEncoders.RecordingEncoder(0);
    private final EmbeddingPipeline pipeline = new EmbeddingPipeline(encoder, new FakeEncoders.CharTokenizer(), 64);
    /** A model whose maximum length is 16 tokens. */
    private final EmbeddingPipeline short16 = new EmbeddingPipeline(encoder, new FakeEncoders.CharTokenizer(), 16);

    /** [CLS] chars [SEP], as the fake tokenizer encodes a text. */
    private static int[] ids(String text) {
        int[] chars = text.codePoints().map(c -> c + 10).toArray();
        int[] ids = new int[chars.length + 2];
        ids[0] = FakeEncoders.CLS;
        System.arraycopy(chars, 0, ids, 1, chars.length);
        ids[ids.length - 1] = FakeEncoders.SEP;
        return ids;
    }

    /** The fake encoder's pooled output for one unpadded sequence, computed directly. */
    private static float[] expected(Pooling pooling, int[] ids) {
        float sum = Arrays.stream(ids).sum();
        int n = ids.length;
        return switch (pooling) {
            case CLS -> new float[] {ids[0], 0, 1, sum};
            case LAST_TOKEN -> new float[] {ids[n - 1], n - 1, 1, sum};
            case MEAN -> new float[] {sum / n, (n - 1) / 2f, 1, sum};
        };
    }

    private static EmbeddingOptions raw(Pooling pooling) {
        return EmbeddingOptions.defaults().withPooling(pooling).withNormalize(false);
    }

    @Test
    void batchedAndPaddedEmbeddingsEqualOneByOneInTheTextsOrder() {
        for (Pooling pooling : Pooling.values()) {
            for (int batchSize : new int[] {1, 2, 4, 32}) {
                List<float[]> vectors = pipeline.embed(TEXTS, raw(pooling).withBatchSize(batchSize));
                assertThat(vectors).hasSize(TEXTS.size());
                for (int i = 0; i < TEXTS.size(); i++) {
                    assertThat(vectors.get(i)).as("%s, batch %d, text %d", pooling, batchSize, i)
                            .containsExactly(expected(pooling, ids(TEXTS.get(i))), within(1e-4f));
                }
            }
        }
    }

    @Test
    void batchesHoldSimilarLengthsLongestFirstAndArePaddedToTheirLongest() {
        encoder.batches.clear();
        pipeline.embed(TEXTS, raw(Pooling.MEAN).withBatchSize(2));
        assertThat(encoder.batches).extracting(EncoderBatch::size).containsExactly(2, 2, 2);
        // Sorted lengths (with [CLS]/[SEP]): 25, 13, 10, 5, 3, 2.
        assertThat(encoder.batches).extracting(EncoderBatch::length).containsExactly(25, 10, 3);
        EncoderBatch last = encoder.batches.getLast();
        assertThat(last.attentionMask()).containsExactly(1, 1, 1, 1, 1, 0);
        assertThat(last.tokenTypeIds()).containsOnly(0);
    }

    @Test
    void anEncoderThatCannotBatchGetsOneTextPerRun() {
        var single = new FakeEncoders.RecordingEncoder(0, 1);
        List<float[]> vectors = new EmbeddingPipeline(single, new FakeEncoders.CharTokenizer(), 64)
                .embed(TEXTS, raw(Pooling.MEAN).withBatchSize(32));
        assertThat(single.batches).hasSize(TEXTS.size()).extracting(EncoderBatch::size).containsOnly(1);
        assertThat(single.batches).allSatisfy(b -> assertThat(b.attentionMask()).containsOnly(1));
        for (int i = 0; i < TEXTS.size(); i++) {
            assertThat(vectors.get(i)).containsExactly(expected(Pooling.MEAN, ids(TEXTS.get(i))), within(1e-4f));
        }
    }

    @Test
    void normalisedVectorsHaveUnitLength() {
        List<float[]> vectors = pipeline.embed(TEXTS, EmbeddingOptions.defaults());
        for (int i = 0; i < TEXTS.size(); i++) {
            float[] v = vectors.get(i);
            float[] raw = expected(Pooling.MEAN, ids(TEXTS.get(i)));
            double norm = Math.sqrt(raw[0] * raw[0] + raw[1] * raw[1] + raw[2] * raw[2] + raw[3] * raw[3]);
            for (int d = 0; d < 4; d++) {
                assertThat((double) v[d]).isCloseTo(raw[d] / norm, within(1e-6));
            }
        }
    }

    @Test
    void queryAndPassagePrefixesGoInFrontOnlyWhenAsked() {
        EmbeddingOptions o = raw(Pooling.MEAN).withPrefixes("query: ", "passage: ");
        assertThat(pipeline.embed(List.of("x"), o).getFirst()).containsExactly(expected(Pooling.MEAN, ids("x")), within(1e-4f));
        assertThat(pipeline.embed(List.of("x"), o.forQueries()).getFirst())
                .containsExactly(expected(Pooling.MEAN, ids("query: x")), within(1e-4f));
        assertThat(pipeline.embed(List.of("x"), o.forPassages()).getFirst())
                .containsExactly(expected(Pooling.MEAN, ids("passage: x")), within(1e-4f));
    }

    /**
     * A model whose pooling leaves the prompt out (sentence-transformers' include_prompt=false):
     * the mean starts after [CLS] and the prompt's tokens, as many as the prompt alone encodes to
     * with its special tokens, less one; a text without a prompt keeps every position.
     */
    @Test
    void withoutThePromptTheMeanStartsAfterIt() {
        var promptless = new EmbeddingPipeline(encoder, new FakeEncoders.CharTokenizer(), 64, false);
        EmbeddingOptions o = raw(Pooling.MEAN).withPrefixes("query: ", "passage: ");
        int[] ids = ids("query: xy");
        int first = 1 + "query: ".length();
        float sum = Arrays.stream(ids).sum();
        float textMean = (float) Arrays.stream(ids, first, ids.length).average().orElseThrow();
        float positionMean = (first + ids.length - 1) / 2f;
        assertThat(promptless.embed(List.of("xy"), o.forQueries()).getFirst())
                .containsExactly(new float[] {textMean, positionMean, 1, sum}, within(1e-4f));
        assertThat(promptless.embed(List.of("xy"), o).getFirst()).containsExactly(expected(Pooling.MEAN, ids("xy")), within(1e-4f));
        assertThat(promptless.embed(List.of("xy"), raw(Pooling.CLS).withPrefixes("query: ", "").forQueries()).getFirst())
                .containsExactly(expected(Pooling.CLS, ids), within(1e-4f));
    }

    @Test
    void longTextsAreCutToTheMaximumKeepingTheClosingToken() {
        String longText = "abcdefghijklmnopqrstuvwxyz";
        int[] full = ids(longText);
        int[] cut = new int[16];
        System.arraycopy(full, 0, cut, 0, 15);
        cut[15] = FakeEncoders.SEP;
        assertThat(short16.embed(List.of(longText), raw(Pooling.LAST_TOKEN)).getFirst())
                .containsExactly(expected(Pooling.LAST_TOKEN, cut), within(1e-4f));
        assertThat(pipeline.embed(List.of(longText), raw(Pooling.MEAN).withMaxLength(5)).getFirst())
                .containsExactly(expected(Pooling.MEAN, new int[] {full[0], full[1], full[2], full[3], FakeEncoders.SEP}), within(1e-4f));
    }

    @Test
    void truncationFailNamesTheText() {
        EmbeddingOptions fail = EmbeddingOptions.defaults().withTruncation(EmbeddingOptions.Truncation.FAIL);
        assertThat(short16.embed(List.of("fourteen chars"), fail)).hasSize(1); // 16 tokens: fits
        assertThatThrownBy(() -> short16.embed(List.of("ok", "fifteen chars!!"), fail))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("text 1 is 17 tokens long").hasMessageContaining("maximum of 16");
    }

    @Test
    void maxLengthMustFitTheModelAndLeaveRoomForText() {
        var fixed = new EmbeddingPipeline(new FakeEncoders.RecordingEncoder(8), new FakeEncoders.CharTokenizer(), 8);
        assertThatThrownBy(() -> fixed.embed(List.of("a"), EmbeddingOptions.defaults().withMaxLength(9)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("8 positions");
        assertThatThrownBy(() -> pipeline.embed(List.of("a"), EmbeddingOptions.defaults().withMaxLength(2)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("no room");
    }

    /** A runtime failure on a batch longer than the model's maximum (raised by the options) says so. */
    @Test
    void aFailureBeyondTheModelsMaximumNamesTheRaisedLength() {
        var positions12 = new FakeEncoders.RecordingEncoder(0) {
            @Override
            public void run(EncoderBatch batch, java.util.function.Consumer<java.nio.FloatBuffer> output) {
                if (batch.length() > 12) {
                    throw new dev.peregrine.PeregrineException("the runtime failed on " + batch.length() + " tokens");
                }
                super.run(batch, output);
            }
        };
        var pipeline10 = new EmbeddingPipeline(positions12, new FakeEncoders.CharTokenizer(), 10);
        String text = "a text of twenty chars";
        assertThat(pipeline10.embed(List.of(text), raw(Pooling.MEAN))).hasSize(1); // cut at 10: fits
        assertThatThrownBy(() -> pipeline10.embed(List.of(text), raw(Pooling.MEAN).withMaxLength(16)))
                .isInstanceOf(dev.peregrine.PeregrineException.class)
                .hasMessageContaining("the runtime failed on 16 tokens")
                .hasMessageContaining("the batch's 16 tokens are more than the model's maximum of 10");
    }

    @Test
    void aModelWithAFixedInputLengthGetsEveryBatchPaddedToIt() {
        var fixed = new FakeEncoders.RecordingEncoder(32);
        List<float[]> vectors = new EmbeddingPipeline(fixed, new FakeEncoders.CharTokenizer(), 32)
                .embed(TEXTS, raw(Pooling.MEAN).withBatchSize(4));
        assertThat(fixed.batches).extracting(EncoderBatch::length).containsOnly(32);
        for (int i = 0; i < TEXTS.size(); i++) {
            assertThat(vectors.get(i)).containsExactly(expected(Pooling.MEAN, ids(TEXTS.get(i))), within(1e-4f));
        }
    }

    @Test
    void emptyInputGivesNoVectorsAndNullTextsAreRejected() {
        assertThat(pipeline.embed(List.of(), EmbeddingOptions.defaults())).isEmpty();
        assertThatThrownBy(() -> pipeline.embed(Arrays.asList("a", null), EmbeddingOptions.defaults()))
                .isInstanceOf(NullPointerException.class).hasMessageContaining("text 1");
    }

    @Test
    void optionsRejectNonsense() {
        assertThatThrownBy(() -> EmbeddingOptions.defaults().withBatchSize(0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> EmbeddingOptions.defaults().withMaxLength(-1)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> EmbeddingOptions.defaults().withPooling(null)).isInstanceOf(NullPointerException.class);
    }
}
