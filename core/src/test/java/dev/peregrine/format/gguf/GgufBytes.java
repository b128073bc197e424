package dev.peregrine.format.gguf;

import java.io.ByteArrayOutputStream;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * Builds GGUF bytes field by field, straight from the format spec, so that tests can write files
 * the writer would refuse to produce (wrong magic, huge counts, bad types...). {@link #size()}
 * before a field is that field's offset, which malformed-file tests compare with the reported one.
 */
final class GgufBytes {
    static final Path NAME = Path.of("test.gguf");

    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    /** Magic "GGUF", the version and the two counts. */
    static GgufBytes header(int version, long tensorCount, long kvCount) {
        return new GgufBytes().raw("GGUF".getBytes(StandardCharsets.US_ASCII)).u32(version).u64(tensorCount).u64(kvCount);
    }

    GgufBytes u8(int v) {
        out.write(v);
        return this;
    }

    GgufBytes u32(long v) {
        return little(v, 4);
    }

    GgufBytes u64(long v) {
        return little(v, 8);
    }

    GgufBytes f32(float v) {
        return u32(Float.floatToRawIntBits(v));
    }

    GgufBytes str(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        return u64(b.length).raw(b);
    }

    GgufBytes raw(byte[] b) {
        out.writeBytes(b);
        return this;
    }

    /** A metadata key and its value type id; the value follows. */
    GgufBytes key(String key, int typeId) {
        return str(key).u32(typeId);
    }

    /** A tensor info: name, dimensions, ggml type id, data offset. */
    GgufBytes tensor(String name, int typeId, long offset, long... shape) {
        str(name).u32(shape.length);
        for (long d : shape) {
            u64(d);
        }
        return u32(typeId).u64(offset);
    }

    /** Zero bytes up to the next multiple of {@code alignment}. */
    GgufBytes pad(int alignment) {
        return raw(new byte[(alignment - size() % alignment) % alignment]);
    }

    GgufBytes zeros(int n) {
        return raw(new byte[n]);
    }

    int size() {
        return out.size();
    }

    byte[] bytes() {
        return out.toByteArray();
    }

    GgufFile parse() {
        return GgufFile.parse(NAME, MemorySegment.ofArray(bytes()));
    }

    private GgufBytes little(long v, int n) {
        for (int i = 0; i < n; i++) {
            out.write((int) (v >>> (8 * i)));
        }
        return this;
    }
}
