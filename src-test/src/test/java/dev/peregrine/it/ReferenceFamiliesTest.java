package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.gguf.GgufMetadata;
import dev.peregrine.format.gguf.GgufValueType;
import dev.peregrine.format.gguf.GgufWriter;
import dev.peregrine.tensor.DType;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The float64 {@link ReferenceLlama} checked on its own, before the engine is compared with it:
 * tiny GGUF files written by hand (as llama.cpp's converter lays them out) and properties that an
 * independent computation gives, without any engine code.
 *
 * <ul>
 *   <li>Sliding windows: a window at least as long as the sequence (or 0 where the converter writes
 *       0 for none) changes nothing; a one-layer model with window W gives, at position p, exactly
 *       the logits of a fresh run over the last W tokens (attention with rope depends only on
 *       relative positions), which pins the off-by-one of the mask.</li>
 *   <li>Which layers slide (gemma2: even, gemma3: il % 6 < 5), by zeroing every layer but one.</li>
 *   <li>Gemma 3's per-layer rope: a sliding layer ignores the file's base and scaling.</li>
 *   <li>Soft-caps: a huge cap is no cap; a final cap c gives c tanh(z / c) of the uncapped logits.</li>
 *   <li>Layouts: phi3's fused qkv and gate-up rows and qwen2's NEOX rope equal a llama file holding
 *       the same rows split and q/k permuted as convert_hf_to_gguf.py permutes them for llama
 *       (normal rope on permuted rows is NEOX rope on the original rows).</li>
 * </ul>
 */
class ReferenceFamiliesTest {
    private static final int DIM = 32;
    private static final int HEADS = 4;
    private static final int KV_HEADS = 2;
    private static final int FFN = 48;
    private static final int VOCAB = 40;
    private static final int TOKENS = 12;

    @TempDir
    Path dir;

    private int fileCount;

    // ---------------------------------------------------------------- sliding windows

    @ParameterizedTest
    @ValueSource(strings = {"llama", "phi3", "gemma2", "gemma3"})
    void aWindowAtLeastAsLongAsTheSequenceChangesNothing(String arch) {
        Tiny m = Tiny.of(arch, 2, 1);
        double[][] unbounded = run(m.window(arch.equals("gemma2") ? 1_000_000 : -1));
        assertThat(run(m.window(TOKENS))).isDeepEqualTo(unbounded);
        if (arch.equals("llama") || arch.equals("phi3") || arch.equals("gemma3")) {
            assertThat(run(m.window(0))).as("0 is no window").isDeepEqualTo(unbounded);
        }
        // A short window: nothing masked before position W, something changed at every later one.
        int w = 3;
        double[][] windowed = run(m.window(w));
        for (int p = 0; p < TOKENS; p++) {
            if (p < w) {
                assertThat(windowed[p]).as("position %d", p).containsExactly(unbounded[p]);
            } else {
                assertThat(maxRelativeDiff(windowed[p], unbounded[p])).as("position %d", p).isGreaterThan(1e-3);
            }
        }
    }

    /**
     * One layer, window W: the keys and values of a position depend only on its token, and q.k on
     * the distance between positions, so position p sees exactly what the last position of a fresh
     * run over tokens p-W+1..p sees.
     */
    @ParameterizedTest
    @ValueSource(strings = {"llama", "phi3", "gemma2", "gemma3"})
    void oneSlidingLayerSeesExactlyTheLastWTokens(String arch) {
        int w = 4;
        Tiny m = Tiny.of(arch, 1, 2).window(w);
        int[] tokens = tokens(5);
        double[][] windowed = run(m, tokens);
        try (Arena arena = Arena.ofShared()) {
            GgufFile file = GgufFile.open(m.write(next()), arena);
            for (int p = w - 1; p < TOKENS; p++) {
                ReferenceLlama fresh = new ReferenceLlama(file);
                double[] last = null;
                for (int i = 0; i < w; i++) {
                    last = fresh.forward(tokens[p - w + 1 + i], i);
                }
                assertThat(maxRelativeDiff(windowed[p], last)).as("position %d", p).isLessThan(1e-12);
            }
            // And without the window the same comparison fails (earlier tokens are seen).
            ReferenceLlama fresh = new ReferenceLlama(file);
            double[] last = null;
            for (int i = 0; i < w; i++) {
                last = fresh.forward(tokens[TOKENS - w + i], i);
            }
            double[] full = run(Tiny.of(arch, 1, 2).window(arch.equals("gemma2") ? 1_000_000 : -1), tokens)[TOKENS - 1];
            assertThat(maxRelativeDiff(full, last)).isGreaterThan(1e-3);
        }
    }

    /** llama.cpp reads no window from a llama file and has disabled Phi-3's: both attend to everything. */
    @ParameterizedTest
    @ValueSource(strings = {"llama", "phi3"})
    void asLlamaCppReadsThemLlamaAndPhi3FilesDoNotSlide(String arch) {
        Tiny m = Tiny.of(arch, 2, 1);
        double[][] unbounded = run(m.window(-1), tokens(1), null, false);
        assertThat(run(m.window(3), tokens(1), null, false)).isDeepEqualTo(unbounded);
        assertThat(maxRelativeDiff(last(run(m.window(3), tokens(1), null, true)), last(unbounded)))
                .as("as transformers reads them they slide").isGreaterThan(1e-3);
    }

    /** Only layer {@code active} does anything (the others' attn_output and ffn_down are zero). */
    private static Tiny onlyLayer(String arch, int layers, int active, long seed) {
        Tiny m = Tiny.of(arch, layers, seed);
        for (int l = 0; l < layers; l++) {
            if (l != active) {
                m.fill("blk." + l + ".attn_output.weight", 0);
                m.fill("blk." + l + ".ffn_down.weight", 0);
            }
        }
        return m;
    }

    @Test
    void gemma2SlidesOnEvenLayers() {
        for (int active = 0; active < 3; active++) {
            Tiny m = onlyLayer("gemma2", 3, active, 3);
            boolean changed = maxRelativeDiff(last(run(m.window(2))), last(run(m.window(1_000_000)))) > 1e-3;
            assertThat(changed).as("layer %d slides", active).isEqualTo(active % 2 == 0);
        }
    }

    @Test
    void gemma3SlidesOnFiveLayersOfSix() {
        for (int active = 0; active < 7; active++) {
            Tiny m = onlyLayer("gemma3", 7, active, 4);
            boolean changed = maxRelativeDiff(last(run(m.window(2))), last(run(m.window(TOKENS)))) > 1e-3;
            assertThat(changed).as("layer %d slides", active).isEqualTo(active % 6 < 5);
        }
    }

    /**
     * The same weights in layer 0 (sliding: base 10000, no scaling) or layer 5 (global: the file's
     * base and scaling) of an otherwise inert gemma3 model.
     */
    @Test
    void gemma3SlidingLayersKeepBase10000AndNoScaling() {
        Tiny local = onlyLayer("gemma3", 6, 0, 5).window(TOKENS);
        Tiny global = onlyLayer("gemma3", 6, 0, 5).window(TOKENS).swapLayers(0, 5);
        double[][] reference = run(local.ropeBase(10000));
        assertThat(run(global.ropeBase(10000))).as("global layer, base 10000").isDeepEqualTo(reference);
        assertThat(run(local.ropeBase(1e6))).as("sliding layer ignores the base").isDeepEqualTo(reference);
        assertThat(run(local.ropeBase(10000).linearScaling(4))).as("and the scaling").isDeepEqualTo(reference);
        assertThat(maxRelativeDiff(last(run(global.ropeBase(1e6))), last(reference))).isGreaterThan(1e-3);

        // The global layer reads gemma3.rope.scaling.*: the same as the formula given explicitly.
        double[][] scaled = run(global.ropeBase(10000).linearScaling(4));
        assertThat(maxRelativeDiff(last(scaled), last(reference))).isGreaterThan(1e-3);
        Tiny unscaled = onlyLayer("gemma3", 6, 0, 5).window(TOKENS).swapLayers(0, 5).ropeBase(10000);
        assertThat(run(unscaled, tokens(1), ReferenceLlama.Rope.linear(10000, 8, 4))).isDeepEqualTo(scaled);
    }

    // ---------------------------------------------------------------- soft-caps

    @Test
    void gemma2SoftCapsDefaultTo50And30() {
        Tiny m = Tiny.of("gemma2", 2, 6);
        assertThat(run(m)).isDeepEqualTo(run(m.softCaps(50, 30)));
    }

    @Test
    void gemma2HugeCapsAreNoCapsAndTheFinalCapIsCTanhZOverC() {
        Tiny m = Tiny.of("gemma2", 2, 7);
        double[][] uncapped = run(m.softCaps(1e8, 1e8));
        double[][] finalCapped = run(m.softCaps(1e8, 3));
        for (int p = 0; p < TOKENS; p++) {
            double[] expected = Arrays.stream(uncapped[p]).map(z -> 3 * Math.tanh(z / 3)).toArray();
            assertThat(maxRelativeDiff(finalCapped[p], expected)).as("position %d", p).isLessThan(1e-12);
        }
        assertThat(Arrays.stream(uncapped[TOKENS - 1]).map(Math::abs).max().orElseThrow())
                .as("the final cap acts on logits beyond it").isGreaterThan(3);
        assertThat(maxRelativeDiff(last(run(m.softCaps(0.5, 1e8))), last(uncapped)))
                .as("an attention cap of 0.5 matters").isGreaterThan(1e-3);
    }

    @Test
    void gemma3IsUncappedWithoutTheKeys() {
        Tiny m = Tiny.of("gemma3", 2, 8).window(TOKENS);
        double[][] plain = run(m);
        double[][] huge = run(m.softCaps(1e8, 1e8));
        for (int p = 0; p < TOKENS; p++) {
            assertThat(maxRelativeDiff(huge[p], plain[p])).isLessThan(1e-12);
        }
        double[][] finalCapped = run(Tiny.of("gemma3", 2, 8).window(TOKENS).finalCap(2));
        double[] expected = Arrays.stream(last(plain)).map(z -> 2 * Math.tanh(z / 2)).toArray();
        assertThat(maxRelativeDiff(last(finalCapped), expected)).isLessThan(1e-12);
    }

    // ---------------------------------------------------------------- layouts

    /** Phi3 (fused, NEOX) and llama (split, q/k rows permuted, normal rope) are the same model. */
    @Test
    void phi3FusedRowsEqualALlamaFileWithTheRowsSplitAndPermuted() {
        Tiny llama = Tiny.of("llama", 2, 9);
        Tiny phi3 = llama.asNeox("phi3");
        phi3.fuse("attn_qkv", "attn_q", "attn_k", "attn_v");
        phi3.fuse("ffn_up", "ffn_gate", "ffn_up");
        assertThat(phi3.tensors).containsKey("blk.1.attn_qkv.weight").doesNotContainKey("blk.1.ffn_gate.weight");
        assertSameLogits(run(phi3), run(llama));
    }

    @Test
    void qwen2WithZeroBiasesEqualsTheLlamaFileAndItsBiasesMatter() {
        Tiny llama = Tiny.of("llama", 2, 10);
        Tiny qwen2 = llama.asNeox("qwen2").withBiases(0);
        assertSameLogits(run(qwen2), run(llama));
        for (String bias : new String[] {"attn_q.bias", "attn_k.bias", "attn_v.bias"}) {
            Tiny biased = llama.asNeox("qwen2").withBiases(0);
            biased.fill("blk.0." + bias, 0.5f);
            assertThat(maxRelativeDiff(last(run(biased)), last(run(qwen2)))).as(bias).isGreaterThan(1e-3);
        }
    }

    /** Rope scaling keys are read under the family's own prefix (qwen2.rope.scaling.*, as for Qwen2.5 YaRN). */
    @Test
    void qwen2ReadsItsOwnRopeScalingKeys() {
        Tiny plain = Tiny.of("llama", 1, 14).asNeox("qwen2").withBiases(0.05f);
        Tiny yarn = plain.with(t -> {
            t.meta.put("qwen2.rope.scaling.type", new Object[] {GgufValueType.STRING, "yarn"});
            t.f32("rope.scaling.factor", 4f);
            t.u32("rope.scaling.original_context_length", 256);
        });
        double[][] fromKeys = run(yarn);
        ReferenceLlama.Rope formula = ReferenceLlama.Rope.yarn(10000, 8, 4, 256, 32, 1, 0.1 * Math.log(4) + 1);
        assertThat(run(plain, tokens(1), formula)).isDeepEqualTo(fromKeys);
        assertThat(maxRelativeDiff(last(run(plain)), last(fromKeys))).isGreaterThan(1e-3);
    }

    /** Separate attn_q/k/v in a phi3 file (which llama.cpp's create_tensor_qkv also accepts) read the same. */
    @Test
    void phi3ReadsSplitQkvToo() {
        Tiny phi3 = Tiny.of("llama", 1, 11).asNeox("phi3");
        Tiny fused = Tiny.of("llama", 1, 11).asNeox("phi3");
        fused.fuse("attn_qkv", "attn_q", "attn_k", "attn_v");
        fused.fuse("ffn_up", "ffn_gate", "ffn_up");
        phi3.fuse("ffn_up", "ffn_gate", "ffn_up");
        assertThat(run(phi3)).isDeepEqualTo(run(fused));
    }

    // ---------------------------------------------------------------- hyper-parameters

    @Test
    void gemmaAttentionScaleFollowsLlamaCppIncludingThe27BRule() {
        // 27B sizes by layer count: n_embd / n_head = 64 / 2 = 32, head size 16.
        assertThat(scale("gemma2", 46)).isEqualTo(1 / Math.sqrt(32));
        assertThat(scale("gemma2", 42)).isEqualTo(1 / Math.sqrt(16));
        assertThat(scale("gemma3", 62)).isEqualTo(1 / Math.sqrt(32));
        assertThat(scale("gemma3", 46)).isEqualTo(1 / Math.sqrt(16));
        assertThat(scale("llama", 46)).isEqualTo(1 / Math.sqrt(16));
    }

    private static double scale(String arch, int layers) {
        Map<String, Object> values = new LinkedHashMap<>();
        values.put(arch + ".embedding_length", 64L);
        values.put(arch + ".attention.head_count", 2L);
        values.put(arch + ".block_count", (long) layers);
        values.put(arch + ".attention.key_length", 16L);
        GgufMetadata m = GgufMetadata.of(Path.of("none"), values);
        return ReferenceLlama.attentionScale(ReferenceLlama.Family.of(arch), m, arch + ".");
    }

    @Test
    void geluIsTheTanhApproximation() {
        // PyTorch's gelu(1, approximate="tanh"); the erf GELU gives 0.841345.
        assertThat(ReferenceLlama.geluTanh(1)).isCloseTo(0.841192, within(1e-6));
        assertThat(ReferenceLlama.geluTanh(0)).isZero();
    }

    @Test
    void gemmaFilesReadAsGemma() {
        try (Arena arena = Arena.ofShared()) {
            ReferenceLlama g2 = new ReferenceLlama(GgufFile.open(Tiny.of("gemma2", 4, 12).write(next()), arena));
            assertThat(g2.tiedOutput).isTrue();
            assertThat(g2.headDim).isEqualTo(8);
            assertThat(g2.embeddingScale).isEqualTo(Math.sqrt(DIM));
            assertThat(g2.window).containsExactly(4096, 0, 4096, 0);
            assertThat(g2.attentionSoftCap).isEqualTo(50);
            assertThat(g2.finalSoftCap).isEqualTo(30);
            ReferenceLlama g3 = new ReferenceLlama(GgufFile.open(Tiny.of("gemma3", 7, 12).window(512).write(next()), arena));
            assertThat(g3.window).containsExactly(512, 512, 512, 512, 512, 0, 512);
            assertThat(g3.attentionSoftCap).isZero();
            assertThat(g3.finalSoftCap).isZero();
        }
    }

    // ---------------------------------------------------------------- refusals

    @Test
    void tensorsTheReferenceDoesNotUseAreRefused() {
        Tiny qwen2 = Tiny.of("llama", 1, 13).asNeox("qwen2").withBiases(0.1f);
        qwen2.put("blk.0.attn_output.bias", new float[DIM], DIM);
        assertThatThrownBy(() -> open(qwen2)).hasMessageContaining("blk.0.attn_output.bias");

        Tiny phi3 = Tiny.of("llama", 1, 13).asNeox("phi3");
        phi3.fuse("ffn_up", "ffn_gate", "ffn_up");
        phi3.put("rope_factors_long.weight", new float[4], 4);
        assertThatThrownBy(() -> open(phi3)).hasMessageContaining("rope_factors_long.weight");

        Tiny gemma2 = Tiny.of("gemma2", 1, 13);
        gemma2.put("rope_freqs.weight", new float[4], 4);
        assertThatThrownBy(() -> open(gemma2)).hasMessageContaining("rope_freqs.weight");

        Tiny unknown = Tiny.of("llama", 1, 13).asNeox("gpt2");
        assertThatThrownBy(() -> open(unknown)).hasMessageContaining("gpt2");
    }

    private void open(Tiny m) {
        try (Arena arena = Arena.ofShared()) {
            new ReferenceLlama(GgufFile.open(m.write(next()), arena));
        }
    }

    // ---------------------------------------------------------------- helpers

    private Path next() {
        return dir.resolve("m" + (fileCount++) + ".gguf");
    }

    private static int[] tokens(long seed) {
        Random r = new Random(seed);
        int[] t = new int[TOKENS];
        for (int i = 0; i < t.length; i++) {
            t[i] = r.nextInt(VOCAB);
        }
        return t;
    }

    private double[][] run(Tiny m) {
        return run(m, tokens(1));
    }

    private double[][] run(Tiny m, int[] tokens) {
        return run(m, tokens, null);
    }

    /**
     * The logits after every token of a fresh reference on the file {@code m} writes, its sliding
     * windows read as transformers reads them (the same as llama.cpp's reading but for llama and
     * phi3 files, where llama.cpp slides nothing).
     */
    private double[][] run(Tiny m, int[] tokens, ReferenceLlama.Rope rope) {
        return run(m, tokens, rope, true);
    }

    private double[][] run(Tiny m, int[] tokens, ReferenceLlama.Rope rope, boolean transformersWindows) {
        try (Arena arena = Arena.ofShared()) {
            ReferenceLlama ref = new ReferenceLlama(GgufFile.open(m.write(next()), arena), rope);
            if (transformersWindows) {
                ref.withTransformersWindows();
            }
            double[][] out = new double[tokens.length][];
            for (int p = 0; p < tokens.length; p++) {
                out[p] = ref.forward(tokens[p], p);
            }
            return out;
        }
    }

    private static double[] last(double[][] logits) {
        return logits[logits.length - 1];
    }

    private static void assertSameLogits(double[][] a, double[][] b) {
        for (int p = 0; p < a.length; p++) {
            assertThat(maxRelativeDiff(a[p], b[p])).as("position %d", p).isLessThan(1e-12);
        }
    }

    /** max |a - b| / max |b|. */
    private static double maxRelativeDiff(double[] a, double[] b) {
        double diff = 0;
        double scale = 0;
        for (int i = 0; i < b.length; i++) {
            diff = Math.max(diff, Math.abs(a[i] - b[i]));
            scale = Math.max(scale, Math.abs(b[i]));
        }
        return diff / scale;
    }

    /**
     * A tiny model as GGUF metadata and F32 tensors, copied on every change. Dimensions: dim 32, 4
     * heads of 8 (so q is 32 wide), 2 kv heads; Gemma files say key_length 8 and have no output.
     */
    static final class Tiny {
        final String arch;
        final LinkedHashMap<String, Object[]> meta = new LinkedHashMap<>(); // key -> {type, value}
        final LinkedHashMap<String, float[]> tensors = new LinkedHashMap<>();
        final LinkedHashMap<String, long[]> shapes = new LinkedHashMap<>();

        private Tiny(String arch) {
            this.arch = arch;
        }

        private Tiny copy(String newArch) {
            Tiny t = new Tiny(newArch);
            meta.forEach((k, v) -> t.meta.put(k.startsWith(arch + ".") ? newArch + k.substring(arch.length()) : k, v));
            t.meta.put("general.architecture", new Object[] {GgufValueType.STRING, newArch});
            tensors.forEach((k, v) -> t.tensors.put(k, v.clone()));
            t.shapes.putAll(shapes);
            return t;
        }

        private Tiny with(Consumer<Tiny> change) {
            Tiny t = copy(arch);
            change.accept(t);
            return t;
        }

        static Tiny of(String arch, int layers, long seed) {
            Random r = new Random(seed);
            Tiny t = new Tiny(arch);
            boolean gemma = arch.startsWith("gemma");
            int head = DIM / HEADS;
            t.meta.put("general.architecture", new Object[] {GgufValueType.STRING, arch});
            t.u32("context_length", 4096).u32("embedding_length", DIM).u32("block_count", layers)
                    .u32("feed_forward_length", FFN).u32("attention.head_count", HEADS)
                    .u32("attention.head_count_kv", KV_HEADS)
                    .f32("attention.layer_norm_rms_epsilon", 1e-6f).f32("rope.freq_base", 10000f);
            if (gemma) {
                t.u32("attention.key_length", head).u32("attention.value_length", head);
            }
            int q = HEADS * head;
            int kv = KV_HEADS * head;
            t.put("token_embd.weight", random(r, VOCAB * DIM, 1), DIM, VOCAB);
            for (int l = 0; l < layers; l++) {
                String p = "blk." + l + ".";
                t.put(p + "attn_norm.weight", norm(r, DIM), DIM);
                t.put(p + "attn_q.weight", random(r, q * DIM, 0.4), DIM, q);
                t.put(p + "attn_k.weight", random(r, kv * DIM, 0.4), DIM, kv);
                t.put(p + "attn_v.weight", random(r, kv * DIM, 0.4), DIM, kv);
                if (arch.equals("gemma3")) {
                    t.put(p + "attn_q_norm.weight", norm(r, head), head);
                    t.put(p + "attn_k_norm.weight", norm(r, head), head);
                }
                t.put(p + "attn_output.weight", random(r, DIM * q, 0.4), q, DIM);
                if (gemma) {
                    t.put(p + "post_attention_norm.weight", norm(r, DIM), DIM);
                }
                t.put(p + "ffn_norm.weight", norm(r, DIM), DIM);
                t.put(p + "ffn_gate.weight", random(r, FFN * DIM, 0.4), DIM, FFN);
                t.put(p + "ffn_up.weight", random(r, FFN * DIM, 0.4), DIM, FFN);
                t.put(p + "ffn_down.weight", random(r, DIM * FFN, 0.4), FFN, DIM);
                if (gemma) {
                    t.put(p + "post_ffw_norm.weight", norm(r, DIM), DIM);
                }
            }
            t.put("output_norm.weight", norm(r, DIM), DIM);
            if (!gemma) {
                t.put("output.weight", random(r, VOCAB * DIM, 0.5), DIM, VOCAB);
            }
            if (arch.equals("phi3")) {
                t.fuse("attn_qkv", "attn_q", "attn_k", "attn_v");
                t.fuse("ffn_up", "ffn_gate", "ffn_up");
            }
            return t;
        }

        private static float[] random(Random r, int n, double scale) {
            float[] a = new float[n];
            for (int i = 0; i < n; i++) {
                a[i] = (float) (r.nextGaussian() * scale);
            }
            return a;
        }

        /** Norm weights as a Gemma file stores them (1 + w) or any other: around 1. */
        private static float[] norm(Random r, int n) {
            float[] a = new float[n];
            for (int i = 0; i < n; i++) {
                a[i] = (float) (1 + 0.2 * r.nextGaussian());
            }
            return a;
        }

        private Tiny u32(String key, long value) {
            meta.put(arch + "." + key, new Object[] {GgufValueType.UINT32, value});
            return this;
        }

        private Tiny f32(String key, float value) {
            meta.put(arch + "." + key, new Object[] {GgufValueType.FLOAT32, value});
            return this;
        }

        void put(String name, float[] data, long... shape) {
            tensors.put(name, data);
            shapes.put(name, shape);
        }

        void fill(String name, float value) {
            Arrays.fill(tensors.get(name), value);
        }

        /** The sliding-window key set to {@code w}, or removed for a negative {@code w}. */
        Tiny window(int w) {
            return with(t -> {
                if (w < 0) {
                    t.meta.remove(arch + ".attention.sliding_window");
                } else {
                    t.u32("attention.sliding_window", w);
                }
            });
        }

        Tiny softCaps(double attention, double fin) {
            return with(t -> t.f32("attn_logit_softcapping", (float) attention).f32("final_logit_softcapping", (float) fin));
        }

        Tiny finalCap(double fin) {
            return with(t -> t.f32("final_logit_softcapping", (float) fin));
        }

        Tiny ropeBase(double base) {
            return with(t -> t.f32("rope.freq_base", (float) base));
        }

        Tiny linearScaling(double factor) {
            return with(t -> {
                t.meta.put(arch + ".rope.scaling.type", new Object[] {GgufValueType.STRING, "linear"});
                t.f32("rope.scaling.factor", (float) factor);
            });
        }

        /** Exchanges every tensor of layers {@code a} and {@code b}. */
        Tiny swapLayers(int a, int b) {
            return with(t -> {
                String pa = "blk." + a + ".";
                String pb = "blk." + b + ".";
                for (String name : tensors.keySet()) {
                    if (name.startsWith(pa)) {
                        String other = pb + name.substring(pa.length());
                        t.tensors.put(name, tensors.get(other).clone());
                        t.tensors.put(other, tensors.get(name).clone());
                    }
                }
            });
        }

        /**
         * This llama file as a NEOX-rope family: the q and k rows of every head put back in the
         * order transformers holds them, undoing convert_hf_to_gguf.py's LlamaModel.permute
         * ({@code reshape(n_head, 2, head/2, dim).swapaxes(1, 2)}: GGUF row {@code 2i + j} of a head
         * is HF row {@code j * head/2 + i}).
         */
        Tiny asNeox(String newArch) {
            Tiny t = copy(newArch);
            int head = DIM / HEADS;
            for (String name : tensors.keySet()) {
                boolean q = name.endsWith(".attn_q.weight");
                if (q || name.endsWith(".attn_k.weight")) {
                    float[] gguf = tensors.get(name);
                    float[] hf = new float[gguf.length];
                    int headCount = q ? HEADS : KV_HEADS;
                    for (int h = 0; h < headCount; h++) {
                        for (int i = 0; i < head / 2; i++) {
                            for (int j = 0; j < 2; j++) {
                                int ggufRow = h * head + 2 * i + j;
                                int hfRow = h * head + j * head / 2 + i;
                                System.arraycopy(gguf, ggufRow * DIM, hf, hfRow * DIM, DIM);
                            }
                        }
                    }
                    t.tensors.put(name, hf);
                }
            }
            return t;
        }

        /** Qwen2's q/k/v biases, every value {@code value}. */
        Tiny withBiases(float value) {
            return with(t -> {
                int layers = ((Number) meta.get(arch + ".block_count")[1]).intValue();
                int head = DIM / HEADS;
                for (int l = 0; l < layers; l++) {
                    String p = "blk." + l + ".";
                    float[] bq = new float[HEADS * head];
                    float[] bk = new float[KV_HEADS * head];
                    float[] bv = new float[KV_HEADS * head];
                    Arrays.fill(bq, value);
                    Arrays.fill(bk, value);
                    Arrays.fill(bv, value);
                    t.put(p + "attn_q.bias", bq, bq.length);
                    t.put(p + "attn_k.bias", bk, bk.length);
                    t.put(p + "attn_v.bias", bv, bv.length);
                }
            });
        }

        /** Replaces the tensors {@code parts} of every layer by one, their rows concatenated in order. */
        void fuse(String fused, String... parts) {
            int layers = ((Number) meta.get(arch + ".block_count")[1]).intValue();
            for (int l = 0; l < layers; l++) {
                String p = "blk." + l + ".";
                float[] all = new float[0];
                long rows = 0;
                long rowLength = -1;
                for (String part : parts) {
                    float[] data = tensors.remove(p + part + ".weight");
                    long[] shape = shapes.remove(p + part + ".weight");
                    rowLength = shape[0];
                    rows += shape[1];
                    int n = all.length;
                    all = Arrays.copyOf(all, n + data.length);
                    System.arraycopy(data, 0, all, n, data.length);
                }
                put(p + fused + ".weight", all, rowLength, rows);
            }
        }

        Path write(Path file) {
            try (GgufWriter w = GgufWriter.create(file)) {
                meta.forEach((k, v) -> w.put(k, (GgufValueType) v[0], v[1]));
                tensors.forEach((name, data) -> w.addTensor(name, DType.F32, shapes.get(name)));
                tensors.forEach((name, data) -> {
                    ByteBuffer b = ByteBuffer.allocate(4 * data.length).order(ByteOrder.LITTLE_ENDIAN);
                    b.asFloatBuffer().put(data);
                    w.writeTensorData(name, b.array());
                });
            }
            return file;
        }
    }
}
