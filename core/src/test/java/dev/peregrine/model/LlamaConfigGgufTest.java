package dev.peregrine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.gguf.GgufMetadata;
import dev.peregrine.format.gguf.GgufTensorInfo;
import dev.peregrine.format.gguf.GgufWriter;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A GGUF header to {@link LlamaConfig} and {@link LlamaCheckpoint}: what is refused before it is used. */
class LlamaConfigGgufTest {
    private static final Path FILE = Path.of("m.gguf");
    private static final Path STORIES = Path.of(System.getProperty("peregrine.shared.dir", "../shared"), "models",
            "stories260K.gguf");

    @TempDir
    Path dir;

    private static GgufMetadata metadata(int layers) {
        Map<String, Object> keys = new HashMap<>();
        keys.put("general.architecture", "llama");
        keys.put("llama.embedding_length", 64L); // integers are read as longs, as the parser keeps them
        keys.put("llama.attention.head_count", 4L);
        keys.put("llama.feed_forward_length", 128L);
        keys.put("llama.block_count", (long) layers);
        return GgufMetadata.of(FILE, keys);
    }

    /**
     * A corrupted block_count sized the per-layer tables before anything else checked it (2^31 - 1
     * ran the JVM out of memory): counts outside 1 to llama.cpp's 512 are refused, naming the key.
     */
    @Test
    void layerCountsBeyondLlamaCppsLimitAreRefused() {
        assertThat(LlamaConfig.fromGguf(FILE, metadata(512), 300).layers()).isEqualTo(512);
        for (int layers : new int[] {0, -1, 513, Integer.MAX_VALUE}) {
            Throwable t = catchThrowable(() -> LlamaConfig.fromGguf(FILE, metadata(layers), 300));
            assertThat(t).as("%d layers", layers).isInstanceOf(ModelFormatException.class)
                    .hasMessageContaining("m.gguf").hasMessageContaining("llama.block_count is " + layers)
                    .hasMessageContaining("it must be 1 to 512");
        }
    }

    /** A Mixtral-style file (arch llama with experts) is refused by its expert count, not by a missing tensor later. */
    @Test
    void mixtureOfExpertsIsRefusedByName() {
        Map<String, Object> keys = new HashMap<>(metadata(2).asMap());
        keys.put("llama.expert_count", 8L);
        keys.put("llama.expert_used_count", 2L);
        assertThat(catchThrowable(() -> LlamaConfig.fromGguf(FILE, GgufMetadata.of(FILE, keys), 300)))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("llama.expert_count is 8: mixture-of-experts models are not supported");
        keys.put("llama.expert_count", 0L);
        assertThat(LlamaConfig.fromGguf(FILE, GgufMetadata.of(FILE, keys), 300).layers()).isEqualTo(2);
    }

    /**
     * stories260K (5 layers) with its block_count edited to 3: the tensors of layers 3 and 4 would
     * be ignored and a model cut short would run; the file is refused, naming a tensor past the count.
     */
    @Test
    void tensorsOfLayersPastTheBlockCountAreRefused() {
        Path edited = dir.resolve("three-layers.gguf");
        try (Arena arena = Arena.ofConfined()) {
            GgufFile source = GgufFile.open(STORIES, arena);
            try (GgufWriter w = GgufWriter.create(edited)) {
                GgufMetadata m = source.metadata();
                for (var e : m.asMap().entrySet()) {
                    if (!e.getKey().equals("general.alignment")) {
                        w.put(e.getKey(), m.typeOf(e.getKey()), e.getKey().equals("llama.block_count") ? 3L : e.getValue());
                    }
                }
                for (GgufTensorInfo t : source.tensorInfos()) {
                    w.addTensor(t.name(), t.type(), t.shape());
                }
                for (GgufTensorInfo t : source.tensorInfos()) {
                    w.writeTensorData(t.name(), source.tensor(t.name()).data());
                }
            }
            assertThat(LlamaCheckpoint.open(STORIES, arena).config().layers()).isEqualTo(5);
            assertThat(catchThrowable(() -> LlamaCheckpoint.open(edited, arena)))
                    .isInstanceOf(ModelFormatException.class).hasMessageContaining("three-layers.gguf")
                    .hasMessageContaining("tensor 'blk.3.").hasMessageContaining("past the 3 that the header's block_count states");
        }
    }
}
