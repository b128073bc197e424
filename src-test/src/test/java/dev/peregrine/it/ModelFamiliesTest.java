package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.assertj.core.api.Assertions.within;

import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.gguf.GgufTensorInfo;
import dev.peregrine.format.hf.HfDirectoryWriter;
import dev.peregrine.model.Family;
import dev.peregrine.model.LlamaCheckpoint;
import dev.peregrine.model.LlamaConfig;
import dev.peregrine.synth.ModelShape;
import dev.peregrine.synth.SyntheticModel;
import dev.peregrine.synth.TokenizerMetadata;
import dev.peregrine.tensor.DType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Every family the graph runs, as data: a synthetic model of each (random weights, the family's
 * tensors, keys and options: sliding windows shorter than the prompt, soft-caps small enough to
 * bend the values) runs through Peregrine from GGUF and from a Hugging Face directory, and is
 * checked against the float64 reference ({@link ReferenceLlama}), which reads the GGUF file in
 * llama.cpp's layout and computes each family's equations on its own.
 */
class ModelFamiliesTest {
    private static final long SEED = 21;

    @TempDir
    Path dir;

    private Path gguf(ModelShape shape, DType type) {
        Path file = dir.resolve(shape.name() + "-" + type + ".gguf");
        SyntheticModel.of(shape, SEED).writeGguf(file, type, TokenizerMetadata.synthetic(shape.vocab()), 1);
        return file;
    }

    private Path hf(ModelShape shape) throws IOException {
        Path out = dir.resolve(shape.name() + "-hf");
        SyntheticModel.of(shape, SEED).writeHf(out, DType.F32, HfDirectoryWriter.DEFAULT_SHARD_LIMIT, 1);
        HfDirectoryTest.writeTokenizer(out, shape.vocab());
        return out;
    }

    /**
     * The same model from both formats, but for the sliding windows of Mistral and Phi-3, which
     * transformers applies and llama.cpp does not (it reads no window for llama files and has
     * disabled Phi-3's): each format is read as its own engine reads it. Up to the window's length
     * the logits are the same.
     */
    @ParameterizedTest
    @ValueSource(strings = {"qwen2-tiny", "mistral-tiny", "gemma2-tiny", "gemma3-tiny", "phi3-tiny"})
    void ggufAndHuggingFaceDirectoryDescribeTheSameModel(String name) throws IOException {
        ModelShape shape = ModelShape.named(name);
        Path gguf = gguf(shape, DType.F32);
        Path hf = hf(shape);
        boolean onlyTransformersSlides = shape.family() == Family.LLAMA || shape.family() == Family.PHI3;
        try (Arena arena = Arena.ofShared()) {
            LlamaConfig fromGguf = LlamaCheckpoint.open(gguf, arena).config();
            LlamaConfig fromHf = LlamaCheckpoint.open(hf, arena).config();
            assertThat(fromGguf.family()).isEqualTo(shape.family());
            assertThat(fromHf).usingRecursiveComparison().ignoringFields("layerWindows").isEqualTo(fromGguf);
            assertThat(slidingLayers(fromGguf)).as("sliding layers, GGUF").isEqualTo(switch (shape.family()) {
                case GEMMA2 -> 2;     // layers 0 and 2 of 3
                case GEMMA3 -> 6;     // all but layer 5 of 7
                default -> 0;
            });
            assertThat(slidingLayers(fromHf)).as("sliding layers, Hugging Face")
                    .isEqualTo(onlyTransformersSlides ? shape.layers() : slidingLayers(fromGguf));
        }
        int[] tokens = ReferenceForwardTest.prompt(shape.vocab(), 5);
        if (onlyTransformersSlides) {
            tokens = Arrays.copyOf(tokens, shape.slidingWindow());
        }
        float[] a = HfDirectoryTest.logits(gguf, tokens);
        float[] b = HfDirectoryTest.logits(hf, tokens);
        if (shape.family().hfNormsAreOffsetByOne()) {
            // Gemma's norms: GGUF holds 1 + w, the HF file w, read back as 1 + w (one float rounding apart).
            for (int i = 0; i < a.length; i++) {
                assertThat(b[i]).as("logit %d", i).isCloseTo(a[i], within(1e-4f));
            }
        } else {
            assertThat(b).containsExactly(a);
        }
    }

    private static long slidingLayers(LlamaConfig config) {
        return config.layerWindows().stream().filter(w -> w > 0).count();
    }

    /**
     * A Hugging Face directory of Mistral or Phi-3 slides every layer, as transformers does: its
     * logits at every position agree with the float64 reference reading the windows that way, and
     * differ from the GGUF file's past the window.
     */
    @ParameterizedTest
    @ValueSource(strings = {"mistral-tiny", "phi3-tiny"})
    void huggingFaceMistralAndPhi3SlideAsTransformersDoes(String name) throws IOException {
        ModelShape shape = ModelShape.named(name);
        Path gguf = gguf(shape, DType.F32);
        int[] tokens = ReferenceForwardTest.prompt(shape.vocab(), 7);
        assertThat(tokens.length).isGreaterThan(shape.slidingWindow());
        float[] logits = HfDirectoryTest.logits(hf(shape), tokens);
        try (Arena arena = Arena.ofShared()) {
            ReferenceLlama ref = new ReferenceLlama(GgufFile.open(gguf, arena)).withTransformersWindows();
            for (int p = 0; p < tokens.length; p++) {
                ReferenceForwardTest.check(name + " HF position " + p, logits, p * shape.vocab(), ref.forward(tokens[p], p));
            }
        }
        float[] fromGguf = HfDirectoryTest.logits(gguf, tokens);
        int last = (tokens.length - 1) * shape.vocab();
        assertThat(Arrays.copyOfRange(fromGguf, last, last + shape.vocab()))
                .isNotEqualTo(Arrays.copyOfRange(logits, last, last + shape.vocab()));
    }

    /**
     * The acceptance check: each family's logits at every position of a prompt longer than its
     * sliding window agree with the float64 reference within 1e-4 (relative), F32 weights; and a
     * Q8_0 file (rows permuted and sliced whole) with the reference's reading of the same file.
     */
    @ParameterizedTest
    @ValueSource(strings = {"qwen2-tiny", "qwen3-tiny", "mistral-tiny", "gemma2-tiny", "gemma3-tiny", "phi3-tiny"})
    void logitsMatchTheFloat64Reference(String name) {
        ModelShape shape = ModelShape.named(name);
        for (DType type : new DType[] {DType.F32, DType.Q8_0}) {
            Path gguf = gguf(shape, type);
            int[] tokens = ReferenceForwardTest.prompt(shape.vocab(), 7);
            float[] logits = HfDirectoryTest.logits(gguf, tokens);
            double worst = 0;
            try (Arena arena = Arena.ofShared()) {
                ReferenceLlama ref = new ReferenceLlama(GgufFile.open(gguf, arena));
                assertThat(ref.family.name()).isEqualTo(shape.family().name());
                for (int p = 0; p < tokens.length; p++) {
                    worst = Math.max(worst, ReferenceForwardTest.check(name + " " + type + " position " + p, logits,
                            p * shape.vocab(), ref.forward(tokens[p], p)));
                }
            }
            System.out.printf("[ModelFamiliesTest] %s %s: worst relative error %.2e over %d positions%n", name, type, worst,
                    tokens.length);
        }
    }

    /**
     * Partial rotate-half rope (Phi-4-mini rotates 96 of each head's 128 elements): a rotate-half
     * family's file with rope.dimension_count half the head size agrees with the float64
     * reference at every position, and differs from the same file rotating whole heads.
     */
    @ParameterizedTest
    @ValueSource(strings = {"qwen2-tiny", "phi3-tiny", "gemma2-tiny"})
    void partialRotateHalfRopeMatchesTheFloat64Reference(String name) {
        ModelShape shape = ModelShape.named(name);
        Path whole = gguf(shape, DType.F32);
        int ropeDims = shape.headDim() / 2;
        Path partial = GgufEdits.withMetadata(whole, dir.resolve(name + "-partial.gguf"),
                Map.of(shape.family().ggufArchitecture() + ".rope.dimension_count", (long) ropeDims));
        int[] tokens = ReferenceForwardTest.prompt(shape.vocab(), 17);
        float[] logits = ReferenceForwardTest.checkEveryPosition(name + " rope " + ropeDims + " of " + shape.headDim(), partial,
                tokens);
        assertThat(HfDirectoryTest.logits(whole, tokens)).as("whole heads rotated").isNotEqualTo(logits);
    }

    /** Families whose windows both formats read alike (see ggufAndHuggingFaceDirectoryDescribeTheSameModel). */
    @ParameterizedTest
    @ValueSource(strings = {"qwen2-tiny", "gemma2-tiny", "gemma3-tiny"})
    void greedyGenerationAgreesBetweenFormats(String name) throws IOException {
        ModelShape shape = ModelShape.named(name);
        Path gguf = gguf(shape, DType.F32);
        Path hf = hf(shape);
        var greedy = GenerationConfig.greedy().maxTokens(16).ignoreEos(true);
        try (Model a = Model.load(gguf); Model b = Model.load(hf)) {
            assertThat(b.generator().generate("Once upon a time", greedy).outputTokens())
                    .containsExactly(a.generator().generate("Once upon a time", greedy).outputTokens());
            // Both name the architecture (llama.cpp's name for it: Mistral is "llama") and any sliding window.
            for (Model m : List.of(a, b)) {
                assertThat(m.describe()).contains(": " + shape.family().ggufArchitecture() + ", " + shape.layers() + " layers");
                assertThat(m.describe().contains("sliding window")).as(m.describe())
                        .isEqualTo(shape.family() != dev.peregrine.model.Family.QWEN2);
            }
        }
    }

    @Test
    void gemma2SoftCapsBoundTheLogits() {
        ModelShape shape = ModelShape.named("gemma2-tiny");
        float[] logits = HfDirectoryTest.logits(gguf(shape, DType.F32), ReferenceForwardTest.prompt(shape.vocab(), 6));
        for (float l : logits) {
            assertThat(Math.abs(l)).isLessThan(shape.finalSoftcap());
        }
    }

    @Test
    void longRopePhi3IsRefusedByName() throws IOException {
        ModelShape shape = ModelShape.named("phi3-tiny");
        Path hf = hf(shape);
        Files.writeString(hf.resolve("config.json"), Files.readString(hf.resolve("config.json"))
                .replace("\"rope_theta\"", "\"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": [1.0], "
                        + "\"long_factor\": [1.0]},\n  \"rope_theta\""));
        Throwable e = catchThrowable(() -> Model.load(hf).close());
        assertThat(e).isInstanceOf(ModelFormatException.class).hasMessageContaining("longrope");
    }

    /** Broken family files fail at load with a typed error naming the key or tensor, as the files name it. */
    @Test
    void brokenFamilyFilesNameWhatIsWrong() throws IOException {
        Path phi3 = hf(ModelShape.named("phi3-tiny"));
        Path config = phi3.resolve("config.json");
        String good = Files.readString(config);
        Files.writeString(config, good.replace("\"rope_theta\"", "\"layer_types\": [\"full_attention\"],\n  \"rope_theta\""));
        assertThat(catchThrowable(() -> Model.load(phi3).close())).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("layer_types").hasMessageContaining("num_hidden_layers is 2");
        Files.writeString(config, good);
        Path weights;
        try (var files = Files.list(phi3)) {
            weights = files.filter(p -> p.toString().endsWith(".safetensors")).findFirst().orElseThrow();
        }
        Qwen3ModelTest.rename(weights, "model.layers.0.self_attn.qkv_proj.weight", "model.layers.0.self_attn.qkv_pro_.weight");
        assertThat(catchThrowable(() -> Model.load(phi3).close())).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("missing required tensor 'model.layers.0.self_attn.qkv_proj.weight'");

        Path gemma = hf(ModelShape.named("gemma2-tiny"));
        Files.writeString(gemma.resolve("config.json"), Files.readString(gemma.resolve("config.json"))
                .replace("\"hidden_activation\": \"gelu_pytorch_tanh\"", "\"hidden_activation\": \"silu\""));
        assertThat(catchThrowable(() -> Model.load(gemma).close())).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("hidden_activation").hasMessageContaining("gelu_pytorch_tanh");
    }

    /**
     * A NaN in a norm weight (a corrupt file, or a tensor offset pointing into other data) would
     * turn every logit into NaN; it is refused at load, naming the tensor.
     */
    @Test
    void aNonFiniteNormWeightIsRefusedAtLoad() throws IOException {
        ModelShape shape = ModelShape.named("qwen3-tiny");
        Path file = gguf(shape, DType.F32);
        long at;
        try (Arena arena = Arena.ofConfined()) {
            GgufFile f = GgufFile.open(file, arena);
            GgufTensorInfo norm = f.tensorInfos().stream().filter(t -> t.name().equals("blk.1.attn_k_norm.weight"))
                    .findFirst().orElseThrow();
            at = f.dataOffset() + norm.dataOffset() + 4L * 5;
        }
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.WRITE)) {
            channel.write(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(0, Float.NaN), at);
        }
        assertThat(catchThrowable(() -> Model.load(file).close())).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("'blk.1.attn_k_norm.weight' holds NaN");
    }

    @Test
    void unknownGgufArchitectureNamesTheSupportedOnes() {
        assertThat(LlamaConfig.GGUF_ARCHITECTURES).containsExactly("llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3");
        assertThat(List.of(Family.values())).hasSize(6);
    }
}
