package dev.peregrine.synth;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.model.Family;
import org.junit.jupiter.api.Test;

class ModelShapeTest {
    private static final String[] SHAPES = {"llama3.2-1b", "smollm2-135m", "qwen2.5-0.5b", "llama3.1-8b", "qwen3-0.6b",
        "gemma2-2b", "gemma3-1b", "phi3-mini", "tiny", "qwen3-tiny", "qwen2-tiny", "mistral-tiny", "gemma2-tiny", "gemma3-tiny",
        "phi3-tiny"};

    @Test
    void namedShapesAreThoseOfTheRealModels() {
        ModelShape l1b = ModelShape.named("llama3.2-1b");
        assertThat(l1b).isEqualTo(new ModelShape("llama3.2-1b", 2048, 16, 32, 8, 8192, 128256, 131072, 500000f, 1e-5f, true, false));
        assertThat(l1b.headDim()).isEqualTo(64);
        assertThat(l1b.kvDim()).isEqualTo(512);
        assertThat(ModelShape.named("smollm2-135m"))
                .isEqualTo(new ModelShape("smollm2-135m", 576, 30, 9, 3, 1536, 49152, 8192, 100000f, 1e-5f, true, false));
        assertThat(ModelShape.named("qwen2.5-0.5b"))
                .isEqualTo(new ModelShape("qwen2.5-0.5b", 896, 24, 14, 2, 4864, 151936, 32768, 1000000f, 1e-6f, true, true));
        assertThat(ModelShape.named("llama3.1-8b"))
                .isEqualTo(new ModelShape("llama3.1-8b", 4096, 32, 32, 8, 14336, 128256, 131072, 500000f, 1e-5f, false, false));
        assertThat(ModelShape.named("qwen2.5-0.5b").family()).isEqualTo(Family.QWEN2);
        assertThat(ModelShape.namedShapes()).containsOnlyKeys(SHAPES);
    }

    /** The parameter counts the models' Hugging Face pages state. */
    @Test
    void parameterCountsMatchThePublishedOnes() {
        assertThat(ModelShape.named("llama3.2-1b").parameterCount()).isEqualTo(1_235_814_400L);
        assertThat(ModelShape.named("llama3.1-8b").parameterCount()).isEqualTo(8_030_261_248L);
        assertThat(ModelShape.named("smollm2-135m").parameterCount()).isEqualTo(134_515_008L);
        // Including its q/k/v biases: 24 x (896 + 128 + 128) = 27,648 of them.
        assertThat(ModelShape.named("qwen2.5-0.5b").parameterCount()).isEqualTo(494_032_768L);
        assertThat(ModelShape.named("qwen3-0.6b").parameterCount()).isEqualTo(596_049_920L);
        assertThat(ModelShape.named("gemma2-2b").parameterCount()).isEqualTo(2_614_341_888L);
        assertThat(ModelShape.named("gemma3-1b").parameterCount()).isEqualTo(999_885_952L);
        assertThat(ModelShape.named("phi3-mini").parameterCount()).isEqualTo(3_821_079_552L);
    }

    @Test
    void tinyIsAFewHundredThousandParametersAndUntied() {
        ModelShape tiny = ModelShape.named("tiny");
        assertThat(tiny.parameterCount()).isBetween(100_000L, 500_000L);
        assertThat(tiny.tiedEmbeddings()).isFalse();
        // 2 x 512 x 64 embeddings + 3 x (2 x 64 + 2 x 64 x 64 + 2 x 64 x 32 + 3 x 64 x 160) + 64
        assertThat(tiny.parameterCount()).isEqualTo(65_536 + 3 * (128 + 8_192 + 4_096 + 30_720) + 64);
    }

    @Test
    void invalidShapesAreRejectedWithTheReason() {
        assertThatThrownBy(() -> new ModelShape("x", 64, 2, 5, 5, 128, 300, 512, 1e4f, 1e-5f, false, false))
                .isInstanceOf(IllegalArgumentException.class).hasMessage("heads (5) must divide dim (64)");
        assertThatThrownBy(() -> new ModelShape("x", 64, 2, 4, 3, 128, 300, 512, 1e4f, 1e-5f, false, false))
                .isInstanceOf(IllegalArgumentException.class).hasMessage("kv-heads (3) must divide heads (4)");
        assertThatThrownBy(() -> new ModelShape("x", 60, 2, 4, 4, 128, 300, 512, 1e4f, 1e-5f, false, false))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("must be even");
        assertThatThrownBy(() -> new ModelShape("x", 64, 0, 4, 4, 128, 300, 512, 1e4f, 1e-5f, false, false))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("layers must be positive");
        assertThatThrownBy(() -> ModelShape.named("llama9"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("unknown shape 'llama9' (known: " + String.join(", ", SHAPES) + ")");
    }
}
