package dev.peregrine.format.gguf;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.peregrine.ModelFormatException;
import dev.peregrine.tensor.DType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Each file here is built byte by byte ({@link GgufBytes}) and broken in one way; the reader must
 * refuse it with a {@link ModelFormatException} naming the reason and, where there is one, the
 * offset of the offending field. Offsets follow from the layout: the header is 24 bytes (magic,
 * version, two u64 counts) and a string is a u64 length followed by its bytes.
 */
class GgufMalformedFileTest {
    private static final int UINT8 = 0;
    private static final int UINT32 = 4;
    private static final int FLOAT32 = 6;
    private static final int BOOL = 7;
    private static final int STRING = 8;
    private static final int ARRAY = 9;
    private static final int F32 = 0;

    @TempDir
    Path dir;

    @Test
    void aWellFormedHandBuiltFileParses() {
        GgufFile f = GgufBytes.header(3, 1, 1)
                .key("general.alignment", UINT32).u32(32)
                .tensor("t", F32, 0, 2, 2)
                .pad(32).f32(1).f32(2).f32(3).f32(4)
                .parse();
        assertThat(f.metadata().getLong("general.alignment")).isEqualTo(32);
        assertThat(f.tensorInfos()).singleElement().satisfies(t -> {
            assertThat(t.shape()).containsExactly(2, 2);
            assertThat(t.byteSize()).isEqualTo(16);
        });
    }

    /** A named pipe would block the open until something writes to it: refused before opening. */
    @Test
    void aPipeIsRefusedWithoutWaitingForAWriter() throws Exception {
        Path fifo = dir.resolve("model.gguf");
        Process mkfifo;
        try {
            mkfifo = new ProcessBuilder("mkfifo", fifo.toString()).start();
        } catch (IOException e) {
            org.junit.jupiter.api.Assumptions.abort("no mkfifo here: " + e.getMessage());
            return;
        }
        org.junit.jupiter.api.Assumptions.assumeTrue(mkfifo.waitFor() == 0, "mkfifo failed");
        try (Arena arena = Arena.ofConfined()) {
            Throwable t = catchThrowable(() -> GgufFile.open(fifo, arena));
            assertThat(t).isInstanceOf(ModelFormatException.class).hasMessageContaining("is not a regular file");
        }
    }

    @Test
    void wrongMagic() {
        GgufBytes b = new GgufBytes().raw("GGML".getBytes()).u32(3).u64(0).u64(0);
        assertRejected(b, 0, "not a GGUF file");
        // The formats models came in before GGUF are named, with the converter that reads them.
        assertRejected(new GgufBytes().u32(0x67676a74).u32(3).u64(0).u64(0), 0, "a legacy GGML file (ggjt/ggmf/ggml");
        assertRejected(new GgufBytes().u32(0x616b3432).u32(1).u64(0).u64(0), 0, "a llama2.c checkpoint");
    }

    @Test
    void version1IsNotSupported() {
        assertRejected(GgufBytes.header(1, 0, 0), 4, "version 1 is not supported");
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 4, 0x03000000})
    void unknownVersions(int version) {
        assertRejected(GgufBytes.header(version, 0, 0), 4, "unsupported GGUF version " + version);
    }

    @Test
    void truncatedHeader() {
        GgufBytes b = new GgufBytes().raw("GGUF".getBytes()).u32(3).u32(0); // half of the tensor count
        assertRejected(b, 8, "truncated");
    }

    @Test
    void truncatedValue() {
        GgufBytes b = GgufBytes.header(3, 0, 1).key("k", UINT32).u8(1).u8(2); // a u32 needs 4 bytes
        assertRejected(b, 37, "truncated");
    }

    @Test
    void stringLongerThanTheFile() {
        GgufBytes b = GgufBytes.header(3, 0, 1).u64(1000).raw("key".getBytes()).zeros(20);
        assertRejected(b, 24, "is 1000, which cannot fit");
    }

    @Test
    void stringLengthWithTheTopBitSet() {
        GgufBytes b = GgufBytes.header(3, 0, 1).key("k", STRING).u64(-8).zeros(20);
        assertRejected(b, 37, "18446744073709551608");
    }

    /** A huge count must be refused before anything is allocated for it, whatever the element type. */
    @ParameterizedTest
    @EnumSource(GgufValueType.class)
    void arrayCountLargerThanTheFile(GgufValueType elementType) {
        GgufBytes b = GgufBytes.header(3, 0, 1).key("a", ARRAY).u32(elementType.id()).u64(1L << 40).zeros(64);
        assertRejected(b, 41, "length of array 'a' is 1099511627776");
    }

    @Test
    void tensorAndMetadataCountsLargerThanTheFile() {
        assertRejected(GgufBytes.header(3, 1L << 40, 0).zeros(100), 8, "tensor count is 1099511627776");
        assertRejected(GgufBytes.header(3, 0, -1).zeros(100), 16, "metadata count is 18446744073709551615");
    }

    @Test
    void unknownMetadataValueType() {
        assertRejected(GgufBytes.header(3, 0, 1).key("k", 13).zeros(8), 33, "unknown value type 13");
        assertRejected(GgufBytes.header(3, 0, 1).key("a", ARRAY).u32(-1).zeros(8), 37, "unknown value type 4294967295");
    }

    @Test
    void arraysNestedTooDeep() {
        GgufBytes b = GgufBytes.header(3, 0, 1).key("a", ARRAY);
        for (int depth = 0; depth < GgufParser.MAX_NESTING; depth++) {
            b.u32(ARRAY).u64(1); // each level: element type ARRAY, one element
        }
        int ninth = b.size();
        b.u32(UINT8).u64(0).zeros(16);
        assertRejected(b, ninth, "nests arrays deeper than " + GgufParser.MAX_NESTING);
    }

    @Test
    void booleanOtherThanZeroOrOne() {
        assertRejected(GgufBytes.header(3, 0, 1).key("b", BOOL).u8(2), 37, "must be 0 or 1");
        // In an array: type, count, then elements 1, 0, 5: the third is at 37 + 4 + 8 + 2.
        GgufBytes array = GgufBytes.header(3, 0, 1).key("a", ARRAY).u32(BOOL).u64(3).u8(1).u8(0).u8(5);
        assertRejected(array, 51, "must be 0 or 1");
    }

    @Test
    void duplicateMetadataKeys() {
        GgufBytes b = GgufBytes.header(3, 0, 2).key("k", UINT8).u8(1).key("k", UINT8).u8(2);
        assertRejected(b, 38, "duplicate metadata key 'k'");
    }

    @ParameterizedTest
    @ValueSource(longs = {0, 3, 48, 1L << 31, -32})
    void alignmentThatIsNotAPowerOfTwo(long alignment) {
        GgufBytes b = GgufBytes.header(3, 0, 1).key("general.alignment", 10).u64(alignment); // UINT64
        assertRejected(b, 24, "general.alignment must be a positive power of two");
    }

    @Test
    void alignmentThatIsNotAnInteger() {
        assertRejected(GgufBytes.header(3, 0, 1).key("general.alignment", FLOAT32).f32(32), 24, "general.alignment");
        assertRejected(GgufBytes.header(3, 0, 1).key("general.alignment", STRING).str("32"), 24, "general.alignment");
    }

    // Tensor infos start at 24 when there is no metadata: name (8 + 1 bytes for "t") ends at 33,
    // the dimension count at 37, then 8 bytes per dimension, the type and the offset.

    @Test
    void unsupportedTensorTypes() {
        assertRejected(oneTensor(16, 0, 256), 45, "is stored as IQ2_XXS, which Peregrine cannot read");
        assertRejected(oneTensor(99, 0, 256), 45, "is stored as type 99,");
    }

    @Test
    void zeroOrTooManyDimensions() {
        assertRejected(oneTensor(F32, 0), 33, "has 0 dimensions");
        assertRejected(oneTensor(F32, 0, 1, 1, 1, 1, 1), 33, "has 5 dimensions");
    }

    @Test
    void zeroOrNegativeDimension() {
        assertRejected(oneTensor(F32, 0, 4, 0), 45, "dimension 1 is 0");
        assertRejected(oneTensor(F32, 0, -1), 37, "dimension 0 is 18446744073709551615");
    }

    @Test
    void dimensionProductOverflow() {
        assertRejected(oneTensor(F32, 0, 1L << 32, 1L << 32), 45, "overflows");
        assertRejected(oneTensor(F32, 0, 1L << 20, 1L << 20, 1L << 20), 53, "overflows");
    }

    @Test
    void elementsThatAreNotWholeBlocks() {
        assertRejected(oneTensor(DType.Q8_0.ggmlId(), 0, 31), 33, "not a whole number of Q8_0 blocks");
        assertRejected(oneTensor(DType.Q4_0.ggmlId(), 0, 16, 3), 33, "not a whole number of Q4_0 blocks");
    }

    /** K-quant rows must be whole blocks, even where the element count is (ggml never wrote otherwise). */
    @Test
    void kQuantRowsThatAreNotWholeBlocks() {
        assertRejected(oneTensor(DType.Q4_K.ggmlId(), 0, 128, 2), 33, "has rows of 128 values, not a whole number of Q4_K blocks of 256");
        assertRejected(oneTensor(DType.Q6_K.ggmlId(), 0, 64, 4), 33, "has rows of 64 values, not a whole number of Q6_K blocks of 256");
        assertRejected(oneTensor(DType.Q6_K.ggmlId(), 0, 100), 33, "has 100 elements, not a whole number of Q6_K blocks");
    }

    @Test
    void tensorDataOutsideTheFile() {
        // The data section of oneTensor holds 64 bytes: [32, 64) fits, [64, 96) does not.
        assertThat(oneTensor(F32, 32, 8).parse().tensor("t").data().byteSize()).isEqualTo(32);
        assertRejected(oneTensor(F32, 64, 8), 24, "lies outside the data section");
        assertRejected(oneTensor(F32, 0, 17), 24, "lies outside the data section");
        assertRejected(oneTensor(F32, -32, 8), 24, "lies outside the data section");
        // Offset + size overflows a long: must not wrap around into range.
        assertRejected(oneTensor(F32, Long.MAX_VALUE - 31, 8), 24, "lies outside the data section");
    }

    @Test
    void misalignedTensorData() {
        assertRejected(oneTensor(F32, 16, 4), 24, "not a multiple of the alignment 32");
    }

    @Test
    void duplicateTensorNames() {
        GgufBytes b = GgufBytes.header(3, 2, 0).tensor("t", F32, 0, 8);
        int second = b.size();
        b.tensor("t", F32, 32, 8).pad(32).zeros(64);
        assertRejected(b, second, "duplicate tensor name 't'");
    }

    @Test
    void fileEndsBeforeTheDataSection() {
        GgufBytes b = GgufBytes.header(3, 1, 0).tensor("t", F32, 0, 1); // 57 bytes, data would start at 64
        assertRejected(b, 57, "file ends before the tensor data section");
    }

    @Test
    void missingEmptyAndDirectoryFiles() throws IOException {
        Path empty = Files.createFile(dir.resolve("empty.gguf"));
        try (Arena arena = Arena.ofConfined()) {
            assertThat(catchThrowable(() -> GgufFile.open(dir.resolve("absent.gguf"), arena)))
                    .isExactlyInstanceOf(ModelFormatException.class).hasMessageContaining("not found");
            assertThat(catchThrowable(() -> GgufFile.open(empty, arena)))
                    .isExactlyInstanceOf(ModelFormatException.class).hasMessageContaining("truncated");
            assertThat(catchThrowable(() -> GgufFile.open(dir, arena)))
                    .isExactlyInstanceOf(ModelFormatException.class);
        }
    }

    /** One tensor "t" and nothing else, then a 64-byte data section. */
    private static GgufBytes oneTensor(int typeId, long offset, long... shape) {
        return GgufBytes.header(3, 1, 0).tensor("t", typeId, offset, shape).pad(32).zeros(64);
    }

    private static void assertRejected(GgufBytes file, long offset, String reason) {
        Throwable t = catchThrowable(file::parse);
        assertThat(t).isExactlyInstanceOf(ModelFormatException.class).hasMessageContaining(reason);
        assertThat(((ModelFormatException) t).offset()).as("reported offset of: " + t.getMessage()).isEqualTo(offset);
    }
}
