package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.peregrine.Model;
import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.hf.HfDirectoryWriter;
import dev.peregrine.model.LlamaCheckpoint;
import dev.peregrine.synth.ModelShape;
import dev.peregrine.synth.SyntheticModel;
import dev.peregrine.synth.TokenizerMetadata;
import dev.peregrine.tensor.DType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Qwen3 as data: the Llama graph plus per-head q/k RMS norms before rope, an explicit head size
 * (heads * headDim != dim here) and rotate-half rope. The synthetic qwen3 model written as GGUF
 * (architecture qwen3, q/k rows and norm weights in NEOX order, as llama.cpp's converter leaves
 * them) and as a Qwen3ForCausalLM directory must give bit-identical logits, and both must match
 * the float64 reference, which ropes NEOX pairs directly on the file's layout (no permutation).
 * The q/k norm weights are random, so a norm element moved without its q/k row shows.
 */
class Qwen3ModelTest {
    private static final ModelShape SHAPE = ModelShape.named("qwen3-tiny");

    @TempDir
    Path dir;

    private Path gguf(DType type) {
        Path file = dir.resolve("qwen3-" + type + ".gguf");
        SyntheticModel.of(SHAPE, 13).writeGguf(file, type, TokenizerMetadata.synthetic(SHAPE.vocab()), 1);
        return file;
    }

    private Path hf() throws IOException {
        Path out = dir.resolve("qwen3-hf");
        SyntheticModel.of(SHAPE, 13).writeHf(out, DType.F32, HfDirectoryWriter.DEFAULT_SHARD_LIMIT, 1);
        HfDirectoryTest.writeTokenizer(out, SHAPE.vocab());
        return out;
    }

    @Test
    void shapeIsQwen3() {
        assertThat(SHAPE.queryDim()).isNotEqualTo(SHAPE.dim());
        assertThat(SHAPE.qkNorm()).isTrue();
    }

    @Test
    void ggufAndHfGiveIdenticalLogitsThatMatchTheReference() throws IOException {
        Path gguf = gguf(DType.F32);
        Path hf = hf();
        try (Arena arena = Arena.ofShared()) {
            var c = LlamaCheckpoint.open(gguf, arena).config();
            assertThat(c.qkNorm()).isTrue();
            assertThat(c.headDim()).isEqualTo(32);
            assertThat(c.queryDim()).isEqualTo(128);
            assertThat(LlamaCheckpoint.open(hf, arena).config()).isEqualTo(c);
        }
        int[] tokens = ReferenceForwardTest.prompt(SHAPE.vocab(), 3);
        float[] fromGguf = HfDirectoryTest.logits(gguf, tokens);
        float[] fromHf = HfDirectoryTest.logits(hf, tokens);
        assertThat(fromHf).containsExactly(fromGguf);
        compareWithReference(gguf, fromGguf, tokens);
    }

    /** Quantised rows move whole, so a Q8_0 qwen3 file is permuted at load as well. */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "F16"})
    void quantisedGgufMatchesTheReference(DType type) {
        Path gguf = gguf(type);
        int[] tokens = ReferenceForwardTest.prompt(SHAPE.vocab(), 4);
        compareWithReference(gguf, HfDirectoryTest.logits(gguf, tokens), tokens);
    }

    private static void compareWithReference(Path gguf, float[] logits, int[] tokens) {
        try (Arena arena = Arena.ofShared()) {
            ReferenceLlama ref = new ReferenceLlama(GgufFile.open(gguf, arena));
            assertThat(ref.qwen3).isTrue();
            for (int p = 0; p < tokens.length; p++) {
                ReferenceForwardTest.check("position " + p, logits, p * SHAPE.vocab(), ref.forward(tokens[p], p));
            }
        }
    }

    @Test
    void greedyGenerationAgrees() throws IOException {
        Path gguf = gguf(DType.F32);
        Path hf = hf();
        var greedy = dev.peregrine.GenerationConfig.greedy().maxTokens(12).ignoreEos(true);
        try (Model a = Model.load(gguf); Model b = Model.load(hf)) {
            assertThat(b.generator().generate("Once upon a time", greedy).outputTokens())
                    .containsExactly(a.generator().generate("Once upon a time", greedy).outputTokens());
        }
    }

    @Test
    void qwen3WithoutItsNormsIsRefusedNamingTheTensor() throws IOException {
        // Renaming a tensor in place (same length) keeps the file valid but without that tensor.
        Path gguf = gguf(DType.F32);
        rename(gguf, "blk.0.attn_q_norm.weight", "blk.0.attn_q_nor_.weight");
        Throwable e = catchThrowable(() -> Model.load(gguf).close());
        assertThat(e).isInstanceOf(ModelFormatException.class).hasMessageContaining("blk.0.attn_q_norm.weight");

        Path hf = hf();
        Path weights;
        try (Stream<Path> files = Files.list(hf)) {
            weights = files.filter(p -> p.toString().endsWith(".safetensors")).findFirst().orElseThrow();
        }
        rename(weights, "model.layers.1.self_attn.k_norm.weight", "model.layers.1.self_attn.k_nor_.weight");
        e = catchThrowable(() -> Model.load(hf).close());
        assertThat(e).isInstanceOf(ModelFormatException.class).hasMessageContaining("model.layers.1.self_attn.k_norm.weight");
    }

    static void rename(Path file, String from, String to) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        byte[] f = from.getBytes(StandardCharsets.US_ASCII);
        byte[] t = to.getBytes(StandardCharsets.US_ASCII);
        outer:
        for (int i = 0; i + f.length <= bytes.length; i++) {
            for (int j = 0; j < f.length; j++) {
                if (bytes[i + j] != f[j]) {
                    continue outer;
                }
            }
            System.arraycopy(t, 0, bytes, i, t.length);
            Files.write(file, bytes);
            return;
        }
        throw new AssertionError(from + " not in " + file);
    }
}
