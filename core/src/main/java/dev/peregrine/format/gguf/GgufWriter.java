package dev.peregrine.format.gguf;

import dev.peregrine.tensor.DType;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Writes a GGUF v3 file, streaming tensor data so that a file of any size needs only its header in
 * memory. Usage, in this order:
 * <ol>
 *   <li>declare metadata ({@code put*}) and tensors ({@link #addTensor}), in any order;</li>
 *   <li>write every tensor's bytes with {@link #writeTensorData}, tensor after tensor in
 *       declaration order, each in as many chunks as convenient (the first call writes the
 *       header, after which nothing more can be declared);</li>
 *   <li>{@link #close()}.</li>
 * </ol>
 *
 * <p>The layout is llama.cpp's: header, metadata, tensor infos, zero padding to the alignment, then
 * each tensor's bytes followed by zero padding to the alignment. The alignment is 32 unless
 * {@code general.alignment} is set (as UINT32, the type llama.cpp requires). Values use the
 * reader's representation (see {@link GgufMetadata} and {@link GgufArray}), so whatever
 * {@link GgufFile} reads can be written back unchanged with {@link #putAll}.
 */
public final class GgufWriter implements AutoCloseable {
    private static final int VERSION = 3;
    private static final int COPY_CHUNK = 1 << 20;

    private record PendingTensor(String name, DType type, long[] shape, long byteSize) {
    }

    private final Path path;
    private final OutputStream out;
    private final ByteArrayOutputStream metadata = new ByteArrayOutputStream();
    private final Set<String> keys = new HashSet<>();
    private final List<PendingTensor> tensors = new ArrayList<>();
    private final Set<String> tensorNames = new HashSet<>();
    private int alignment = GgufFile.DEFAULT_ALIGNMENT;

    private boolean headerWritten;
    private boolean closed;
    private int current;          // index of the tensor whose bytes are being written
    private long currentWritten;  // bytes of that tensor written so far
    private byte[] copyBuffer;

    private GgufWriter(Path path, OutputStream out) {
        this.path = path;
        this.out = out;
    }

    /** Creates (or truncates) {@code path} for writing. */
    public static GgufWriter create(Path path) {
        try {
            return new GgufWriter(path, Files.newOutputStream(path));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create " + path, e);
        }
    }

    public GgufWriter putUInt8(String key, int value) {
        return put(key, GgufValueType.UINT8, (long) value);
    }

    public GgufWriter putInt8(String key, int value) {
        return put(key, GgufValueType.INT8, (long) value);
    }

    public GgufWriter putUInt16(String key, int value) {
        return put(key, GgufValueType.UINT16, (long) value);
    }

    public GgufWriter putInt16(String key, int value) {
        return put(key, GgufValueType.INT16, (long) value);
    }

    public GgufWriter putUInt32(String key, long value) {
        return put(key, GgufValueType.UINT32, value);
    }

    public GgufWriter putInt32(String key, int value) {
        return put(key, GgufValueType.INT32, (long) value);
    }

    /** Writes the 64 bits of {@code value}; values above {@code Long.MAX_VALUE} are negative longs. */
    public GgufWriter putUInt64(String key, long value) {
        return put(key, GgufValueType.UINT64, value);
    }

    public GgufWriter putInt64(String key, long value) {
        return put(key, GgufValueType.INT64, value);
    }

    public GgufWriter putFloat32(String key, float value) {
        return put(key, GgufValueType.FLOAT32, value);
    }

    public GgufWriter putFloat64(String key, double value) {
        return put(key, GgufValueType.FLOAT64, value);
    }

    public GgufWriter putBool(String key, boolean value) {
        return put(key, GgufValueType.BOOL, value);
    }

    public GgufWriter putString(String key, String value) {
        return put(key, GgufValueType.STRING, value);
    }

    /**
     * An array; {@code values} is stored as {@link GgufArray} holds it: {@code long[]} for every
     * integer type (each value must fit the type), {@code float[]}, {@code double[]},
     * {@code boolean[]}, {@code String[]}, or {@code GgufArray[]} for nested arrays.
     */
    public GgufWriter putArray(String key, GgufValueType elementType, Object values) {
        return put(key, GgufValueType.ARRAY, new GgufArray(elementType, values));
    }

    /**
     * A value of any type, in the reader's representation: {@code Long} for every integer type,
     * {@code Float}, {@code Double}, {@code Boolean}, {@code String} or {@link GgufArray}.
     */
    public GgufWriter put(String key, GgufValueType type, Object value) {
        requireDeclaring();
        if (keys.contains(key)) {
            throw new IllegalArgumentException("duplicate metadata key '" + key + "'");
        }
        if (key.equals("general.alignment")) {
            alignment = checkAlignment(type, value);
        }
        // Encode into a scratch buffer first, so that a rejected value leaves no partial entry.
        ByteArrayOutputStream entry = new ByteArrayOutputStream();
        writeString(entry, key);
        writeU32(entry, type.id());
        writeValue(entry, type, value, key, 0);
        metadata.writeBytes(entry.toByteArray());
        keys.add(key);
        return this;
    }

    /** Copies every entry of {@code source}, with its original type, in its order. */
    public GgufWriter putAll(GgufMetadata source) {
        for (Map.Entry<String, Object> e : source.asMap().entrySet()) {
            put(e.getKey(), source.typeOf(e.getKey()), e.getValue());
        }
        return this;
    }

    /**
     * Declares a tensor; its bytes come later through {@link #writeTensorData}, in declaration
     * order. {@code shape} is in ggml order ({@code shape[0]} is the row length). As the reader
     * does, this accepts any element count that is a whole number of blocks, even where blocks
     * cross rows (old files do that; current llama.cpp requires {@code shape[0]} to be a multiple),
     * except for K-quants, whose rows must be whole blocks.
     */
    public GgufWriter addTensor(String name, DType type, long... shape) {
        requireDeclaring();
        if (tensorNames.contains(name)) {
            throw new IllegalArgumentException("duplicate tensor name '" + name + "'");
        }
        if (shape.length < 1 || shape.length > GgufParser.MAX_DIMS) {
            throw new IllegalArgumentException("tensor '" + name + "' has " + shape.length
                    + " dimensions (supported: 1 to " + GgufParser.MAX_DIMS + ")");
        }
        long elements = 1;
        for (long d : shape) {
            if (d < 1) {
                throw new IllegalArgumentException("tensor '" + name + "' has dimension " + d + " (must be >= 1)");
            }
            elements = Math.multiplyExact(elements, d);
        }
        if (elements % type.blockSize() != 0) {
            throw new IllegalArgumentException("tensor '" + name + "' has " + elements + " elements, not a whole number of "
                    + type + " blocks of " + type.blockSize());
        }
        if (type.hasSuperBlocks() && shape[0] % type.blockSize() != 0) {
            throw new IllegalArgumentException("tensor '" + name + "' has rows of " + shape[0] + " values, not a whole number of "
                    + type + " blocks of " + type.blockSize());
        }
        tensors.add(new PendingTensor(name, type, shape.clone(), type.bytesFor(elements)));
        tensorNames.add(name);
        return this;
    }

    public GgufWriter writeTensorData(String name, byte[] chunk) {
        return writeTensorData(name, MemorySegment.ofArray(chunk));
    }

    /**
     * Appends {@code chunk} to the bytes of tensor {@code name}, which must be the first tensor whose
     * bytes are not complete. When its last byte arrives, the padding after it is written.
     */
    public GgufWriter writeTensorData(String name, MemorySegment chunk) {
        requireOpen();
        if (!tensorNames.contains(name)) {
            throw new IllegalArgumentException("no tensor '" + name + "' was declared");
        }
        if (current == tensors.size() || !tensors.get(current).name().equals(name)) {
            throw new IllegalStateException("tensor data must be written in declaration order: expected "
                    + (current == tensors.size() ? "no more data" : "tensor '" + tensors.get(current).name() + "'")
                    + ", got '" + name + "'");
        }
        PendingTensor t = tensors.get(current);
        if (chunk.byteSize() > t.byteSize() - currentWritten) {
            throw new IllegalArgumentException("tensor '" + name + "' (" + t.type() + ") holds " + t.byteSize()
                    + " bytes; " + currentWritten + " were written and this chunk has " + chunk.byteSize());
        }
        try {
            if (!headerWritten) {
                writeHeader();
            }
            copy(chunk);
            currentWritten += chunk.byteSize();
            if (currentWritten == t.byteSize()) {
                out.write(new byte[padding(t.byteSize())]);
                current++;
                currentWritten = 0;
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + path, e);
        }
        return this;
    }

    /**
     * Finishes the file. Throws {@link IllegalStateException} if a declared tensor is missing
     * bytes; the incomplete file is left behind (and the reader rejects it).
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try (out) {
            if (!headerWritten) {
                writeHeader();
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + path, e);
        }
        if (current < tensors.size()) {
            PendingTensor t = tensors.get(current);
            throw new IllegalStateException(path + " is incomplete: tensor '" + t.name() + "' has "
                    + currentWritten + " of its " + t.byteSize() + " bytes"
                    + (tensors.size() - current > 1 ? " and " + (tensors.size() - current - 1) + " more tensors have none" : ""));
        }
    }

    private void writeHeader() throws IOException {
        ByteArrayOutputStream header = new ByteArrayOutputStream();
        writeU32(header, GgufParser.MAGIC);
        writeU32(header, VERSION);
        writeU64(header, tensors.size());
        writeU64(header, keys.size());
        metadata.writeTo(header);
        long offset = 0;
        for (PendingTensor t : tensors) {
            writeString(header, t.name());
            writeU32(header, t.shape().length);
            for (long d : t.shape()) {
                writeU64(header, d);
            }
            writeU32(header, t.type().ggmlId());
            writeU64(header, offset);
            offset += t.byteSize() + padding(t.byteSize());
        }
        header.write(new byte[padding(header.size())]);
        header.writeTo(out);
        headerWritten = true;
    }

    /** Copies through a heap buffer, since not every segment (e.g. one over a float[]) can be viewed as bytes. */
    private void copy(MemorySegment chunk) throws IOException {
        if (copyBuffer == null) {
            copyBuffer = new byte[COPY_CHUNK];
        }
        for (long done = 0; done < chunk.byteSize(); ) {
            int n = (int) Math.min(COPY_CHUNK, chunk.byteSize() - done);
            MemorySegment.copy(chunk, ValueLayout.JAVA_BYTE, done, copyBuffer, 0, n);
            out.write(copyBuffer, 0, n);
            done += n;
        }
    }

    private int padding(long size) {
        return (int) ((alignment - size % alignment) % alignment);
    }

    private void requireOpen() {
        if (closed) {
            throw new IllegalStateException("writer for " + path + " is closed");
        }
    }

    private void requireDeclaring() {
        requireOpen();
        if (headerWritten) {
            throw new IllegalStateException("metadata and tensors must be declared before any tensor data is written");
        }
    }

    private static int checkAlignment(GgufValueType type, Object value) {
        if (type != GgufValueType.UINT32 || !(value instanceof Long a) || a < 1 || a > (1 << 30) || Long.bitCount(a) != 1) {
            throw new IllegalArgumentException("general.alignment must be a UINT32 power of two, got " + type + " " + value);
        }
        return (int) (long) a;
    }

    private static void writeValue(ByteArrayOutputStream o, GgufValueType type, Object value, String key, int depth) {
        switch (type) {
            case UINT8, INT8, UINT16, INT16, UINT32, INT32, UINT64, INT64 -> writeInteger(o, type, as(Long.class, value, key, type.name()), key);
            case FLOAT32 -> writeU32(o, Float.floatToRawIntBits(as(Float.class, value, key, type.name())));
            case FLOAT64 -> writeU64(o, Double.doubleToRawLongBits(as(Double.class, value, key, type.name())));
            case BOOL -> o.write(as(Boolean.class, value, key, type.name()) ? 1 : 0);
            case STRING -> writeString(o, as(String.class, value, key, type.name()));
            case ARRAY -> writeArray(o, as(GgufArray.class, value, key, type.name()), key, depth);
        }
    }

    private static void writeArray(ByteArrayOutputStream o, GgufArray array, String key, int depth) {
        // The reader refuses deeper nesting, so refuse to write it.
        if (depth >= GgufParser.MAX_NESTING) {
            throw new IllegalArgumentException("metadata '" + key + "' nests arrays deeper than " + GgufParser.MAX_NESTING);
        }
        GgufValueType type = array.elementType();
        writeU32(o, type.id());
        switch (type) {
            case UINT8, INT8, UINT16, INT16, UINT32, INT32, UINT64, INT64 -> {
                long[] a = as(long[].class, array.values(), key, "array of " + type);
                writeU64(o, a.length);
                for (long v : a) {
                    writeInteger(o, type, v, key);
                }
            }
            case FLOAT32 -> {
                float[] a = as(float[].class, array.values(), key, "array of " + type);
                writeU64(o, a.length);
                for (float v : a) {
                    writeU32(o, Float.floatToRawIntBits(v));
                }
            }
            case FLOAT64 -> {
                double[] a = as(double[].class, array.values(), key, "array of " + type);
                writeU64(o, a.length);
                for (double v : a) {
                    writeU64(o, Double.doubleToRawLongBits(v));
                }
            }
            case BOOL -> {
                boolean[] a = as(boolean[].class, array.values(), key, "array of " + type);
                writeU64(o, a.length);
                for (boolean v : a) {
                    o.write(v ? 1 : 0);
                }
            }
            case STRING -> {
                String[] a = as(String[].class, array.values(), key, "array of " + type);
                writeU64(o, a.length);
                for (String v : a) {
                    writeString(o, v);
                }
            }
            case ARRAY -> {
                GgufArray[] a = as(GgufArray[].class, array.values(), key, "array of " + type);
                writeU64(o, a.length);
                for (int i = 0; i < a.length; i++) {
                    writeArray(o, a[i], key + "[" + i + "]", depth + 1);
                }
            }
        }
    }

    /** Writes the low bytes of {@code v} after checking that it fits {@code type}. */
    private static void writeInteger(ByteArrayOutputStream o, GgufValueType type, long v, String key) {
        boolean fits = switch (type) {
            case UINT8 -> v >= 0 && v <= 0xFF;
            case INT8 -> v >= Byte.MIN_VALUE && v <= Byte.MAX_VALUE;
            case UINT16 -> v >= 0 && v <= 0xFFFF;
            case INT16 -> v >= Short.MIN_VALUE && v <= Short.MAX_VALUE;
            case UINT32 -> v >= 0 && v <= 0xFFFF_FFFFL;
            case INT32 -> v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE;
            default -> true; // 64-bit: every long is a valid INT64, and the bits of a UINT64
        };
        if (!fits) {
            throw new IllegalArgumentException("metadata '" + key + "': " + v + " does not fit in " + type);
        }
        for (int i = 0; i < type.size; i++) {
            o.write((int) (v >>> (8 * i)));
        }
    }

    private static void writeString(ByteArrayOutputStream o, String s) {
        byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
        writeU64(o, bytes.length);
        o.writeBytes(bytes);
    }

    private static void writeU32(ByteArrayOutputStream o, int v) {
        for (int i = 0; i < 4; i++) {
            o.write(v >>> (8 * i));
        }
    }

    private static void writeU64(ByteArrayOutputStream o, long v) {
        for (int i = 0; i < 8; i++) {
            o.write((int) (v >>> (8 * i)));
        }
    }

    /** Checks that {@code value} is held the way the reader holds a {@code what}. */
    private static <T> T as(Class<T> javaType, Object value, String key, String what) {
        if (!javaType.isInstance(value)) {
            throw new IllegalArgumentException("metadata '" + key + "': a " + what + " must be given as "
                    + javaType.getSimpleName() + ", got " + (value == null ? "null" : value.getClass().getSimpleName()));
        }
        return javaType.cast(value);
    }
}
