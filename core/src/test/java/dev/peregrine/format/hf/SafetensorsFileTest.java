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
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Files written by {@link SafetensorsWriter} read back; then hand-built files, each broken in one
 * way, refused with a {@link ModelFormatException} naming the file, the tensor and the problem.
 */
class SafetensorsFileTest {
    private static final Path NAME = Path.of("broken.safetensors");
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @TempDir
    Path dir;

    private static byte[] f32(float... v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) {
            b.putFloat(x);
        }
        return b.array();
    }

    /** A file of the header length, the header text and {@code dataBytes} zero bytes. */
    private static byte[] file(long headerLength, String header, int dataBytes) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(headerLength).put(h);
        return b.array();
    }

    private static byte[] file(String header, int dataBytes) {
        return file(header.getBytes(StandardCharsets.UTF_8).length, header, dataBytes);
    }

    private static SafetensorsFile parse(byte[] bytes) {
        return SafetensorsFile.parse(NAME, MemorySegment.ofArray(bytes));
    }

    private static void assertRejected(byte[] bytes, String... fragments) {
        Throwable t = catchThrowable(() -> parse(bytes));
        assertThat(t).isInstanceOf(ModelFormatException.class);
        assertThat(t.getMessage()).contains(NAME.toString());
        for (String f : fragments) {
            assertThat(t.getMessage()).contains(f);
        }
    }

    @Test
    void readsWhatTheWriterWrites() throws IOException {
        Path path = dir.resolve("t.safetensors");
        byte[] bf16 = {1, 2, 3, 4};
        try (SafetensorsWriter w = SafetensorsWriter.create(path, List.of(
                new TensorSpec("a", DType.F32, new long[] {2, 3}),
                new TensorSpec("b", DType.BF16, new long[] {2}),
                new TensorSpec("c", DType.F16, new long[] {1, 1, 2})), Map.of("format", "pt"))) {
            w.writeTensorData("a", f32(1, 2, 3, 4, 5, 6)).writeTensorData("b", bf16).writeTensorData("c", new byte[] {9, 8, 7, 6});
        }
        try (Arena arena = Arena.ofConfined()) {
            SafetensorsFile f = SafetensorsFile.open(path, arena);
            assertThat(f.metadata()).containsEntry("format", "pt");
            assertThat(f.names()).containsExactly("a", "b", "c");
            Tensor a = f.findTensor("a").orElseThrow();
            assertThat(a.type()).isEqualTo(DType.F32);
            assertThat(a.shape()).containsExactly(3, 2); // ggml order: row length first
            assertThat(a.data().getAtIndex(F32, 5)).isEqualTo(6f);
            assertThat(a.data().isReadOnly()).isTrue();
            assertThat(f.findTensor("b").orElseThrow().data().toArray(ValueLayout.JAVA_BYTE)).containsExactly(bf16);
            assertThat(f.findTensor("c").orElseThrow().shape()).containsExactly(2, 1, 1);
            assertThat(f.entries().get("c").shape()).containsExactly(1, 1, 2);
            assertThat(f.findTensor("missing")).isEmpty();
        }
    }

    @Test
    void aHandBuiltFileParses() {
        SafetensorsFile f = parse(file("{\"t\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}   ", 4));
        assertThat(f.findTensor("t").orElseThrow().data().byteSize()).isEqualTo(4);
        assertThat(f.metadata()).isEmpty();
    }

    @Test
    void aScalarHasShapeOne() {
        SafetensorsFile f = parse(file("{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4));
        assertThat(f.findTensor("s").orElseThrow().shape()).containsExactly(1);
    }

    @Test
    void missingFile() {
        Throwable t = catchThrowable(() -> {
            try (Arena arena = Arena.ofConfined()) {
                SafetensorsFile.open(dir.resolve("none.safetensors"), arena);
            }
        });
        assertThat(t).isInstanceOf(ModelFormatException.class).hasMessageContaining("none.safetensors");
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 3, 7})
    void shorterThanTheHeaderLength(int size) {
        assertRejected(new byte[size], "truncated", "8-byte header length");
    }

    @Test
    void headerLengthBeyondTheFileIsRefusedBeforeAllocating() {
        assertRejected(file(1000, "{}", 0), "header length 1000", "2 bytes after the length field");
        assertRejected(file(-1, "{}", 0), "header length 18446744073709551615");
        assertRejected(file(1L << 40, "{}", 0), "header length " + (1L << 40));
        assertRejected(file(1, "{}", 0), "header length 1");
    }

    @Test
    void headerThatIsNotAJsonObject() {
        assertRejected(file("[1,2]", 0), "not a JSON object");
        assertRejected(file("{\"t\":", 0), "not valid JSON");
        assertRejected(file("{\"t\":1}", 0), "tensor 't'", "not an object");
        byte[] notUtf8 = file("{\"\u00e9\":{}}", 0);
        notUtf8[8 + 2] = (byte) 0xFF;
        assertRejected(notUtf8, "not valid JSON", "UTF-8");
    }

    @Test
    void unsupportedDtypeNamesTheTensorAndTheDtype() {
        assertRejected(file("{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16),
                "tensor 'ids'", "dtype I64", "supported: F32, F16, BF16");
        assertRejected(file("{\"q\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2), "tensor 'q'", "F8_E4M3");
        assertRejected(file("{\"q\":{\"shape\":[2],\"data_offsets\":[0,2]}}", 2), "tensor 'q'", "no dtype");
    }

    @Test
    void malformedShapes() {
        assertRejected(file("{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4), "tensor 't'", "shape");
        assertRejected(file("{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4), "tensor 't'", "shape");
        assertRejected(file("{\"t\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,4]}}", 4), "tensor 't'", "shape");
        assertRejected(file("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4),
                "tensor 't'", "overflows");
    }

    @Test
    void dataOffsetsAreCheckedAgainstTheDataSectionAndTheShape() {
        String t = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":%s}}";
        assertRejected(file(String.format(t, "[0,8]"), 4), "tensor 't'", "outside the data section (4 bytes)");
        assertRejected(file(String.format(t, "[8,0]"), 8), "tensor 't'", "outside");
        assertRejected(file(String.format(t, "[0,4]"), 8), "tensor 't'", "hold 4 bytes", "needs 8");
        assertRejected(file(String.format(t, "[0]"), 8), "tensor 't'", "data_offsets");
        assertRejected(file(String.format(t, "[0,-8]"), 8), "tensor 't'", "data_offsets");
        assertRejected(file(String.format(t, "[0,9223372036854775807]"), 8), "tensor 't'", "outside");
        assertRejected(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12), "tensor 'b'", "overlaps", "'a'");
    }

    @Test
    void badMetadata() {
        assertRejected(file("{\"__metadata__\":{\"format\":1}}", 0), "__metadata__", "format");
        assertRejected(file("{\"__metadata__\":[]}", 0), "__metadata__");
    }

    /** Every truncation of a real file is refused, never read past its end. */
    @Test
    void everyTruncationOfAWrittenFileIsRefused() throws IOException {
        Path path = dir.resolve("t.safetensors");
        try (SafetensorsWriter w = SafetensorsWriter.create(path, List.of(
                new TensorSpec("a", DType.F32, new long[] {2, 3}),
                new TensorSpec("b", DType.F16, new long[] {4})), Map.of("format", "pt"))) {
            w.writeTensorData("a", f32(1, 2, 3, 4, 5, 6)).writeTensorData("b", new byte[8]);
        }
        byte[] whole = Files.readAllBytes(path);
        parse(whole);
        for (int size = 0; size < whole.length; size++) {
            byte[] cut = Arrays.copyOf(whole, size);
            assertThat(catchThrowable(() -> parse(cut))).as("truncated to %d bytes", size)
                    .isInstanceOf(ModelFormatException.class);
        }
    }

    /** Flipping any header byte gives either a file that still parses or a typed error, nothing else. */
    @Test
    void corruptedHeaderBytesGiveTypedErrors() throws IOException {
        Path path = dir.resolve("t.safetensors");
        try (SafetensorsWriter w = SafetensorsWriter.create(path, List.of(
                new TensorSpec("a", DType.F32, new long[] {2, 3})), Map.of("format", "pt"))) {
            w.writeTensorData("a", f32(1, 2, 3, 4, 5, 6));
        }
        byte[] whole = Files.readAllBytes(path);
        long headerLength = ByteBuffer.wrap(whole).order(ByteOrder.LITTLE_ENDIAN).getLong();
        for (int i = 0; i < 8 + headerLength; i++) {
            for (int v : new int[] {0, 0x7F, 0xFF, '9', '"', '{'}) {
                byte[] bad = whole.clone();
                bad[i] = (byte) v;
                Throwable t = catchThrowable(() -> parse(bad));
                if (t != null) {
                    assertThat(t).as("byte %d set to %d", i, v).isInstanceOf(ModelFormatException.class);
                }
            }
        }
    }
}
