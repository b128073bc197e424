package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.Completion;
import dev.peregrine.FinishReason;
import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.cpu.CpuBackendProvider;
import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.gguf.GgufTensorInfo;
import dev.peregrine.kv.KvCache;
import dev.peregrine.kv.KvSequence;
import dev.peregrine.model.LlamaConfig;
import dev.peregrine.model.LlamaGraph;
import dev.peregrine.model.LlamaWeights;
import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BackendConfig;
import dev.peregrine.spi.BatchLayout;
import dev.peregrine.spi.Buffer;
import dev.peregrine.spi.Weight;
import dev.peregrine.synth.FileType;
import dev.peregrine.synth.ModelShape;
import dev.peregrine.synth.SyntheticModel;
import dev.peregrine.synth.TokenizerMetadata;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

/** Synthetic models (dev.peregrine.synth) loaded and run by Peregrine on the CPU backend. */
class SyntheticModelTest {
    /**
     * llama3.2-1b's proportions at a small width: 16 layers, head size 64, 4 query heads per KV
     * head, FFN 4 x dim, tied embeddings, rope base 500000.
     */
    static final ModelShape LLAMA_3_2_RATIOS =
            new ModelShape("llama3.2-1b-ratios", 256, 16, 4, 1, 1024, 512, 1024, 500000f, 1e-5f, true, false);
    static final int TOKENS = 512;
    /** tiny's vocabulary at widths K-quants take (rows of 256 and 512 values). */
    static final ModelShape TINY_K = new ModelShape("tiny-k", 256, 2, 4, 2, 512, 512, 2048, 10000f, 1e-5f, false, false);

    @TempDir
    Path dir;

    private Path write(ModelShape shape, DType type, long seed) {
        Path file = dir.resolve(shape.name() + "-" + type + "-" + seed + ".gguf");
        SyntheticModel.of(shape, seed).writeGguf(file, type, TokenizerMetadata.synthetic(shape.vocab()), 0);
        return file;
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void tinyLoadsAndGeneratesInEveryDtype(DType type) {
        long t0 = System.nanoTime();
        ModelShape shape = type.hasSuperBlocks() ? TINY_K : ModelShape.named("tiny");
        Path file = write(shape, type, 0);
        System.out.printf("[SyntheticModelTest] %s %s written in %.1f ms%n", shape.name(), type, (System.nanoTime() - t0) / 1e6);
        try (Model model = Model.load(file)) {
            assertThat(model.vocabularySize()).isEqualTo(512);
            Completion c = model.generator().generate("Once upon a time", GenerationConfig.greedy().maxTokens(12));
            assertThat(c.finishReason()).isIn(FinishReason.MAX_TOKENS, FinishReason.END_OF_SEQUENCE);
            assertThat(c.outputTokens()).isNotEmpty();
            assertThat(Arrays.stream(c.outputTokens()).allMatch(id -> id >= 0 && id < 512)).isTrue();
            // The completion's text continues the prompt's (a leading space is kept).
            int[] all = new int[c.promptTokens().length + c.outputTokens().length];
            System.arraycopy(c.promptTokens(), 0, all, 0, c.promptTokens().length);
            System.arraycopy(c.outputTokens(), 0, all, c.promptTokens().length, c.outputTokens().length);
            assertThat(model.decode(all)).isEqualTo("Once upon a time" + c.text());

            String text = "Hello world, the day is long.";
            int[] ids = model.encode(text);
            assertThat(ids[0]).isEqualTo(1); // BOS
            assertThat(model.decode(Arrays.copyOfRange(ids, 1, ids.length))).isEqualTo(text);
        }
    }

    @Test
    void sameSeedGeneratesTheSameTokensDifferentSeedOtherTokens() {
        GenerationConfig greedy = GenerationConfig.greedy().maxTokens(20);
        int[] a;
        int[] b;
        int[] c;
        try (Model m = Model.load(write(ModelShape.named("tiny"), DType.F16, 1))) {
            a = m.generator().generate("Once upon a time", greedy).outputTokens();
        }
        try (Model m = Model.load(write(ModelShape.named("tiny"), DType.F16, 1))) {
            b = m.generator().generate("Once upon a time", greedy).outputTokens();
        }
        try (Model m = Model.load(write(ModelShape.named("tiny"), DType.F16, 2))) {
            c = m.generator().generate("Once upon a time", greedy).outputTokens();
        }
        assertThat(b).containsExactly(a);
        assertThat(c).isNotEqualTo(a);
    }

    /**
     * 512 tokens in one step through 16 layers, logits wanted at every position: every logit and
     * every value of the last layer's output (the input of the final norm) is finite, and the
     * residual stream keeps the order of magnitude the initialisation aims for (each of the 32
     * residual branches adds variance of about 1/32 or less, so its RMS stays near or below 1).
     * The first positions also match the independent float64 reference forward.
     */
    @Test
    void llama32Ratios512TokensHaveFiniteLogitsAndActivations() {
        ModelShape shape = LLAMA_3_2_RATIOS;
        Path path = write(shape, DType.Q8_0, 3);
        int vocab = shape.vocab();
        int[] tokens = new int[TOKENS];
        Random random = new Random(17);
        tokens[0] = 1;
        for (int i = 1; i < TOKENS; i++) {
            tokens[i] = random.nextInt(3, vocab);
        }
        float[] logits = new float[TOKENS * vocab];
        ActivationProbe probe;
        try (Arena arena = Arena.ofShared()) {
            GgufFile file = GgufFile.open(path, arena);
            LlamaConfig config = LlamaConfig.fromGguf(path, file.metadata(), vocab);
            probe = new ActivationProbe(new CpuBackendProvider().create(new BackendConfig(2, 0)));
            try {
                LlamaWeights weights = LlamaWeights.load(file, config, probe.backend);
                KvCache kv = new KvCache(probe.backend, config.layers(), config.kvHeads(), config.headDim(), TOKENS / 16,
                        16);
                LlamaGraph graph = new LlamaGraph(config, weights, probe.backend, kv, TOKENS);
                BatchLayout layout = new BatchLayout(kv.blockSize());
                try (KvSequence seq = kv.newSequence()) {
                    seq.reserve(TOKENS);
                    layout.addSequence(seq.blockTable(), seq.blockCount());
                    for (int p = 0; p < TOKENS; p++) {
                        layout.addToken(0, tokens[p], p, true);
                    }
                    long t0 = System.nanoTime();
                    graph.forward(layout, logits);
                    System.out.printf("[SyntheticModelTest] %s: %d tokens in %.1f s%n", shape.name(), TOKENS, (System.nanoTime() - t0) / 1e9);
                    seq.advance(TOKENS);
                }
            } finally {
                probe.backend.close();
            }

            for (int i = 0; i < logits.length; i++) {
                assertThat(Float.isFinite(logits[i])).as("logit %d of position %d", i % vocab, i / vocab).isTrue();
            }
            assertThat(probe.lastLayer).as("the final norm's input was captured").hasSize(TOKENS * shape.dim());
            double sumSquares = 0;
            for (float v : probe.lastLayer) {
                assertThat(Float.isFinite(v)).isTrue();
                sumSquares += (double) v * v;
            }
            double rms = Math.sqrt(sumSquares / probe.lastLayer.length);
            System.out.printf("[SyntheticModelTest] last layer output RMS %.3f%n", rms);
            assertThat(rms).isBetween(0.05, 2.0);

            ReferenceLlama reference = new ReferenceLlama(file);
            for (int p = 0; p < 24; p++) {
                double[] expected = reference.forward(tokens[p], p);
                ReferenceForwardTest.check("position " + p, logits, p * vocab, expected);
            }
        }
    }

    /**
     * Q3_K_M, Q4_K_M and Q5_K_M files (mixed as llama.cpp does over 8 layers) load and generate greedily,
     * and their logits over a prompt and 30 greedy steps match the float64 reference, which decodes
     * the blocks with its own code. 256 wide, the matrices are K-quants; 288 wide (as SmolLM2's 576 or
     * Qwen2.5-0.5B's 896), the rows of 288 take llama.cpp's fallbacks, Q4_0, Q5_0 or Q5_1 with Q8_0,
     * and only ffn_down (rows of 512) stays a K-quant.
     */
    @ParameterizedTest
    @CsvSource({"q4_k_m, 256", "q5_k_m, 256", "q3_k_m, 256", "q4_k_m, 288", "q5_k_m, 288", "q3_k_m, 288"})
    void kQuantMixesGenerateAndMatchTheReference(String mix, int dim) {
        FileType fileType = FileType.MIXES.stream().filter(f -> f.name().equals(mix)).findFirst().orElseThrow();
        ModelShape shape = new ModelShape("k-8-layers", dim, 8, 4, 2, 512, 512, 1024, 10000f, 1e-5f, false, false);
        Path file = dir.resolve(mix + "-" + dim + ".gguf");
        SyntheticModel.of(shape, 7).writeGguf(file, fileType, TokenizerMetadata.synthetic(shape.vocab()), 0);
        try (Model model = Model.load(file)) {
            GenerationConfig greedy = GenerationConfig.greedy().maxTokens(12);
            Completion c = model.generator().generate("Once upon a time", greedy);
            assertThat(c.outputTokens()).isNotEmpty();
            assertThat(model.generator().generate("Once upon a time", greedy).outputTokens()).containsExactly(c.outputTokens());
        }
        try (ReferenceForwardTest.RealPath real = new ReferenceForwardTest.RealPath(file, 64, 16, 16)) {
            DType fallback = switch (fileType.base()) {
                case Q3_K -> DType.Q4_0;
                case Q4_K -> DType.Q5_0;
                default -> DType.Q5_1;
            };
            DType[] expectedTypes = dim == 256 ? new DType[] {fileType.base(), DType.Q6_K} : new DType[] {fallback, DType.Q8_0};
            assertThat(real.file.tensorInfos()).extracting(GgufTensorInfo::type).contains(expectedTypes);
            ReferenceLlama reference = new ReferenceLlama(real.file);
            double worst = ReferenceForwardTest.runAndCompare(mix, real, reference,
                    ReferenceForwardTest.prompt(shape.vocab(), 42));
            System.out.printf("[SyntheticModelTest] %s, dim %d: prompt + %d greedy steps, worst relative error %.3e%n",
                    mix, dim, ReferenceForwardTest.DECODE_STEPS, worst);
        }
    }

    /**
     * Files of the low-bit types (every matrix one type, as llama-quantize --pure writes): their
     * logits over a prompt and 30 greedy steps match the float64 reference, which decodes the blocks
     * with its own code (written after ggml's loops, not Peregrine's).
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q2_K", "Q3_K", "IQ4_NL", "IQ4_XS"})
    void lowBitFilesMatchTheReference(DType type) {
        ModelShape shape = new ModelShape("k-4-layers", 256, 4, 4, 2, 512, 512, 1024, 10000f, 1e-5f, false, false);
        Path file = write(shape, type, 3);
        try (ReferenceForwardTest.RealPath real = new ReferenceForwardTest.RealPath(file, 64, 16, 16)) {
            assertThat(real.file.tensorInfos()).extracting(GgufTensorInfo::type).contains(type);
            ReferenceLlama reference = new ReferenceLlama(real.file);
            double worst = ReferenceForwardTest.runAndCompare(type.name(), real, reference,
                    ReferenceForwardTest.prompt(shape.vocab(), 42));
            System.out.printf("[SyntheticModelTest] %s: prompt + %d greedy steps, worst relative error %.3e%n",
                    type, ReferenceForwardTest.DECODE_STEPS, worst);
        }
    }

    /**
     * Wraps a backend (a dynamic proxy, so it follows the SPI as it grows) and keeps a copy of the
     * input of every RMS norm with the output norm weight: the last layer's output rows, which the
     * graph normalises a chunk of rows at a time.
     */
    static final class ActivationProbe {
        final Backend backend;
        Weight outputNorm;
        float[] lastLayer = new float[0];

        ActivationProbe(Backend delegate) {
            InvocationHandler handler = (proxy, method, args) -> {
                Object result;
                try {
                    result = method.invoke(delegate, args);
                } catch (InvocationTargetException e) {
                    throw e.getCause();
                }
                if (method.getName().equals("upload") && args[0] instanceof Tensor t && t.name().equals("output_norm.weight")) {
                    outputNorm = (Weight) result;
                } else if (method.getName().equals("rmsNorm") && args[2] == outputNorm && outputNorm != null) {
                    int rows = (Integer) args[3];
                    int width = (Integer) args[4];
                    int at = lastLayer.length;
                    lastLayer = Arrays.copyOf(lastLayer, at + rows * width);
                    delegate.read((Buffer) args[1], 0, lastLayer, at, rows * width);
                }
                return result;
            };
            backend = (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class}, handler);
        }
    }
}
