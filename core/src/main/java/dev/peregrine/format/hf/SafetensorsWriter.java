package dev.peregrine.format.hf;

import dev.peregrine.tensor.DType;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Writes one safetensors file, streaming tensor data so that only the header is held in memory.
 * The tensors are declared up front ({@link #create}), which writes the header; then their bytes
 * come through {@link #writeTensorData}, tensor after tensor in declaration order, in as many
 * chunks as convenient; then {@link #close()}.
 *
 * <p>Layout, as the safetensors library writes it: an 8-byte little-endian header length N, N
 * bytes of JSON ({@code {"__metadata__":{...},"name":{"dtype":"F32","shape":[rows,cols],
 * "data_offsets":[begin,end]},...}}, padded with spaces to a multiple of 8 so that the data is
 * 8-byte aligned), then the tensors' bytes back to back; offsets count from the end of the header.
 * Shapes are row-major, outermost dimension first (PyTorch's order, the reverse of ggml's).
 */
public final class SafetensorsWriter implements AutoCloseable {
    private static final int COPY_CHUNK = 1 << 20;

    /** A tensor to write: its name, element type (F32, F16 or BF16) and row-major shape. */
    public record TensorSpec(String name, DType type, long[] shape) {
        public TensorSpec {
            if (name == null || name.isEmpty() || name.equals("__metadata__")) {
                throw new IllegalArgumentException("invalid safetensors tensor name '" + name + "'");
            }
            dtypeName(type);
            shape = shape.clone();
            for (long d : shape) {
                if (d < 0) {
                    throw new IllegalArgumentException("tensor '" + name + "' has dimension " + d);
                }
            }
        }

        @Override
        public long[] shape() {
            return shape.clone();
        }

        public long elementCount() {
            long n = 1;
            for (long d : shape) {
                n = Math.multiplyExact(n, d);
            }
            return n;
        }

        public long byteSize() {
            return type.bytesFor(elementCount());
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof TensorSpec t && t.name.equals(name) && t.type == type && Arrays.equals(t.shape, shape);
        }

        @Override
        public int hashCode() {
            return name.hashCode();
        }

        @Override
        public String toString() {
            return name + " " + dtypeName(type) + " " + Arrays.toString(shape);
        }
    }

    private final Path path;
    private final OutputStream out;
    private final List<TensorSpec> tensors;
    private final long fileSize;
    private final byte[] copyBuffer = new byte[COPY_CHUNK];
    private int current;          // index of the tensor whose bytes are being written
    private long currentWritten;  // bytes of that tensor written so far
    private boolean closed;

    private SafetensorsWriter(Path path, OutputStream out, List<TensorSpec> tensors, long fileSize) {
        this.path = path;
        this.out = out;
        this.tensors = tensors;
        this.fileSize = fileSize;
    }

    /**
     * Creates (or truncates) {@code file} and writes its header.
     *
     * @param metadata the {@code __metadata__} strings; PyTorch checkpoints carry {"format": "pt"}
     */
    public static SafetensorsWriter create(Path file, List<TensorSpec> tensors, Map<String, String> metadata) {
        List<TensorSpec> list = List.copyOf(tensors);
        byte[] header = header(list, metadata);
        long size = 8 + header.length;
        for (TensorSpec t : list) {
            size += t.byteSize();
        }
        OutputStream out = null;
        try {
            out = Files.newOutputStream(file);
            byte[] length = new byte[8];
            for (int i = 0; i < 8; i++) {
                length[i] = (byte) ((long) header.length >>> (8 * i));
            }
            out.write(length);
            out.write(header);
            SafetensorsWriter w = new SafetensorsWriter(file, out, list, size);
            w.skipEmptyTensors();
            return w;
        } catch (IOException e) {
            closeQuietly(out);
            throw new UncheckedIOException("cannot write " + file, e);
        }
    }

    /** The header JSON, space-padded to a multiple of 8 bytes. */
    static byte[] header(List<TensorSpec> tensors, Map<String, String> metadata) {
        Map<String, Object> json = new LinkedHashMap<>();
        if (!metadata.isEmpty()) {
            json.put("__metadata__", metadata);
        }
        Set<String> names = new HashSet<>();
        long offset = 0;
        for (TensorSpec t : tensors) {
            if (!names.add(t.name())) {
                throw new IllegalArgumentException("duplicate tensor name '" + t.name() + "'");
            }
            long end = offset + t.byteSize();
            Map<String, Object> entry = new LinkedHashMap<>();
            entry.put("dtype", dtypeName(t.type()));
            entry.put("shape", t.shape());
            entry.put("data_offsets", new long[] {offset, end});
            json.put(t.name(), entry);
            offset = end;
        }
        String text = JsonText.compact(json);
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        int padded = (bytes.length + 7) / 8 * 8;
        byte[] result = Arrays.copyOf(bytes, padded);
        Arrays.fill(result, bytes.length, padded, (byte) ' ');
        return result;
    }

    /** safetensors' name for a type; only the float types have one here. */
    public static String dtypeName(DType type) {
        return switch (type) {
            case F32 -> "F32";
            case F16 -> "F16";
            case BF16 -> "BF16";
            default -> throw new IllegalArgumentException("safetensors holds F32, F16 or BF16 tensors here, not " + type);
        };
    }

    /** The size the finished file has. */
    public long fileSize() {
        return fileSize;
    }

    public SafetensorsWriter writeTensorData(String name, byte[] chunk) {
        return writeTensorData(name, MemorySegment.ofArray(chunk));
    }

    /** Appends {@code chunk} to the bytes of tensor {@code name}, the first tensor whose bytes are not complete. */
    public SafetensorsWriter writeTensorData(String name, MemorySegment chunk) {
        if (closed) {
            throw new IllegalStateException("writer for " + path + " is closed");
        }
        if (current == tensors.size() || !tensors.get(current).name().equals(name)) {
            throw new IllegalStateException("tensor data must be written in declaration order: expected "
                    + (current == tensors.size() ? "no more data" : "tensor '" + tensors.get(current).name() + "'")
                    + ", got '" + name + "'");
        }
        TensorSpec t = tensors.get(current);
        if (chunk.byteSize() > t.byteSize() - currentWritten) {
            throw new IllegalArgumentException("tensor '" + name + "' holds " + t.byteSize() + " bytes; "
                    + currentWritten + " were written and this chunk has " + chunk.byteSize());
        }
        try {
            for (long done = 0; done < chunk.byteSize(); ) {
                int n = (int) Math.min(COPY_CHUNK, chunk.byteSize() - done);
                MemorySegment.copy(chunk, ValueLayout.JAVA_BYTE, done, copyBuffer, 0, n);
                out.write(copyBuffer, 0, n);
                done += n;
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + path, e);
        }
        currentWritten += chunk.byteSize();
        if (currentWritten == t.byteSize()) {
            current++;
            currentWritten = 0;
            skipEmptyTensors();
        }
        return this;
    }

    /** Whether every declared tensor has all its bytes. */
    public boolean isComplete() {
        return current == tensors.size();
    }

    /**
     * Finishes the file. Throws {@link IllegalStateException} if a tensor is missing bytes; the
     * incomplete file is left behind.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            out.close();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + path, e);
        }
        if (!isComplete()) {
            throw new IllegalStateException(path + " is incomplete: tensor '" + tensors.get(current).name() + "' has "
                    + currentWritten + " of its " + tensors.get(current).byteSize() + " bytes");
        }
    }

    /** Tensors with no elements have no bytes to wait for. */
    private void skipEmptyTensors() {
        while (current < tensors.size() && tensors.get(current).byteSize() == 0) {
            current++;
        }
    }

    private static void closeQuietly(OutputStream out) {
        if (out != null) {
            try {
                out.close();
            } catch (IOException ignored) {
                // the original failure is the one reported
            }
        }
    }
}
