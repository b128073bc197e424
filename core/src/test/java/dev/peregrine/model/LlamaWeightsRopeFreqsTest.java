package dev.peregrine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.peregrine.ModelFormatException;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Tensor;
import dev.peregrine.tensor.TensorSource;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** rope_freqs.weight is checked as llama.cpp checks it, before any weight is uploaded. */
class LlamaWeightsRopeFreqsTest {
    private static final LlamaConfig CONFIG = new LlamaConfig(64, 1, 4, 4, 16, 64, 32, 512, 1e-5f, 10000f, 16);

    private static Throwable load(DType type, long[] shape, float value) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        float[] values = new float[(int) n];
        java.util.Arrays.fill(values, value);
        MemorySegment data = type == DType.F32 ? MemorySegment.ofArray(values) : MemorySegment.ofArray(new short[(int) n]);
        Tensor t = new Tensor(LlamaWeights.ROPE_FREQS, type, shape, data);
        TensorSource source = new TensorSource() {
            @Override
            public Path path() {
                return Path.of("m.gguf");
            }

            @Override
            public Optional<Tensor> findTensor(String name) {
                return name.equals(LlamaWeights.ROPE_FREQS) ? Optional.of(t) : Optional.empty();
            }
        };
        return catchThrowable(() -> LlamaWeights.load(source, CONFIG, null));
    }

    @Test
    void wrongSizeTypeOrValuesAreTypedErrors() {
        assertThat(load(DType.F32, new long[] {16}, 1f)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("rope_freqs.weight").hasMessageContaining("expected F32 of shape [8]");
        assertThat(load(DType.F16, new long[] {8}, 1f)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("F16");
        assertThat(load(DType.F32, new long[] {8}, 0f)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("must be positive");
        // A good one passes the check and the loader goes on to the (missing) token embedding.
        assertThat(load(DType.F32, new long[] {8}, 2f)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("token_embd.weight");
    }
}
