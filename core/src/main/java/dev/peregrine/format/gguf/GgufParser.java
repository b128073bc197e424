package dev.peregrine.format.gguf;

import dev.peregrine.ModelFormatException;
import dev.peregrine.tensor.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.stream.Collectors;

/**
 * Reads the header of a mapped GGUF file with a cursor. Every read is bounds-checked against the
 * file, and every count read from the file is checked against the bytes left before an array of
 * that size is allocated, so a malformed file gives a {@link ModelFormatException} naming the
 * offset, never an OutOfMemoryError or an index exception.
 */
final class GgufParser {
    static final int MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
    static final int MAX_DIMS = 4;        // GGML_MAX_DIMS
    static final int MAX_NESTING = 8;     // deeper nested arrays are not used by any real file
    private static final String SUPPORTED_TYPES =
            Arrays.stream(DType.values()).map(DType::name).collect(Collectors.joining(", "));

    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64 = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT);
    private final Path path;
    private final MemorySegment file;
    private final long size;
    private long pos;

    GgufParser(Path path, MemorySegment file) {
        this.path = path;
        this.file = file;
        this.size = file.byteSize();
    }

    /** What a file with this magic is, when it is a format a model may come in before GGUF; else "". */
    private static String knownOtherFormat(int magic) {
        return switch (magic) {
            case 0x67676a74, 0x67676d66, 0x67676d6c -> ": a legacy GGML file (ggjt/ggmf/ggml, before GGUF), which llama.cpp no"
                    + " longer reads either; its convert_llama_ggml_to_gguf.py converts it";
            case 0x616b3432 -> ": a llama2.c checkpoint (version 1 export), which llama.cpp does not read"
                    + " either; its convert-llama2c-to-ggml example converts llama2.c's legacy (version 0) export";
            default -> "";
        };
    }

    GgufFile parse() {
        int magic = readU32("magic");
        if (magic != MAGIC) {
            throw error(0, String.format("not a GGUF file (magic 0x%08x, expected 0x%08x \"GGUF\")%s", magic, MAGIC,
                    knownOtherFormat(magic)));
        }
        int version = readU32("version");
        if (version == 1) {
            throw error(4, "GGUF version 1 is not supported (it uses 32-bit counts and was retired by llama.cpp "
                    + "in 2023); convert the model to GGUF v3 with a current llama.cpp");
        }
        if (version != 2 && version != 3) {
            throw error(4, "unsupported GGUF version " + Integer.toUnsignedString(version) + " (supported: 2, 3)");
        }
        long countPos = pos;
        long tensorCount = readU64("tensor count");
        long kvCount = readU64("metadata count");
        // Each tensor info needs at least 8 + 4 + 8 + 4 + 8 bytes, each metadata entry 8 + 4 + 1.
        checkCount(countPos, tensorCount, 32, "tensor count");
        checkCount(countPos + 8, kvCount, 13, "metadata count");

        LinkedHashMap<String, Object> values = new LinkedHashMap<>();
        LinkedHashMap<String, GgufValueType> types = new LinkedHashMap<>();
        int alignment = GgufFile.DEFAULT_ALIGNMENT;
        for (long i = 0; i < kvCount; i++) {
            long keyPos = pos;
            String key = readString("metadata key " + i);
            GgufValueType type = readType("metadata '" + key + "'");
            if (values.containsKey(key)) {
                throw error(keyPos, "duplicate metadata key '" + key + "'");
            }
            Object value = type == GgufValueType.ARRAY ? readArray(key, 0) : readScalar(type, "value of '" + key + "'");
            if (key.equals("general.alignment")) {
                if (!(value instanceof Long a) || a <= 0 || a > (1 << 30) || Long.bitCount(a) != 1) {
                    throw error(keyPos, "general.alignment must be a positive power of two, got " + type + " " + value);
                }
                alignment = (int) (long) a;
            }
            values.put(key, value);
            types.put(key, type);
        }

        LinkedHashMap<String, GgufTensorInfo> infos = new LinkedHashMap<>();
        long[] infoPositions = new long[(int) tensorCount];
        for (int i = 0; i < tensorCount; i++) {
            infoPositions[i] = pos;
            GgufTensorInfo info = readTensorInfo(i);
            if (infos.containsKey(info.name())) {
                throw error(infoPositions[i], "duplicate tensor name '" + info.name() + "'");
            }
            infos.put(info.name(), info);
        }

        long dataOffset = alignUp(pos, alignment);
        if (tensorCount > 0 && dataOffset > size) {
            throw error(pos, "file ends before the tensor data section (needs offset " + dataOffset + ", file has " + size + " bytes)");
        }
        int i = 0;
        for (GgufTensorInfo info : infos.values()) {
            long at = infoPositions[i++];
            if (info.dataOffset() % alignment != 0) {
                throw error(at, "tensor '" + info.name() + "' data offset " + Long.toUnsignedString(info.dataOffset())
                        + " is not a multiple of the alignment " + alignment);
            }
            // Written so that nothing overflows: offsets up to 2^64 - 1 come from the file.
            long available = size - dataOffset;
            if (info.dataOffset() < 0 || info.byteSize() > available || info.dataOffset() > available - info.byteSize()) {
                throw error(at, "tensor '" + info.name() + "' data (" + info.byteSize() + " bytes at offset "
                        + Long.toUnsignedString(info.dataOffset()) + ") lies outside the data section (" + available + " bytes)");
            }
        }
        return GgufFile.create(path, version, values, types, infos, alignment, dataOffset, file);
    }

    private GgufTensorInfo readTensorInfo(int index) {
        String name = readString("tensor " + index + " name");
        long dimsPos = pos;
        int nDims = readU32("dimension count of tensor '" + name + "'");
        if (nDims < 1 || nDims > MAX_DIMS) {
            throw error(dimsPos, "tensor '" + name + "' has " + Integer.toUnsignedString(nDims)
                    + " dimensions (supported: 1 to " + MAX_DIMS + ")");
        }
        long[] shape = new long[nDims];
        long elements = 1;
        for (int d = 0; d < nDims; d++) {
            long at = pos;
            shape[d] = readU64("dimension " + d + " of tensor '" + name + "'");
            if (shape[d] <= 0) {
                throw error(at, "tensor '" + name + "' dimension " + d + " is " + Long.toUnsignedString(shape[d]) + " (must be >= 1)");
            }
            long product = elements * shape[d];
            if (Math.multiplyHigh(elements, shape[d]) != 0 || product < 0 || product > (1L << 56)) {
                throw error(at, "tensor '" + name + "' has too many elements (dimension product overflows)");
            }
            elements = product;
        }
        long typePos = pos;
        int typeId = readU32("type of tensor '" + name + "'");
        DType type = DType.fromGgmlId(typeId).orElseThrow(() -> error(typePos,
                "tensor '" + name + "' is stored as " + DType.ggmlName(typeId) + ", which Peregrine cannot read "
                        + "(supported: " + SUPPORTED_TYPES + ")"));
        if (elements % type.blockSize() != 0) {
            throw error(dimsPos, "tensor '" + name + "' has " + elements + " elements, not a whole number of "
                    + type + " blocks of " + type.blockSize());
        }
        if (type.hasSuperBlocks() && shape[0] % type.blockSize() != 0) {
            throw error(dimsPos, "tensor '" + name + "' has rows of " + shape[0] + " values, not a whole number of "
                    + type + " blocks of " + type.blockSize() + " (ggml writes K-quants only with whole-block rows)");
        }
        long offset = readU64("data offset of tensor '" + name + "'");
        return new GgufTensorInfo(name, type, shape, offset, type.bytesFor(elements));
    }

    /** Reads one scalar; {@code what} names it in error messages. */
    private Object readScalar(GgufValueType type, String what) {
        return switch (type) {
            case UINT8 -> (long) (readBytes(1, what).get(ValueLayout.JAVA_BYTE, 0) & 0xFF);
            case INT8 -> (long) readBytes(1, what).get(ValueLayout.JAVA_BYTE, 0);
            case UINT16 -> (long) (readBytes(2, what).get(U16, 0) & 0xFFFF);
            case INT16 -> (long) readBytes(2, what).get(U16, 0);
            case UINT32 -> Integer.toUnsignedLong(readU32(what));
            case INT32 -> (long) readU32(what);
            case UINT64, INT64 -> readU64(what);
            case FLOAT32 -> readBytes(4, what).get(F32, 0);
            case FLOAT64 -> readBytes(8, what).get(F64, 0);
            case BOOL -> {
                long at = pos;
                byte b = readBytes(1, what).get(ValueLayout.JAVA_BYTE, 0);
                if (b != 0 && b != 1) {
                    throw error(at, "boolean " + what + " is " + b + " (must be 0 or 1)");
                }
                yield b == 1;
            }
            case STRING -> readString(what);
            case ARRAY -> throw new IllegalStateException("arrays are read by readArray");
        };
    }

    private GgufArray readArray(String key, int depth) {
        if (depth >= MAX_NESTING) {
            throw error(pos, "metadata '" + key + "' nests arrays deeper than " + MAX_NESTING);
        }
        GgufValueType elementType = readType("element type of array '" + key + "'");
        long countPos = pos;
        long count = readU64("length of array '" + key + "'");
        // Strings and arrays take at least 8 bytes each, scalars their size.
        int minElementBytes = elementType.size > 0 ? elementType.size : (elementType == GgufValueType.ARRAY ? 12 : 8);
        checkCount(countPos, count, minElementBytes, "length of array '" + key + "'");
        int n = (int) count;
        String element = "an element of '" + key + "'"; // the offset in the error pins down which
        Object values = switch (elementType) {
            case UINT8, INT8, UINT16, INT16, UINT32, INT32, UINT64, INT64 -> {
                long[] a = new long[n];
                for (int i = 0; i < n; i++) {
                    a[i] = (Long) readScalar(elementType, element);
                }
                yield a;
            }
            case FLOAT32 -> {
                float[] a = new float[n];
                MemorySegment bytes = readBytes(4L * n, "values of '" + key + "'");
                for (int i = 0; i < n; i++) {
                    a[i] = bytes.getAtIndex(F32, i);
                }
                yield a;
            }
            case FLOAT64 -> {
                double[] a = new double[n];
                MemorySegment bytes = readBytes(8L * n, "values of '" + key + "'");
                for (int i = 0; i < n; i++) {
                    a[i] = bytes.getAtIndex(F64, i);
                }
                yield a;
            }
            case BOOL -> {
                boolean[] a = new boolean[n];
                for (int i = 0; i < n; i++) {
                    a[i] = (Boolean) readScalar(elementType, element);
                }
                yield a;
            }
            case STRING -> {
                String[] a = new String[n];
                for (int i = 0; i < n; i++) {
                    a[i] = readString(element);
                }
                yield a;
            }
            case ARRAY -> {
                GgufArray[] a = new GgufArray[n];
                for (int i = 0; i < n; i++) {
                    a[i] = readArray(key + "[" + i + "]", depth + 1);
                }
                yield a;
            }
        };
        return new GgufArray(elementType, values);
    }

    private GgufValueType readType(String what) {
        long at = pos;
        int id = readU32("type of " + what);
        GgufValueType type = GgufValueType.fromId(id);
        if (type == null) {
            throw error(at, "unknown value type " + Integer.toUnsignedString(id) + " for " + what);
        }
        return type;
    }

    private String readString(String what) {
        long at = pos;
        if (size - pos < 8) {
            throw error(pos, "file is truncated: the length of " + what + " needs 8 bytes but only " + (size - pos) + " remain");
        }
        long length = file.get(U64, pos);
        pos += 8;
        if (length < 0 || length > size - pos) {
            throw error(at, "the length of " + what + " is " + Long.toUnsignedString(length)
                    + ", which cannot fit in the " + (size - pos) + " bytes left in the file");
        }
        MemorySegment bytes = readBytes(length, what);
        try {
            return utf8.decode(bytes.asByteBuffer()).toString();
        } catch (CharacterCodingException e) {
            // Some real vocabularies hold invalid UTF-8 pieces; keep them readable rather than fail.
            return new String(bytes.toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
        }
    }

    /** Rejects a count that cannot fit in the rest of the file, before anything is allocated for it. */
    private void checkCount(long at, long count, int minBytesEach, String what) {
        long remaining = size - pos;
        if (count < 0 || count > Integer.MAX_VALUE - 8 || count > remaining / minBytesEach) {
            throw error(at, what + " is " + Long.toUnsignedString(count) + ", which cannot fit in the "
                    + remaining + " bytes left in the file");
        }
    }

    private int readU32(String what) {
        return readBytes(4, what).get(U32, 0);
    }

    private long readU64(String what) {
        return readBytes(8, what).get(U64, 0);
    }

    private MemorySegment readBytes(long n, String what) {
        if (n > size - pos) {
            throw error(pos, "file is truncated: " + what + " needs " + n + " bytes but only " + (size - pos) + " remain");
        }
        MemorySegment s = file.asSlice(pos, n);
        pos += n;
        return s;
    }

    private static long alignUp(long x, long alignment) {
        return (x + alignment - 1) / alignment * alignment;
    }

    private ModelFormatException error(long offset, String reason) {
        return new ModelFormatException(path, offset, reason);
    }
}
