package dev.peregrine.format.gguf;

import dev.peregrine.ModelFormatException;
import dev.peregrine.tensor.Tensor;
import dev.peregrine.tensor.TensorSource;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A GGUF file (versions 2 and 3), memory-mapped once, read-only. Tensors are slices of that one
 * mapping, so opening a file costs time in its header size, not its total size. The mapping
 * belongs to the {@link Arena} passed to {@link #open}: closing the arena unmaps it.
 *
 * <p>Layout (little-endian): magic "GGUF", u32 version, u64 tensor count, u64 metadata count,
 * metadata entries (string key, u32 type, value), tensor infos (string name, u32 dimension count,
 * u64 dimensions, u32 ggml type, u64 offset), padding to {@code general.alignment} (default 32),
 * then the data section. Strings are a u64 length followed by UTF-8 bytes.
 */
public final class GgufFile implements TensorSource {
    public static final int DEFAULT_ALIGNMENT = 32;

    private final Path path;
    private final int version;
    private final GgufMetadata metadata;
    private final Map<String, GgufTensorInfo> tensorInfos;
    private final int alignment;
    private final long dataOffset;
    private final MemorySegment mapping;

    GgufFile(Path path, int version, GgufMetadata metadata, Map<String, GgufTensorInfo> tensorInfos,
             int alignment, long dataOffset, MemorySegment mapping) {
        this.path = path;
        this.version = version;
        this.metadata = metadata;
        this.tensorInfos = Collections.unmodifiableMap(tensorInfos);
        this.alignment = alignment;
        this.dataOffset = dataOffset;
        this.mapping = mapping;
    }

    /**
     * Maps and parses a GGUF file. Every size read from the file is checked against the file's
     * length before anything is allocated for it.
     *
     * @throws ModelFormatException if the file is missing, unreadable, malformed or unsupported
     */
    public static GgufFile open(Path path, Arena arena) {
        if (Files.isDirectory(path)) {
            throw new ModelFormatException(path, -1, "is a directory, not a GGUF file");
        }
        if (Files.exists(path) && !Files.isRegularFile(path)) {
            // a pipe or a device: opening a FIFO would wait for a writer forever
            throw new ModelFormatException(path, -1, "is not a regular file (a pipe or a device?), not a GGUF file");
        }
        MemorySegment mapping;
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            mapping = channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size(), arena);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException("model file not found: " + path, e);
        } catch (IOException e) {
            throw new ModelFormatException("cannot read model file " + path + ": " + e.getMessage(), e);
        }
        return parse(path, mapping);
    }

    /** Parses GGUF bytes already in memory; {@code path} is only used in error messages. */
    static GgufFile parse(Path path, MemorySegment contents) {
        return new GgufParser(path, contents).parse();
    }

    @Override
    public Path path() {
        return path;
    }

    public int version() {
        return version;
    }

    public GgufMetadata metadata() {
        return metadata;
    }

    public int alignment() {
        return alignment;
    }

    /** Offset of the data section from the start of the file. */
    public long dataOffset() {
        return dataOffset;
    }

    /** Size of the mapped file in bytes. */
    public long fileSize() {
        return mapping.byteSize();
    }

    /** The tensor table, in file order. */
    public List<GgufTensorInfo> tensorInfos() {
        return List.copyOf(tensorInfos.values());
    }

    @Override
    public Optional<Tensor> findTensor(String name) {
        GgufTensorInfo info = tensorInfos.get(name);
        if (info == null) {
            return Optional.empty();
        }
        MemorySegment data = mapping.asSlice(dataOffset + info.dataOffset(), info.byteSize());
        return Optional.of(new Tensor(name, info.type(), info.shape(), data));
    }

    static GgufFile create(Path path, int version, LinkedHashMap<String, Object> values,
                           LinkedHashMap<String, GgufValueType> types, LinkedHashMap<String, GgufTensorInfo> infos,
                           int alignment, long dataOffset, MemorySegment mapping) {
        return new GgufFile(path, version, new GgufMetadata(path, values, types), infos, alignment, dataOffset, mapping);
    }
}
