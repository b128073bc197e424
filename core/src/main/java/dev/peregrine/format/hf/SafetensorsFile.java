package dev.peregrine.format.hf;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.json.Json;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * One safetensors file, memory-mapped once, read-only; tensors are slices of that mapping (as
 * {@code GgufFile}'s are), which belongs to the {@link Arena} passed to {@link #open}.
 *
 * <p>Layout (see {@link SafetensorsWriter}): a u64 little-endian header length N, N bytes of JSON
 * ({@code "name": {"dtype", "shape", "data_offsets": [begin, end]}} per tensor, and an optional
 * {@code "__metadata__"} object of strings), then the data section; offsets count from its start.
 * Every length and offset is checked against the file before it is used, so a malformed file gives
 * a {@link ModelFormatException} naming the file, the tensor and the problem.
 */
public final class SafetensorsFile {
    /** The safetensors library refuses headers above 100 MB; so do we, before allocating anything. */
    static final long MAX_HEADER_BYTES = 100_000_000L;
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /**
     * A tensor's header entry.
     *
     * @param shape row-major, outermost dimension first (PyTorch's order)
     * @param begin offset of its first byte from the start of the data section
     */
    public record Entry(String name, DType type, long[] shape, long begin, long byteSize) {
        public Entry {
            shape = shape.clone();
        }

        @Override
        public long[] shape() {
            return shape.clone();
        }
    }

    private final Path path;
    private final MemorySegment mapping;
    private final long dataStart;
    private final Map<String, Entry> entries;
    private final Map<String, String> metadata;

    private SafetensorsFile(Path path, MemorySegment mapping, long dataStart, Map<String, Entry> entries,
                            Map<String, String> metadata) {
        this.path = path;
        this.mapping = mapping;
        this.dataStart = dataStart;
        this.entries = Collections.unmodifiableMap(entries);
        this.metadata = Collections.unmodifiableMap(metadata);
    }

    /**
     * Maps and parses a safetensors file.
     *
     * @throws ModelFormatException if the file is missing, unreadable or malformed
     */
    public static SafetensorsFile open(Path path, Arena arena) {
        if (Files.exists(path) && !Files.isRegularFile(path)) {
            // a directory, a pipe or a device: opening a FIFO would wait for a writer forever
            throw new ModelFormatException(path, -1, "is not a regular file, not a safetensors file");
        }
        MemorySegment mapping;
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            mapping = channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size(), arena);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException("safetensors file not found: " + path, e);
        } catch (IOException e) {
            throw new ModelFormatException("cannot read " + path + ": " + e.getMessage(), e);
        }
        return parse(path, mapping);
    }

    /** Parses safetensors bytes already in memory; {@code path} names them in error messages. */
    public static SafetensorsFile parse(Path path, MemorySegment contents) {
        long size = contents.byteSize();
        if (size < 8) {
            throw new ModelFormatException(path, 0, "file is truncated: the 8-byte header length needs 8 bytes, the file has " + size);
        }
        long headerLength = contents.get(U64, 0);
        // Checked against the file before a byte is allocated for it (a negative long is a huge u64).
        if (headerLength < 2 || headerLength > size - 8 || headerLength > MAX_HEADER_BYTES) {
            throw new ModelFormatException(path, 0, "header length " + Long.toUnsignedString(headerLength)
                    + " does not fit: the file has " + (size - 8) + " bytes after the length field"
                    + (headerLength > MAX_HEADER_BYTES ? " (and headers are at most " + MAX_HEADER_BYTES + " bytes)" : ""));
        }
        byte[] header = contents.asSlice(8, headerLength).toArray(ValueLayout.JAVA_BYTE);
        if (header[0] != '{') {
            throw new ModelFormatException(path, 8, "the header is not a JSON object (it starts with byte " + (header[0] & 0xFF) + ")");
        }
        Object json = Json.parse(header, path);
        if (!(json instanceof Map<?, ?> top)) {
            throw new ModelFormatException(path, 8, "the header is not a JSON object");
        }
        long dataStart = 8 + headerLength;
        long dataSize = size - dataStart;
        Map<String, Entry> entries = new LinkedHashMap<>();
        Map<String, String> metadata = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : top.entrySet()) {
            String name = (String) e.getKey();
            if (name.equals("__metadata__")) {
                readMetadata(path, e.getValue(), metadata);
            } else {
                entries.put(name, readEntry(path, name, e.getValue(), dataSize));
            }
        }
        checkNoOverlap(path, entries.values());
        return new SafetensorsFile(path, contents, dataStart, entries, metadata);
    }

    private static void readMetadata(Path path, Object value, Map<String, String> out) {
        if (!(value instanceof Map<?, ?> m)) {
            throw new ModelFormatException(path, 8, "__metadata__ must be an object of strings");
        }
        for (Map.Entry<?, ?> e : m.entrySet()) {
            if (!(e.getValue() instanceof String s)) {
                throw new ModelFormatException(path, 8, "__metadata__ value '" + e.getKey() + "' is not a string");
            }
            out.put((String) e.getKey(), s);
        }
    }

    private static Entry readEntry(Path path, String name, Object value, long dataSize) {
        if (!(value instanceof Map<?, ?> m)) {
            throw bad(path, name, "its header entry is not an object");
        }
        if (!(m.get("dtype") instanceof String dtype)) {
            throw bad(path, name, "has no dtype string");
        }
        DType type = switch (dtype) {
            case "F32" -> DType.F32;
            case "F16" -> DType.F16;
            case "BF16" -> DType.BF16;
            default -> throw bad(path, name, "has dtype " + dtype + ", which Peregrine cannot read (supported: F32, F16, BF16)");
        };
        long[] shape = longs(path, name, m.get("shape"), "shape", -1);
        long elements = 1;
        for (long d : shape) {
            if (Math.multiplyHigh(elements, d) != 0 || elements * d < 0 || elements * d > (1L << 56)) {
                throw bad(path, name, "has too many elements (the product of shape " + List.of(boxed(shape)) + " overflows)");
            }
            elements *= d;
        }
        long[] offsets = longs(path, name, m.get("data_offsets"), "data_offsets", 2);
        long begin = offsets[0];
        long end = offsets[1];
        long expected = type.bytesFor(elements);
        if (begin > end || end > dataSize) {
            throw bad(path, name, "data_offsets [" + begin + ", " + end + "] lie outside the data section ("
                    + dataSize + " bytes)");
        }
        if (end - begin != expected) {
            throw bad(path, name, "data_offsets [" + begin + ", " + end + "] hold " + (end - begin) + " bytes, but "
                    + dtype + " shape " + List.of(boxed(shape)) + " needs " + expected);
        }
        return new Entry(name, type, shape, begin, expected);
    }

    /** An array of non-negative integers; exactly {@code length} of them unless it is -1. */
    private static long[] longs(Path path, String name, Object value, String key, int length) {
        if (!(value instanceof List<?> list) || (length >= 0 && list.size() != length)) {
            throw bad(path, name, "has no valid " + key + " (expected " + (length >= 0 ? length + " integers" : "an array of integers")
                    + ", got " + value + ")");
        }
        long[] out = new long[list.size()];
        for (int i = 0; i < out.length; i++) {
            if (!(list.get(i) instanceof Long x) || x < 0) {
                throw bad(path, name, key + " must hold non-negative integers, got " + list);
            }
            out[i] = x;
        }
        return out;
    }

    private static void checkNoOverlap(Path path, java.util.Collection<Entry> entries) {
        List<Entry> sorted = new ArrayList<>(entries);
        sorted.sort(Comparator.comparingLong(Entry::begin));
        for (int i = 1; i < sorted.size(); i++) {
            Entry previous = sorted.get(i - 1);
            Entry e = sorted.get(i);
            if (e.byteSize() > 0 && previous.begin() + previous.byteSize() > e.begin()) {
                throw bad(path, e.name(), "overlaps the data of tensor '" + previous.name() + "'");
            }
        }
    }

    private static Long[] boxed(long[] a) {
        Long[] b = new Long[a.length];
        for (int i = 0; i < a.length; i++) {
            b[i] = a[i];
        }
        return b;
    }

    private static ModelFormatException bad(Path path, String tensor, String reason) {
        return new ModelFormatException(path, 8, "tensor '" + tensor + "' " + reason);
    }

    public Path path() {
        return path;
    }

    /** The header entries, in header order. */
    public Map<String, Entry> entries() {
        return entries;
    }

    public Set<String> names() {
        return entries.keySet();
    }

    public Map<String, String> metadata() {
        return metadata;
    }

    /**
     * A tensor by name, as a slice of the mapping with its shape in ggml order (row length
     * first: the reverse of the header's); a scalar has shape [1].
     */
    public Optional<Tensor> findTensor(String name) {
        Entry e = entries.get(name);
        if (e == null) {
            return Optional.empty();
        }
        long[] hf = e.shape();
        long[] ggml = hf.length == 0 ? new long[] {1} : HfLlamaLayout.hfShape(hf); // reversing is its own inverse
        return Optional.of(new Tensor(name, e.type(), ggml, mapping.asSlice(dataStart + e.begin(), e.byteSize())));
    }
}
