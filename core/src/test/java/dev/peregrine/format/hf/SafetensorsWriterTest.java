package dev.peregrine.format.hf;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.format.hf.SafetensorsWriter.TensorSpec;
import dev.peregrine.tensor.DType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsWriterTest {
    private static final Map<String, String> PT = Map.of("format", "pt");

    @TempDir
    Path dir;

    private static byte[] f32(float... v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) {
            b.putFloat(x);
        }
        return b.array();
    }

    @Test
    void writesTheLayoutTheFormatDefines() throws IOException {
        Path file = dir.resolve("t.safetensors");
        byte[] a = f32(1, 2, 3, 4, 5, 6);
        byte[] b = {1, 2, 3, 4, 5, 6, 7, 8};
        try (SafetensorsWriter w = SafetensorsWriter.create(file, List.of(
                new TensorSpec("a", DType.F32, new long[] {2, 3}),
                new TensorSpec("b", DType.F16, new long[] {4})), PT)) {
            w.writeTensorData("a", a).writeTensorData("b", b);
        }
        SafetensorsTestFile p = SafetensorsTestFile.read(file);
        String json = "{\"__metadata__\":{\"format\":\"pt\"},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                + "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]}}";
        // 32 + 55 + 1 + 54 + 1 = 143 bytes of JSON, padded with one space to 144, a multiple of 8.
        assertThat(json).hasSize(143);
        assertThat(p.headerLength()).isEqualTo(144);
        assertThat(p.header()).isEqualTo(json + " ");
        byte[] data = new byte[32];
        System.arraycopy(a, 0, data, 0, 24);
        System.arraycopy(b, 0, data, 24, 8);
        assertThat(p.data()).isEqualTo(data);
        assertThat(Files.size(file)).isEqualTo(8 + 144 + 32);
    }

    @Test
    void headerIsSpacePaddedToEightBytesForEveryLength() throws IOException {
        for (int nameLength = 1; nameLength <= 9; nameLength++) {
            Path file = dir.resolve("pad" + nameLength + ".safetensors");
            String name = "x".repeat(nameLength);
            try (SafetensorsWriter w = SafetensorsWriter.create(file, List.of(new TensorSpec(name, DType.BF16, new long[] {1})), PT)) {
                w.writeTensorData(name, new byte[] {0x40, 0x3F});
            }
            SafetensorsTestFile p = SafetensorsTestFile.read(file);
            assertThat(p.headerLength() % 8).isZero();
            assertThat(p.header().stripTrailing()).endsWith("}");
            assertThat(p.header().substring(p.header().stripTrailing().length())).matches(" {0,7}");
            @SuppressWarnings("unchecked")
            Map<String, Object> t = (Map<String, Object>) p.json().get(name);
            assertThat(t).containsEntry("dtype", "BF16").containsEntry("shape", List.of(1.0))
                    .containsEntry("data_offsets", List.of(0.0, 2.0));
            assertThat(p.data()).containsExactly(0x40, 0x3F);
        }
    }

    @Test
    void dataMayArriveInAnyChunks() throws IOException {
        byte[] values = f32(1, 2, 3, 4, 5, 6, 7, 8);
        Path whole = dir.resolve("whole.safetensors");
        Path chunked = dir.resolve("chunked.safetensors");
        List<TensorSpec> specs = List.of(new TensorSpec("w", DType.F32, new long[] {2, 4}));
        try (SafetensorsWriter w = SafetensorsWriter.create(whole, specs, PT)) {
            w.writeTensorData("w", values);
        }
        try (SafetensorsWriter w = SafetensorsWriter.create(chunked, specs, PT)) {
            w.writeTensorData("w", Arrays.copyOfRange(values, 0, 5));
            w.writeTensorData("w", Arrays.copyOfRange(values, 5, 17));
            w.writeTensorData("w", Arrays.copyOfRange(values, 17, 32));
        }
        assertThat(Files.readAllBytes(chunked)).isEqualTo(Files.readAllBytes(whole));
    }

    @Test
    void misuseIsRejectedWithClearMessages() {
        Path file = dir.resolve("bad.safetensors");
        List<TensorSpec> specs = List.of(new TensorSpec("a", DType.F32, new long[] {2}), new TensorSpec("b", DType.F32, new long[] {1}));

        assertThatThrownBy(() -> new TensorSpec("q", DType.Q8_0, new long[] {32}))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not Q8_0");
        assertThatThrownBy(() -> new TensorSpec("__metadata__", DType.F32, new long[] {1}))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> SafetensorsWriter.create(file, List.of(specs.get(0), specs.get(0)), PT))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("duplicate tensor name 'a'");

        SafetensorsWriter w = SafetensorsWriter.create(file, specs, PT);
        assertThatThrownBy(() -> w.writeTensorData("b", new byte[4]))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("expected tensor 'a'");
        assertThatThrownBy(() -> w.writeTensorData("a", new byte[9]))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("holds 8 bytes");
        w.writeTensorData("a", new byte[8]);
        assertThatThrownBy(w::close).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("tensor 'b' has 0 of its 4 bytes");
    }
}
