package dev.peregrine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufMetadata;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The {@code llama.*} keys of a GGUF file to {@link LlamaConfig}: what is refused before it is used. */
class LlamaConfigGgufTest {
    private static final Path FILE = Path.of("m.gguf");

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
}
