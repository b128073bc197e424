package dev.peregrine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.assertj.core.api.Assertions.within;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufMetadata;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The scaled frequencies against values worked out by hand, and the GGUF keys that select them. */
class RopeScalingTest {
    /** Llama 3.1 8B: rope_theta 500000, head 128, rope_scaling factor 8, low 1, high 4, original 8192. */
    private static final RopeScaling.Llama3 LLAMA_3_1 = new RopeScaling.Llama3(8, 1, 4, 8192);

    @Test
    void llama31Divisors() {
        // Wavelength 2 pi 500000^(i/64): below 8192/4 = 2048 for i <= 28 (kept), above 8192 from i = 35
        // (divided by 8); between, 1 / ((1 - s) / 8 + s) with s = (8192 / wavelength - 1) / 3.
        float[] d = LLAMA_3_1.divisors(500000, 128);
        assertThat(d).hasSize(64);
        for (int i = 0; i <= 28; i++) {
            assertThat(d[i]).as("pair %d", i).isEqualTo(1f);
        }
        for (int i = 35; i < 64; i++) {
            assertThat(d[i]).as("pair %d", i).isEqualTo(8f);
        }
        // i = 29: wavelength 2401.738, s = (3.410853 - 1) / 3 = 0.803618, 1 / (0.024548 + 0.803618) = 1.207484
        assertThat((double) d[29]).isCloseTo(1.207484, within(1e-6));
        // i = 32: wavelength 4442.883 (2 pi 500000^(1/2)), s = 0.281264, 1 / (0.089842 + 0.281264) = 2.694530
        assertThat((double) d[32]).isCloseTo(2.694530, within(1e-6));
        // i = 34: wavelength 6695.109, s = 0.074546, 1 / (0.115682 + 0.074546) = 5.257327
        assertThat((double) d[34]).isCloseTo(5.257327, within(1e-6));

        double[] f = LLAMA_3_1.frequencies(500000, 128);
        assertThat(f[0]).isEqualTo(1.0);
        assertThat(f[32]).isCloseTo(Math.pow(500000, -0.5) / 2.694530, within(1e-10)); // the divisor is a float
        assertThat(f[63]).isCloseTo(Math.pow(500000, -126.0 / 128) / 8, within(1e-15));
    }

    @Test
    void linearDividesEveryFrequency() {
        double[] f = new RopeScaling.Linear(4).frequencies(10000, 8);
        assertThat(f).containsExactly(new double[] {0.25, 0.025, 0.0025, 0.00025}, within(1e-15));
    }

    @Test
    void yarnRampsBetweenTheCorrectionDims() {
        // theta 10000, 16 rotated elements, original context 256: a pair i turns 256 * 10000^(-i/8) / (2 pi)
        // times. beta_fast 32 falls at i = 8 ln(40.74 / 32) / ln 10000 = 0.21 -> floor 0; beta_slow 1 at
        // 8 ln(40.74) / ln 10000 = 3.22 -> ceil 4. So pair i is divided by 4 with weight min(i / 4, 1).
        RopeScaling.Yarn yarn = new RopeScaling.Yarn(4, 256, 32, 1, RopeScaling.Yarn.defaultAttentionFactor(4), true);
        double[] f = yarn.frequencies(10000, 16);
        for (int i = 0; i < 8; i++) {
            double base = Math.pow(10000, -i / 8.0);
            double w = Math.min(i / 4.0, 1);
            assertThat(f[i]).as("pair %d", i).isCloseTo(base * (1 - w) + base / 4 * w, within(1e-15));
        }
        assertThat(yarn.attentionFactor()).isCloseTo(1.138629436, within(1e-9)); // 0.1 ln 4 + 1
        assertThat(RopeScaling.Yarn.defaultAttentionFactor(1)).isEqualTo(1.0);

        // Without truncation the ramp runs from 0.2097 to 3.2207.
        double[] g = new RopeScaling.Yarn(4, 256, 32, 1, 1, false).frequencies(10000, 16);
        double low = 8 * Math.log(256 / (32 * 2 * Math.PI)) / Math.log(10000);
        double high = 8 * Math.log(256 / (2 * Math.PI)) / Math.log(10000);
        double w2 = (2 - low) / (high - low);
        assertThat(g[2]).isCloseTo(0.1 * (1 - w2) + 0.025 * w2, within(1e-15));
    }

    @Test
    void divisorsDivideTheScaledFrequencies() {
        float[] f = RopeScaling.frequencies(10000, 4, RopeScaling.NONE, new float[] {1, 8});
        assertThat(f).containsExactly(1f, 0.00125f);
        assertThat(catchThrowable(() -> RopeScaling.frequencies(10000, 4, RopeScaling.NONE, new float[] {1})))
                .hasMessageContaining("1 rope frequency divisors for 2 pairs");
    }

    private static RopeScaling gguf(Map<String, Object> keys) {
        return LlamaConfig.ropeScalingFromGguf(Path.of("m.gguf"), GgufMetadata.of(Path.of("m.gguf"), keys), 4096);
    }

    @Test
    void ggufKeys() {
        assertThat(gguf(Map.of())).isEqualTo(RopeScaling.NONE);
        assertThat(gguf(Map.of("llama.rope.scaling.type", "none"))).isEqualTo(RopeScaling.NONE);
        // llama.cpp's default type is linear; the key's older name is read too.
        assertThat(gguf(Map.of("llama.rope.scaling.factor", 2f))).isEqualTo(new RopeScaling.Linear(2));
        assertThat(gguf(Map.of("llama.rope.scale_linear", 4f))).isEqualTo(new RopeScaling.Linear(4));
        assertThat(gguf(Map.of("llama.rope.scaling.type", "linear", "llama.rope.scaling.factor", 1f))).isEqualTo(RopeScaling.NONE);

        Map<String, Object> yarn = new LinkedHashMap<>();
        yarn.put("llama.rope.scaling.type", "yarn");
        yarn.put("llama.rope.scaling.factor", 4f);
        assertThat(gguf(yarn)).isEqualTo(new RopeScaling.Yarn(4, 4096, 32, 1, RopeScaling.Yarn.defaultAttentionFactor(4f), true));
        yarn.put("llama.rope.scaling.original_context_length", 1024L);
        yarn.put("llama.rope.scaling.yarn_beta_fast", 16f);
        yarn.put("llama.rope.scaling.yarn_beta_slow", 2f);
        yarn.put("llama.rope.scaling.yarn_attn_factor", 1.5f);
        assertThat(gguf(yarn)).isEqualTo(new RopeScaling.Yarn(4, 1024, 16, 2, 1.5, true));

        yarn.put("llama.rope.scaling.yarn_log_multiplier", 0.1f);
        assertThat(catchThrowable(() -> gguf(yarn))).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("yarn_log_multiplier");
        assertThat(catchThrowable(() -> gguf(Map.of("llama.rope.scaling.type", "longrope"))))
                .isInstanceOf(ModelFormatException.class).hasMessageContaining("\"longrope\"").hasMessageContaining("m.gguf");
        // As llama.cpp: type none with a factor runs unscaled (with a warning).
        assertThat(gguf(Map.of("llama.rope.scaling.type", "none", "llama.rope.scaling.factor", 2f))).isEqualTo(RopeScaling.NONE);
        // llama.cpp multiplies cos and sin by rope.scaling.attn_factor (LongRoPE files): refused, not ignored.
        assertThat(catchThrowable(() -> gguf(Map.of("llama.rope.scaling.type", "linear", "llama.rope.scaling.factor", 2f,
                "llama.rope.scaling.attn_factor", 0.7f)))).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("attn_factor 0.7 is not supported");
        assertThat(catchThrowable(() -> gguf(Map.of("llama.rope.scaling.type", "linear", "llama.rope.scaling.factor", -2f))))
                .isInstanceOf(ModelFormatException.class).hasMessageContaining("invalid rope scaling");
    }

    @Test
    void anAttentionFactorNeedsTheWholeHeadRotated() {
        RopeScaling.Yarn yarn = new RopeScaling.Yarn(4, 256, 32, 1, 1.2, true);
        assertThat(catchThrowable(() -> new LlamaConfig(64, 1, 4, 4, 16, 64, 32, 512, 1e-5f, 10000f, 8, yarn)))
                .hasMessageContaining("8 of 16");
        assertThat(new LlamaConfig(64, 1, 4, 4, 16, 64, 32, 512, 1e-5f, 10000f, 16, yarn).ropeScaling()).isEqualTo(yarn);
    }
}
