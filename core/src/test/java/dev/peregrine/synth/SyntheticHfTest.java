package dev.peregrine.synth;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.gguf.GgufTensorInfo;
import dev.peregrine.format.hf.HfLlamaLayout;
import dev.peregrine.format.hf.SafetensorsTestFile;
import dev.peregrine.format.hf.TestJson;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Dequant;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Synthetic models written as Hugging Face directories, checked against the GGUF file of the same seed. */
class SyntheticHfTest {
    static final ModelShape TINY = ModelShape.named("tiny");

    @TempDir
    Path dir;

    private static byte[] bytes(GgufFile f, String name) {
        return f.tensor(name).data().toArray(ValueLayout.JAVA_BYTE);
    }

    @Test
    void hfDirectoryHoldsTheGgufTensorsWithHfNamesShapesAndQkRowOrder() throws IOException {
        Path gguf = SyntheticGgufTest.writeGguf(dir.resolve("m.gguf"), TINY, DType.F32, 3, 0);
        Path hf = dir.resolve("hf");
        SyntheticModel.Written w = SyntheticModel.of(TINY, 3).writeHf(hf, DType.F32, Long.MAX_VALUE, 0);
        assertThat(w.files()).containsExactlyInAnyOrder(hf.resolve("config.json"), hf.resolve("generation_config.json"),
                hf.resolve("model.safetensors"));
        try (Stream<Path> files = Files.list(hf)) {
            assertThat(files.map(p -> p.getFileName().toString()))
                    .containsExactlyInAnyOrder("config.json", "generation_config.json", "model.safetensors");
        }
        SafetensorsTestFile st = SafetensorsTestFile.read(hf.resolve("model.safetensors"));
        assertThat(st.json().get("__metadata__")).isEqualTo(Map.of("format", "pt"));
        int headDim = TINY.dim() / TINY.heads();
        try (Arena arena = Arena.ofConfined()) {
            GgufFile f = GgufFile.open(gguf, arena);
            assertThat(st.json()).hasSize(f.tensorInfos().size() + 1);
            long offset = 0;
            for (GgufTensorInfo t : f.tensorInfos()) {
                String name = HfLlamaLayout.hfName(t.name());
                Map<String, Object> e = st.entry(name);
                long[] shape = t.shape();
                List<Double> hfShape = shape.length == 1 ? List.of((double) shape[0]) : List.of((double) shape[1], (double) shape[0]);
                assertThat(e).containsEntry("dtype", "F32").containsEntry("shape", hfShape)
                        .containsEntry("data_offsets", List.of((double) offset, (double) (offset + t.byteSize())));
                offset += t.byteSize();

                byte[] ggufBytes = bytes(f, t.name());
                byte[] hfBytes = st.bytes(name);
                if (t.name().endsWith("attn_q.weight") || t.name().endsWith("attn_k.weight")) {
                    assertThat(hfBytes).as(name).isNotEqualTo(ggufBytes);
                    // llama.cpp's permute: HF row h*hd + j*hd/2 + i is GGUF row h*hd + 2i + j.
                    int rowBytes = (int) shape[0] * 4;
                    for (long h = 0; h < shape[1] / headDim; h++) {
                        for (int i = 0; i < headDim / 2; i++) {
                            for (int j = 0; j < 2; j++) {
                                int hfRow = (int) (h * headDim + j * headDim / 2 + i);
                                int ggufRow = (int) (h * headDim + 2 * i + j);
                                assertThat(Arrays.copyOfRange(hfBytes, hfRow * rowBytes, (hfRow + 1) * rowBytes))
                                        .as("%s row %d", name, hfRow)
                                        .isEqualTo(Arrays.copyOfRange(ggufBytes, ggufRow * rowBytes, (ggufRow + 1) * rowBytes));
                            }
                        }
                    }
                } else {
                    assertThat(hfBytes).as(name).isEqualTo(ggufBytes);
                }
            }
            assertThat(st.data()).hasSize((int) offset);
        }
        Map<String, Object> config = TestJson.object(Files.readString(hf.resolve("config.json")));
        assertThat(config).containsEntry("num_key_value_heads", 2.0).containsEntry("head_dim", 16.0)
                .containsEntry("tie_word_embeddings", false).containsEntry("torch_dtype", "float32");
    }

    /**
     * The meaning of the q/k row order: rope in each layout's own convention (GGUF: adjacent pairs
     * 2i, 2i+1; HF: rotate half, i with i + hd/2, at the same frequency base^(-2i/hd)) gives the
     * same attention scores q.k for every query head and position.
     */
    @Test
    void attentionScoresAreTheSameInBothLayouts() throws IOException {
        ModelShape shape = TINY;
        Path gguf = SyntheticGgufTest.writeGguf(dir.resolve("m.gguf"), shape, DType.F32, 11, 0);
        Path hf = dir.resolve("hf");
        SyntheticModel.of(shape, 11).writeHf(hf, DType.F32, Long.MAX_VALUE, 0);
        SafetensorsTestFile st = SafetensorsTestFile.read(hf.resolve("model.safetensors"));
        int d = shape.dim();
        int hd = d / shape.heads();
        Random random = new Random(5);
        double[] x = random.doubles(d, -1, 1).toArray();
        try (Arena arena = Arena.ofConfined()) {
            GgufFile f = GgufFile.open(gguf, arena);
            float[] wqGguf = Dequant.toFloat(f.tensor("blk.1.attn_q.weight"));
            float[] wkGguf = Dequant.toFloat(f.tensor("blk.1.attn_k.weight"));
            float[] wqHf = floats(st.bytes("model.layers.1.self_attn.q_proj.weight"));
            float[] wkHf = floats(st.bytes("model.layers.1.self_attn.k_proj.weight"));
            for (int pos : new int[] {0, 1, 7, 300}) {
                double[] qg = ropeAdjacent(matVec(wqGguf, x), hd, pos, shape.ropeTheta());
                double[] kg = ropeAdjacent(matVec(wkGguf, x), hd, pos + 3, shape.ropeTheta());
                double[] qh = ropeHalf(matVec(wqHf, x), hd, pos, shape.ropeTheta());
                double[] kh = ropeHalf(matVec(wkHf, x), hd, pos + 3, shape.ropeTheta());
                int group = shape.heads() / shape.kvHeads();
                for (int h = 0; h < shape.heads(); h++) {
                    double sg = dot(qg, h * hd, kg, (h / group) * hd, hd);
                    double sh = dot(qh, h * hd, kh, (h / group) * hd, hd);
                    assertThat(sh).as("head %d position %d", h, pos).isCloseTo(sg, Offset.offset(1e-9));
                }
            }
        }
    }

    @Test
    void bf16ShardedDirectoryHasAnIndexCoveringEveryTensor() throws IOException {
        ModelShape shape = TINY;
        long limit = 40_000;
        Path hf = dir.resolve("hf");
        SyntheticModel.Written w = SyntheticModel.of(shape, 4).writeHf(hf, DType.BF16, limit, 2);
        List<Path> shards = w.files().stream().filter(p -> p.getFileName().toString().endsWith(".safetensors")).toList();
        assertThat(shards).hasSizeGreaterThan(1);
        assertThat(shards.getFirst().getFileName().toString()).isEqualTo("model-00001-of-%05d.safetensors".formatted(shards.size()));
        Map<String, Object> index = TestJson.object(Files.readString(hf.resolve("model.safetensors.index.json")));
        @SuppressWarnings("unchecked")
        Map<String, Object> weightMap = (Map<String, Object>) index.get("weight_map");

        Map<String, String> expected = new HashMap<>();
        long total = 0;
        List<String> names = new ArrayList<>();
        for (Path shard : shards) {
            SafetensorsTestFile st = SafetensorsTestFile.read(shard);
            long tensorBytes = st.data().length;
            assertThat(tensorBytes <= limit || st.json().size() == 2).as("%s within the limit or a single tensor", shard).isTrue();
            for (String name : st.json().keySet()) {
                if (!name.equals("__metadata__")) {
                    assertThat(st.entry(name)).containsEntry("dtype", "BF16");
                    expected.put(name, shard.getFileName().toString());
                    names.add(name);
                }
            }
            total += tensorBytes;
        }
        assertThat(weightMap).isEqualTo(new HashMap<>(expected));
        assertThat(index.get("metadata")).isEqualTo(Map.of("total_size", (double) total));
        assertThat(names).hasSize(SyntheticModel.of(shape, 4).weights().size());
        // 2 bytes per parameter: every weight of the shape is in some shard.
        assertThat(total).isEqualTo(2 * shape.parameterCount());
    }

    @Test
    void quantisedTypesAreNotWrittenAsHf() {
        assertThatThrownBy(() -> SyntheticModel.of(TINY, 0).writeHf(dir.resolve("q"), DType.Q8_0, Long.MAX_VALUE, 0))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("float32, float16 or bfloat16");
        assertThat(dir.resolve("q")).doesNotExist();
    }

    private static float[] floats(byte[] b) {
        float[] f = new float[b.length / 4];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(f);
        return f;
    }

    /** W x for W stored as rows of x.length values. */
    private static double[] matVec(float[] w, double[] x) {
        double[] y = new double[w.length / x.length];
        for (int r = 0; r < y.length; r++) {
            for (int c = 0; c < x.length; c++) {
                y[r] += w[r * x.length + c] * x[c];
            }
        }
        return y;
    }

    private static double angle(int pos, int i, int hd, float base) {
        return pos * Math.pow(base, -2.0 * i / hd);
    }

    /** ggml's rope (normal mode): element pairs (2i, 2i+1) of each head. */
    private static double[] ropeAdjacent(double[] v, int hd, int pos, float base) {
        double[] out = v.clone();
        for (int h = 0; h < v.length / hd; h++) {
            for (int i = 0; i < hd / 2; i++) {
                double a = angle(pos, i, hd, base);
                double x0 = v[h * hd + 2 * i];
                double x1 = v[h * hd + 2 * i + 1];
                out[h * hd + 2 * i] = x0 * Math.cos(a) - x1 * Math.sin(a);
                out[h * hd + 2 * i + 1] = x0 * Math.sin(a) + x1 * Math.cos(a);
            }
        }
        return out;
    }

    /** transformers' Llama rope (rotate_half): element pairs (i, i + hd/2) of each head. */
    private static double[] ropeHalf(double[] v, int hd, int pos, float base) {
        double[] out = v.clone();
        for (int h = 0; h < v.length / hd; h++) {
            for (int i = 0; i < hd / 2; i++) {
                double a = angle(pos, i, hd, base);
                double x0 = v[h * hd + i];
                double x1 = v[h * hd + i + hd / 2];
                out[h * hd + i] = x0 * Math.cos(a) - x1 * Math.sin(a);
                out[h * hd + i + hd / 2] = x1 * Math.cos(a) + x0 * Math.sin(a);
            }
        }
        return out;
    }

    private static double dot(double[] a, int ao, double[] b, int bo, int n) {
        double s = 0;
        for (int i = 0; i < n; i++) {
            s += a[ao + i] * b[bo + i];
        }
        return s;
    }
}
