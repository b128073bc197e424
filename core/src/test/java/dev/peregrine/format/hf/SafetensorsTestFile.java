package dev.peregrine.format.hf;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * A safetensors file read for tests by the format's definition, independently of the writer: the
 * 8-byte little-endian header length, the header JSON, and the data after it.
 */
public record SafetensorsTestFile(long headerLength, String header, byte[] data) {

    public static SafetensorsTestFile read(Path file) throws IOException {
        byte[] all = Files.readAllBytes(file);
        long n = ByteBuffer.wrap(all, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        String header = new String(all, 8, (int) n, StandardCharsets.UTF_8);
        return new SafetensorsTestFile(n, header, Arrays.copyOfRange(all, 8 + (int) n, all.length));
    }

    public Map<String, Object> json() {
        return TestJson.object(header);
    }

    /** A tensor's header entry: {"dtype": ..., "shape": [...], "data_offsets": [begin, end]}. */
    @SuppressWarnings("unchecked")
    public Map<String, Object> entry(String name) {
        Map<String, Object> e = (Map<String, Object>) json().get(name);
        if (e == null) {
            throw new AssertionError("no tensor '" + name + "' in " + json().keySet());
        }
        return e;
    }

    /** A tensor's bytes, located by its data_offsets. */
    public byte[] bytes(String name) {
        @SuppressWarnings("unchecked")
        List<Double> offsets = (List<Double>) entry(name).get("data_offsets");
        return Arrays.copyOfRange(data, offsets.get(0).intValue(), offsets.get(1).intValue());
    }
}
