package dev.peregrine.format.hf;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.format.hf.SafetensorsWriter.TensorSpec;
import dev.peregrine.tensor.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HfDirectoryWriterTest {
    private static final HfLlamaConfig CONFIG = new HfLlamaConfig(64, 160, 3, 4, 2, 16, 2048, 1e-5f, 500000f, 512,
            true, DType.BF16, 1, 2);

    @TempDir
    Path dir;

    /** F32 tensors of {@code floats[i]} values each, named t0, t1, ... */
    private static List<TensorSpec> tensors(int... floats) {
        return IntStream.range(0, floats.length)
                .mapToObj(i -> new TensorSpec("t" + i, DType.F32, new long[] {floats[i]})).toList();
    }

    private static byte[] filled(int n, int value) {
        byte[] b = new byte[n];
        Arrays.fill(b, (byte) value);
        return b;
    }

    @Test
    void underTheLimitWritesOneModelSafetensorsAndTheConfigs() throws IOException {
        try (HfDirectoryWriter w = HfDirectoryWriter.create(dir, CONFIG, tensors(25, 25), 1000)) {
            assertThat(w.weightFiles()).containsExactly(dir.resolve("model.safetensors"));
            w.writeTensorData("t0", filled(100, 1)).writeTensorData("t1", filled(100, 2));
        }
        assertThat(dir.resolve("model.safetensors.index.json")).doesNotExist();
        SafetensorsTestFile p = SafetensorsTestFile.read(dir.resolve("model.safetensors"));
        assertThat(p.json()).containsEntry("__metadata__", Map.of("format", "pt"));
        assertThat(p.data()).hasSize(200);

        Map<String, Object> config = TestJson.object(Files.readString(dir.resolve("config.json")));
        assertThat(config).containsEntry("architectures", List.of("LlamaForCausalLM"))
                .containsEntry("model_type", "llama")
                .containsEntry("hidden_size", 64.0)
                .containsEntry("intermediate_size", 160.0)
                .containsEntry("num_hidden_layers", 3.0)
                .containsEntry("num_attention_heads", 4.0)
                .containsEntry("num_key_value_heads", 2.0)
                .containsEntry("head_dim", 16.0)
                .containsEntry("max_position_embeddings", 2048.0)
                .containsEntry("rope_theta", 500000.0)
                .containsEntry("vocab_size", 512.0)
                .containsEntry("tie_word_embeddings", true)
                .containsEntry("torch_dtype", "bfloat16")
                .containsEntry("bos_token_id", 1.0)
                .containsEntry("eos_token_id", 2.0);
        assertThat((Double) config.get("rms_norm_eps")).isCloseTo(1e-5, Offset.offset(1e-12));
        assertThat(TestJson.object(Files.readString(dir.resolve("generation_config.json"))))
                .isEqualTo(Map.of("bos_token_id", 1.0, "eos_token_id", 2.0));
    }

    @Test
    void overTheLimitShardsAsTransformersDoesAndWritesTheIndex() throws IOException {
        // 100, 100, 400, 100 bytes with a 250-byte limit: [t0 t1] [t2 alone, larger than the limit] [t3].
        try (HfDirectoryWriter w = HfDirectoryWriter.create(dir, CONFIG, tensors(25, 25, 100, 25), 250)) {
            assertThat(w.weightFiles()).extracting(f -> f.getFileName().toString()).containsExactly(
                    "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors");
            w.writeTensorData("t0", filled(100, 1)).writeTensorData("t1", filled(60, 2)).writeTensorData("t1", filled(40, 2));
            w.writeTensorData("t2", filled(400, 3)).writeTensorData("t3", filled(100, 4));
        }
        SafetensorsTestFile first = SafetensorsTestFile.read(dir.resolve("model-00001-of-00003.safetensors"));
        assertThat(first.json()).containsOnlyKeys("__metadata__", "t0", "t1");
        assertThat(first.data()).hasSize(200).startsWith(filled(100, 1)).endsWith(filled(100, 2));
        SafetensorsTestFile second = SafetensorsTestFile.read(dir.resolve("model-00002-of-00003.safetensors"));
        assertThat(second.json()).containsOnlyKeys("__metadata__", "t2");
        assertThat(second.data()).isEqualTo(filled(400, 3));
        SafetensorsTestFile third = SafetensorsTestFile.read(dir.resolve("model-00003-of-00003.safetensors"));
        assertThat(third.json().get("t3")).isEqualTo(Map.of("dtype", "F32", "shape", List.of(25.0), "data_offsets", List.of(0.0, 100.0)));

        Map<String, Object> index = TestJson.object(Files.readString(dir.resolve("model.safetensors.index.json")));
        assertThat(index.get("metadata")).isEqualTo(Map.of("total_size", 700.0));
        assertThat(index.get("weight_map")).isEqualTo(Map.of(
                "t0", "model-00001-of-00003.safetensors",
                "t1", "model-00001-of-00003.safetensors",
                "t2", "model-00002-of-00003.safetensors",
                "t3", "model-00003-of-00003.safetensors"));
    }

    @Test
    void dataOutOfOrderOrMissingIsRejected() {
        HfDirectoryWriter w = HfDirectoryWriter.create(dir, CONFIG, tensors(25, 25, 25), 150);
        assertThatThrownBy(() -> w.writeTensorData("t2", new byte[4])).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> w.writeTensorData("nope", new byte[4]))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("no tensor 'nope'");
        w.writeTensorData("t0", new byte[100]);
        assertThatThrownBy(w::close).isInstanceOf(IllegalStateException.class).hasMessageContaining("'t1'");
    }
}
