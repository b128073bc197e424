package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.hf.HfDirectoryWriter;
import dev.peregrine.model.LlamaWeights;
import dev.peregrine.model.RopeScaling;
import dev.peregrine.synth.ModelShape;
import dev.peregrine.synth.SyntheticModel;
import dev.peregrine.synth.SyntheticVocabulary;
import dev.peregrine.synth.TokenizerMetadata;
import dev.peregrine.tensor.DType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Rope scaling end to end: the same synthetic model with a scaling, written as a GGUF file (llama3
 * as rope_freqs.weight, linear and yarn as llama.rope.scaling.* keys, as llama.cpp's converter does)
 * and as a Hugging Face directory (config.json's rope_scaling), gives bit-identical logits from
 * either, and both match the float64 {@link ReferenceLlama}, once reading the scaling from the GGUF
 * file itself and once computing it from transformers' formulas.
 *
 * <p>The tiny shape has 16-element heads and rope base 10000, so the 8 pairs have wavelengths from
 * 6 to 20000 positions; the parameters put pairs on both sides of, and inside, every transition.
 */
class RopeScalingForwardTest {
    private static final ModelShape TINY = ModelShape.named("tiny");
    private static final int HEAD = 16;
    private static final double THETA = 10000;
    private static final long SEED = 3;
    private static final int TOKENS = 48;

    /** Wavelengths below 512/4 kept (pairs 0-2), above 512 divided by 8 (pairs 4-7), pair 3 blended. */
    private static final RopeScaling.Llama3 LLAMA3 = new RopeScaling.Llama3(8, 1, 4, 512);
    private static final RopeScaling.Linear LINEAR = new RopeScaling.Linear(4);
    /** Ramp over pairs 0 to 4 (see RopeScalingTest), cos and sin times 0.1 ln 4 + 1. */
    private static final RopeScaling.Yarn YARN =
            new RopeScaling.Yarn(4, 256, 32, 1, RopeScaling.Yarn.defaultAttentionFactor(4), true);

    @TempDir
    Path dir;

    private Path gguf(SyntheticModel m, String name) {
        Path file = dir.resolve(name + ".gguf");
        m.writeGguf(file, DType.F32, TokenizerMetadata.synthetic(TINY.vocab()), 1);
        return file;
    }

    private Path hf(SyntheticModel m, String name) throws IOException {
        Path out = dir.resolve(name + "-hf");
        m.writeHf(out, DType.F32, HfDirectoryWriter.DEFAULT_SHARD_LIMIT, 1);
        HfDirectoryTest.writeTokenizer(out, TINY.vocab());
        return out;
    }

    private static int[] tokens() {
        Random random = new Random(9);
        int[] t = new int[TOKENS];
        t[0] = SyntheticVocabulary.BOS_ID;
        for (int i = 1; i < t.length; i++) {
            t[i] = random.nextInt(3, TINY.vocab());
        }
        return t;
    }

    /** The worst relative error of every position's logits against a fresh reference. */
    private static double worstError(float[] real, Path gguf, ReferenceLlama.Rope rope) {
        int[] tokens = tokens();
        try (Arena arena = Arena.ofShared()) {
            GgufFile file = GgufFile.open(gguf, arena);
            ReferenceLlama ref = rope == null ? new ReferenceLlama(file) : new ReferenceLlama(file, rope);
            double worst = 0;
            for (int p = 0; p < tokens.length; p++) {
                double[] expected = ref.forward(tokens[p], p);
                worst = Math.max(worst, ReferenceForwardTest.relativeError(real, p * TINY.vocab(), expected));
            }
            return worst;
        }
    }

    private void check(RopeScaling scaling, ReferenceLlama.Rope formula, String what) throws IOException {
        SyntheticModel model = SyntheticModel.of(TINY, SEED).withRopeScaling(scaling);
        Path gguf = gguf(model, what);
        Path hf = hf(model, what);
        int[] tokens = tokens();
        float[] fromGguf = HfDirectoryTest.logits(gguf, tokens);
        float[] fromHf = HfDirectoryTest.logits(hf, tokens);
        assertThat(fromHf).as("%s: HF directory vs GGUF file", what).containsExactly(fromGguf);

        double fromFile = worstError(fromGguf, gguf, null);
        double fromFormula = worstError(fromHf, gguf, formula);
        assertThat(fromFile).as("%s: GGUF vs reference reading the file", what).isLessThanOrEqualTo(ReferenceForwardTest.TOLERANCE);
        assertThat(fromFormula).as("%s: HF vs reference from the formula", what).isLessThanOrEqualTo(ReferenceForwardTest.TOLERANCE);

        // The scaling matters: plain rope is far off the same reference.
        double plain = worstError(HfDirectoryTest.logits(gguf(SyntheticModel.of(TINY, SEED), what + "-plain"), tokens),
                gguf, formula);
        assertThat(plain).as("%s: plain rope vs the scaled reference", what).isGreaterThan(100 * ReferenceForwardTest.TOLERANCE);
        System.out.printf("[RopeScalingForwardTest] %s: worst relative error %.3e (file), %.3e (formula); plain rope %.3e%n",
                what, fromFile, fromFormula, plain);
    }

    @Test
    void llama3() throws IOException {
        check(LLAMA3, ReferenceLlama.Rope.llama3(THETA, HEAD, 8, 1, 4, 512), "llama3");
        try (Arena arena = Arena.ofShared()) {
            GgufFile file = GgufFile.open(dir.resolve("llama3.gguf"), arena);
            assertThat(file.findTensor(LlamaWeights.ROPE_FREQS)).isPresent();
            assertThat(file.findTensor(LlamaWeights.ROPE_FREQS).get().shape()).containsExactly(HEAD / 2);
            assertThat(file.metadata().optString("llama.rope.scaling.type")).isEmpty();
        }
    }

    @Test
    void linear() throws IOException {
        check(LINEAR, ReferenceLlama.Rope.linear(THETA, HEAD, 4), "linear");
    }

    @Test
    void yarn() throws IOException {
        check(YARN, ReferenceLlama.Rope.yarn(THETA, HEAD, 4, 256, 32, 1, 0.1 * Math.log(4) + 1), "yarn");
    }
    /**
     * Gemma 3 scales only its global layers: the sliding ones rope with base 10000 unscaled, and
     * their scores carry no YaRN factor (llama.cpp's rope_freq_scale_train_swa = 1; transformers'
     * local rope is "default"). Every position's logits against the float64 reference, which ropes
     * each layer so.
     */
    @Test
    void gemma3ScalesOnlyItsGlobalLayers() {
        ModelShape shape = ModelShape.named("gemma3-tiny");
        Path file = dir.resolve("gemma3-yarn.gguf");
        SyntheticModel.of(shape, SEED).withRopeScaling(YARN)
                .writeGguf(file, DType.F32, TokenizerMetadata.synthetic(shape.vocab()), 1);
        int[] tokens = ReferenceForwardTest.prompt(shape.vocab(), 11);
        assertThat(tokens.length).isGreaterThan(shape.slidingWindow());
        ReferenceForwardTest.checkEveryPosition("gemma3 yarn", file, tokens);
    }

    /**
     * A Gemma 2 file that states rope.freq_base_swa: its sliding layers rope with that base,
     * scaled as the global ones (llama.cpp reads the key for every architecture's sliding layers).
     */
    @Test
    void gemma2SlidingLayersTakeTheirOwnBaseWhenStated() throws IOException {
        ModelShape shape = ModelShape.named("gemma2-tiny");
        Path plain = dir.resolve("gemma2.gguf");
        SyntheticModel.of(shape, SEED).withRopeScaling(LINEAR)
                .writeGguf(plain, DType.F32, TokenizerMetadata.synthetic(shape.vocab()), 1);
        Path swa = GgufEdits.withMetadata(plain, dir.resolve("gemma2-swa.gguf"), Map.of("gemma2.rope.freq_base_swa", 500f));
        int[] tokens = ReferenceForwardTest.prompt(shape.vocab(), 13);
        float[] logits = ReferenceForwardTest.checkEveryPosition("gemma2 freq_base_swa", swa, tokens);
        float[] without = HfDirectoryTest.logits(plain, tokens);
        assertThat(without).as("the key changes the sliding layers").isNotEqualTo(logits);
    }
}
