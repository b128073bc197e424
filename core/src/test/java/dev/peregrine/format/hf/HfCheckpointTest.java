package dev.peregrine.format.hf;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.hf.SafetensorsWriter.TensorSpec;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Directories written by {@link HfDirectoryWriter}, single-file and sharded, read back; broken indexes refused. */
class HfCheckpointTest {
    private static final HfLlamaConfig CONFIG =
            new HfLlamaConfig(8, 16, 1, 2, 2, 4, 64, 1e-5f, 10000f, 16, false, DType.F32, 1, 2);

    @TempDir
    Path dir;

    /** Tensors t0..t{n-1} of 4 floats each, tensor i holding i*10 + 0..3. */
    private List<Path> write(int tensors, long shardLimit) {
        List<TensorSpec> specs = new ArrayList<>();
        for (int i = 0; i < tensors; i++) {
            specs.add(new TensorSpec("t" + i, DType.F32, new long[] {2, 2}));
        }
        try (HfDirectoryWriter w = HfDirectoryWriter.create(dir, CONFIG, specs, shardLimit)) {
            for (int i = 0; i < tensors; i++) {
                float[] v = {i * 10, i * 10 + 1, i * 10 + 2, i * 10 + 3};
                w.writeTensorData("t" + i, MemorySegment.ofArray(v));
            }
            return w.weightFiles();
        }
    }

    private static void assertTensor(HfCheckpoint c, int i) {
        Tensor t = c.findTensor("t" + i).orElseThrow();
        assertThat(t.data().toArray(ValueLayout.JAVA_FLOAT)).containsExactly(i * 10, i * 10 + 1, i * 10 + 2, i * 10 + 3);
    }

    private ModelFormatException openFails() {
        Throwable t = catchThrowable(() -> {
            try (Arena arena = Arena.ofConfined()) {
                HfCheckpoint.open(dir, arena);
            }
        });
        assertThat(t).isInstanceOf(ModelFormatException.class);
        return (ModelFormatException) t;
    }

    @Test
    void oneFile() {
        assertThat(write(3, HfDirectoryWriter.DEFAULT_SHARD_LIMIT)).hasSize(1);
        try (Arena arena = Arena.ofConfined()) {
            HfCheckpoint c = HfCheckpoint.open(dir, arena);
            assertThat(c.files()).hasSize(1);
            assertThat(c.tensors()).containsOnlyKeys("t0", "t1", "t2");
            for (int i = 0; i < 3; i++) {
                assertTensor(c, i);
            }
        }
    }

    @Test
    void shardsThroughTheIndex() {
        assertThat(write(5, 32)).hasSize(3); // two 16-byte tensors per shard
        assertThat(dir.resolve(HfDirectoryWriter.INDEX_FILE)).exists();
        try (Arena arena = Arena.ofConfined()) {
            HfCheckpoint c = HfCheckpoint.open(dir, arena);
            assertThat(c.files()).hasSize(3);
            for (int i = 0; i < 5; i++) {
                assertTensor(c, i);
            }
            assertThat(c.tensors().get("t4").path().getFileName().toString()).isEqualTo("model-00003-of-00003.safetensors");
        }
    }

    /**
     * A save over an earlier one of the other form replaces it (as save_pretrained cleans its
     * folder), and where a single file and an index are both there (copied in by hand), the single
     * file is read, as transformers reads it.
     */
    @Test
    void theLatestSaveIsReadWhateverFormTheEarlierHad() throws IOException {
        write(5, 32); // shards and an index
        write(2, HfDirectoryWriter.DEFAULT_SHARD_LIMIT); // then one file
        assertThat(dir.resolve(HfDirectoryWriter.INDEX_FILE)).doesNotExist();
        assertThat(dir.resolve("model-00001-of-00003.safetensors")).doesNotExist();
        write(5, 32); // and shards again
        assertThat(dir.resolve(HfDirectoryWriter.SINGLE_FILE)).doesNotExist();

        // A sharded save's files put back by hand beside a single file saved after them.
        Map<Path, byte[]> sharded = new HashMap<>();
        try (var files = Files.list(dir)) {
            for (Path f : files.filter(f -> f.getFileName().toString().startsWith("model")).toList()) {
                sharded.put(f.getFileName(), Files.readAllBytes(f));
            }
        }
        write(2, HfDirectoryWriter.DEFAULT_SHARD_LIMIT);
        for (Map.Entry<Path, byte[]> f : sharded.entrySet()) {
            Files.write(dir.resolve(f.getKey()), f.getValue());
        }
        assertThat(dir.resolve(HfDirectoryWriter.SINGLE_FILE)).exists();
        assertThat(dir.resolve(HfDirectoryWriter.INDEX_FILE)).exists();
        try (Arena arena = Arena.ofConfined()) {
            HfCheckpoint c = HfCheckpoint.open(dir, arena);
            assertThat(c.files()).hasSize(1);
            assertThat(c.tensors()).containsOnlyKeys("t0", "t1");
            assertTensor(c, 0);
            assertTensor(c, 1);
        }
    }

    @Test
    void noWeights() throws IOException {
        Files.createDirectories(dir);
        assertThat(openFails()).hasMessageContaining("no model.safetensors");
        Files.writeString(dir.resolve("pytorch_model.bin"), "");
        assertThat(openFails()).hasMessageContaining("PyTorch .bin");
    }

    @Test
    void brokenIndexes() throws IOException {
        write(5, 32);
        Path index = dir.resolve(HfDirectoryWriter.INDEX_FILE);
        String good = Files.readString(index);

        Files.writeString(index, "{\"metadata\": {}}");
        assertThat(openFails()).hasMessageContaining(index.toString()).hasMessageContaining("weight_map");

        Files.writeString(index, "{\"weight_map\": {}}");
        assertThat(openFails()).hasMessageContaining("weight_map is empty");

        Files.writeString(index, good.replace("model-00002-of-00003", "../model-00002-of-00003"));
        assertThat(openFails()).hasMessageContaining("same directory");

        Files.writeString(index, good.replace("model-00002-of-00003", "model-00009-of-00003"));
        assertThat(openFails()).hasMessageContaining("model-00009-of-00003.safetensors");

        // t0 is in shard 1, the index says shard 2.
        Files.writeString(index, good.replaceFirst("\"t0\": \"model-00001-of-00003", "\"t0\": \"model-00002-of-00003"));
        assertThat(openFails()).hasMessageContaining("'t0'").hasMessageContaining("does not hold it");

        Files.writeString(index, good.substring(0, good.length() / 2));
        assertThat(openFails()).hasMessageContaining("not valid JSON");
    }

    @Test
    void aTruncatedShard() throws IOException {
        List<Path> files = write(5, 32);
        Path shard = files.get(1);
        byte[] bytes = Files.readAllBytes(shard);
        Files.write(shard, java.util.Arrays.copyOf(bytes, bytes.length - 1));
        assertThat(openFails()).hasMessageContaining(shard.toString()).hasMessageContaining("outside the data section");
    }
}
