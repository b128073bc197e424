package dev.peregrine.format.gguf;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.peregrine.ModelFormatException;
import dev.peregrine.tensor.DType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The reader on the real files in the shared models directory, and on every truncation and many
 * corruptions of one of them. The expected facts come from the files' documentation (SOURCES.md)
 * and from dumping the files with an independent script.
 */
class GgufRealFilesTest {
    /** stories260K.gguf: its tensor infos end at byte 14152, so data starts at the next multiple of 32. */
    private static final int STORIES_DATA_OFFSET = 14176;

    static Path model(String name) {
        return Path.of(System.getProperty("peregrine.shared.dir", "../shared"), "models", name);
    }

    @Test
    void stories260K() {
        try (Arena arena = Arena.ofConfined()) {
            GgufFile f = GgufFile.open(model("stories260K.gguf"), arena);
            GgufMetadata m = f.metadata();
            assertThat(f.version()).isEqualTo(3);
            assertThat(f.fileSize()).isEqualTo(1185376);
            assertThat(f.alignment()).isEqualTo(32);
            assertThat(f.dataOffset()).isEqualTo(STORIES_DATA_OFFSET);
            assertThat(m.asMap()).hasSize(19);
            assertThat(m.getString("general.architecture")).isEqualTo("llama");
            assertThat(m.getInt("llama.embedding_length")).isEqualTo(64);
            assertThat(m.getInt("llama.block_count")).isEqualTo(5);
            assertThat(m.getInt("llama.feed_forward_length")).isEqualTo(172);
            assertThat(m.typeOf("llama.block_count")).isEqualTo(GgufValueType.UINT32);
            assertThat(m.getLong("tokenizer.ggml.padding_token_id")).isEqualTo(0xFFFF_FFFFL);
            assertThat(m.getFloat("llama.attention.layer_norm_rms_epsilon")).isEqualTo(1e-5f);
            assertThat(m.optStringArray("tokenizer.ggml.tokens").orElseThrow()).hasSize(512);
            assertThat(m.optFloatArray("tokenizer.ggml.scores").orElseThrow()).hasSize(512);
            assertThat(m.getArray("tokenizer.ggml.token_type").elementType()).isEqualTo(GgufValueType.INT32);

            assertThat(f.tensorInfos()).hasSize(48);
            GgufTensorInfo embd = f.tensorInfos().getFirst();
            assertThat(embd.name()).isEqualTo("token_embd.weight");
            assertThat(embd.type()).isEqualTo(DType.F32);
            assertThat(embd.shape()).containsExactly(64, 512);
            assertThat(embd.dataOffset()).isZero();
            assertThat(f.tensor("output_norm.weight").data().byteSize()).isEqualTo(64 * 4);
            // 292,800 stored F32 values fill the data section exactly.
            assertThat(f.tensorInfos().stream().mapToLong(GgufTensorInfo::elementCount).sum()).isEqualTo(292_800);
            assertThat(f.fileSize() - f.dataOffset()).isEqualTo(292_800L * 4);
        }
    }

    @Test
    void ggufVersion1IsRejected() {
        try (Arena arena = Arena.ofConfined()) {
            Throwable t = catchThrowable(() -> GgufFile.open(model("tinyllamas-stories-260k-f32.gguf"), arena));
            assertThat(t).isExactlyInstanceOf(ModelFormatException.class).hasMessageContaining("version 1 is not supported");
        }
    }

    @Test
    void ggufVersion2WithQ8_0() {
        try (Arena arena = Arena.ofConfined()) {
            GgufFile f = GgufFile.open(model("tinyllamas-stories-260k-q8_0.gguf"), arena);
            assertThat(f.version()).isEqualTo(2);
            assertThat(f.metadata().getString("general.name")).isEqualTo("tinyllamas-stories-260k");
            GgufTensorInfo down = f.tensorInfos().stream().filter(t -> t.name().equals("blk.0.ffn_down.weight"))
                    .findFirst().orElseThrow();
            assertThat(down.type()).isEqualTo(DType.Q8_0);
            assertThat(down.shape()).containsExactly(172, 64);
            assertThat(down.byteSize()).isEqualTo(344 * 34); // 11008 values in 344 blocks that cross rows
        }
    }

    /** Every prefix that ends before the data section is a truncated file. */
    @Test
    void everyTruncationOfTheHeaderIsRejected() throws IOException {
        MemorySegment whole = MemorySegment.ofArray(Files.readAllBytes(model("stories260K.gguf")));
        List<String> failures = new ArrayList<>();
        for (int length = 0; length <= STORIES_DATA_OFFSET; length++) {
            MemorySegment prefix = whole.asSlice(0, length);
            Throwable t = catchThrowable(() -> GgufFile.parse(GgufBytes.NAME, prefix));
            if (!(t instanceof ModelFormatException e) || t.getClass() != ModelFormatException.class) {
                failures.add(length + ": " + t);
            } else if (e.offset() > length) {
                failures.add(length + ": reported offset " + e.offset() + " lies beyond the end");
            }
        }
        assertThat(failures).isEmpty();
    }

    /** A corrupted byte may leave a valid file; otherwise the only acceptable failure is ModelFormatException. */
    @Test
    void randomHeaderCorruptionsParseOrAreRejected() throws IOException {
        byte[] bytes = Files.readAllBytes(model("stories260K.gguf"));
        Random random = new Random(20240601);
        List<String> failures = new ArrayList<>();
        int rejected = 0;
        for (int i = 0; i < 300; i++) {
            int at = random.nextInt(STORIES_DATA_OFFSET);
            byte original = bytes[at];
            bytes[at] = (byte) (original ^ (1 + random.nextInt(255))); // always a different byte
            Throwable t = catchThrowable(() -> {
                GgufFile f = GgufFile.parse(GgufBytes.NAME, MemorySegment.ofArray(bytes));
                f.tensorInfos().forEach(info -> f.tensor(info.name())); // every tensor must be reachable
            });
            if (t != null && t.getClass() != ModelFormatException.class) {
                failures.add("byte " + at + " = " + bytes[at] + ": " + t);
            }
            rejected += t == null ? 0 : 1;
            bytes[at] = original;
        }
        assertThat(failures).isEmpty();
        assertThat(rejected).as("most corruptions of the counts, lengths and types break the file").isPositive();
    }
}
