package dev.peregrine.format.gguf;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Dequant;
import dev.peregrine.tensor.Quantize;
import dev.peregrine.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class GgufWriterTest {
    @TempDir
    Path dir;

    @Test
    void writesTheLayoutTheSpecDescribes() throws IOException {
        Path file = dir.resolve("tiny.gguf");
        try (GgufWriter w = GgufWriter.create(file)) {
            w.putUInt8("k", 7);
            w.addTensor("t", DType.F32, 2);
            w.writeTensorData("t", new byte[] {0, 0, (byte) 0x80, 0x3F, 0, 0, 0, (byte) 0xC0}); // 1.0f, -2.0f
        }
        byte[] expected = GgufBytes.header(3, 1, 1)
                .key("k", 0).u8(7)                      // UINT8 = 0
                .tensor("t", 0, 0, 2)                   // F32 = 0, offset 0, shape [2]
                .zeros(96 - 71)                         // the header ends at 71, data starts at 96
                .raw(new byte[] {0, 0, (byte) 0x80, 0x3F, 0, 0, 0, (byte) 0xC0})
                .zeros(24)                              // pads the 8 data bytes to 32
                .bytes();
        assertThat(expected).hasSize(128);
        assertThat(Files.readAllBytes(file)).isEqualTo(expected);
    }

    @Test
    void roundTripsEveryMetadataType() {
        GgufArray nested = new GgufArray(GgufValueType.ARRAY, new GgufArray[] {
                new GgufArray(GgufValueType.STRING, new String[] {"a", "", "ü"}),
                new GgufArray(GgufValueType.INT16, new long[] {-1, 2}),
                new GgufArray(GgufValueType.BOOL, new boolean[0]),
                new GgufArray(GgufValueType.ARRAY, new GgufArray[] {new GgufArray(GgufValueType.FLOAT64, new double[] {0.25})}),
        });
        Path file = dir.resolve("meta.gguf");
        try (GgufWriter w = GgufWriter.create(file)) {
            w.putUInt8("u8", 255).putInt8("i8", -128).putUInt16("u16", 65535).putInt16("i16", -32768)
                    .putUInt32("u32", 4294967295L).putInt32("i32", Integer.MIN_VALUE)
                    .putUInt64("u64", -1L) // 2^64 - 1
                    .putUInt64("u64.big", Long.MIN_VALUE + 5) // 2^63 + 5
                    .putInt64("i64", Long.MIN_VALUE)
                    .putFloat32("f32.nan", Float.NaN).putFloat32("f32.neg", -1.5f).putFloat32("f32.negzero", -0.0f)
                    .putFloat64("f64.nan", Double.NaN).putFloat64("f64.neg", -Double.MAX_VALUE)
                    .putBool("bool.t", true).putBool("bool.f", false)
                    .putString("str.empty", "").putString("str.unicode", "héllo ▁世界 🦅\n")
                    .putArray("a.u8", GgufValueType.UINT8, new long[] {0, 255})
                    .putArray("a.i8", GgufValueType.INT8, new long[] {-128, 127})
                    .putArray("a.u16", GgufValueType.UINT16, new long[] {65535})
                    .putArray("a.i16", GgufValueType.INT16, new long[] {-32768, 32767})
                    .putArray("a.u32", GgufValueType.UINT32, new long[] {4294967295L, 0})
                    .putArray("a.i32", GgufValueType.INT32, new long[] {Integer.MIN_VALUE, -1})
                    .putArray("a.u64", GgufValueType.UINT64, new long[] {-1L, Long.MIN_VALUE})
                    .putArray("a.i64", GgufValueType.INT64, new long[] {Long.MIN_VALUE, Long.MAX_VALUE})
                    .putArray("a.f32", GgufValueType.FLOAT32, new float[] {Float.NaN, -0.5f, Float.NEGATIVE_INFINITY})
                    .putArray("a.f64", GgufValueType.FLOAT64, new double[] {Double.NaN, -1e300})
                    .putArray("a.bool", GgufValueType.BOOL, new boolean[] {true, false, true})
                    .putArray("a.str", GgufValueType.STRING, new String[] {"", "▁the", "<0x0A>", "日本"})
                    .putArray("a.empty.str", GgufValueType.STRING, new String[0])
                    .putArray("a.empty.u32", GgufValueType.UINT32, new long[0])
                    .putArray("a.empty.f32", GgufValueType.FLOAT32, new float[0])
                    .putArray("a.empty.arr", GgufValueType.ARRAY, new GgufArray[0])
                    .put("a.nested", GgufValueType.ARRAY, nested);
        }

        try (Arena arena = Arena.ofConfined()) {
            GgufFile f = GgufFile.open(file, arena);
            GgufMetadata m = f.metadata();
            assertThat(f.version()).isEqualTo(3);
            assertThat(f.tensorInfos()).isEmpty();
            assertThat(m.asMap().keySet()).startsWith("u8", "i8", "u16", "i16", "u32", "i32", "u64").hasSize(35);

            assertThat(m.getLong("u8")).isEqualTo(255);
            assertThat(m.getLong("i8")).isEqualTo(-128);
            assertThat(m.getLong("u16")).isEqualTo(65535);
            assertThat(m.getLong("i16")).isEqualTo(-32768);
            assertThat(m.getLong("u32")).isEqualTo(4294967295L);
            assertThat(m.getLong("i32")).isEqualTo(Integer.MIN_VALUE);
            assertThat(Long.toUnsignedString(m.getLong("u64"))).isEqualTo("18446744073709551615");
            assertThat(Long.toUnsignedString(m.getLong("u64.big"))).isEqualTo("9223372036854775813");
            assertThat(m.getLong("i64")).isEqualTo(Long.MIN_VALUE);
            assertThat(m.getFloat("f32.nan")).isNaN();
            assertThat(m.getFloat("f32.neg")).isEqualTo(-1.5f);
            assertThat(Float.floatToRawIntBits(m.getFloat("f32.negzero"))).isEqualTo(0x8000_0000);
            assertThat(m.get("f64.nan")).contains(Double.NaN);
            assertThat(m.get("f64.neg")).contains(-Double.MAX_VALUE);
            assertThat(m.optBoolean("bool.t")).contains(true);
            assertThat(m.optBoolean("bool.f")).contains(false);
            assertThat(m.getString("str.empty")).isEmpty();
            assertThat(m.getString("str.unicode")).isEqualTo("héllo ▁世界 🦅\n");

            assertThat((long[]) m.getArray("a.u8").values()).containsExactly(0, 255);
            assertThat((long[]) m.getArray("a.i8").values()).containsExactly(-128, 127);
            assertThat((long[]) m.getArray("a.u16").values()).containsExactly(65535);
            assertThat((long[]) m.getArray("a.i16").values()).containsExactly(-32768, 32767);
            assertThat((long[]) m.getArray("a.u32").values()).containsExactly(4294967295L, 0);
            assertThat((long[]) m.getArray("a.i32").values()).containsExactly(Integer.MIN_VALUE, -1);
            assertThat((long[]) m.getArray("a.u64").values()).containsExactly(-1L, Long.MIN_VALUE);
            assertThat((long[]) m.getArray("a.i64").values()).containsExactly(Long.MIN_VALUE, Long.MAX_VALUE);
            assertThat((float[]) m.getArray("a.f32").values()).containsExactly(Float.NaN, -0.5f, Float.NEGATIVE_INFINITY);
            assertThat((double[]) m.getArray("a.f64").values()).containsExactly(Double.NaN, -1e300);
            assertThat((boolean[]) m.getArray("a.bool").values()).containsExactly(true, false, true);
            assertThat(m.optStringArray("a.str").orElseThrow()).containsExactly("", "▁the", "<0x0A>", "日本");
            assertThat(m.getArray("a.empty.str").length()).isZero();
            assertThat(m.getArray("a.empty.u32").elementType()).isEqualTo(GgufValueType.UINT32);
            assertThat(m.getArray("a.empty.u32").length()).isZero();
            assertThat(m.getArray("a.empty.f32").length()).isZero();
            assertThat(m.getArray("a.empty.arr").length()).isZero();

            GgufArray[] outer = (GgufArray[]) m.getArray("a.nested").values();
            assertThat(outer).hasSize(4);
            assertThat((String[]) outer[0].values()).containsExactly("a", "", "ü");
            assertThat(outer[1].elementType()).isEqualTo(GgufValueType.INT16);
            assertThat((long[]) outer[1].values()).containsExactly(-1, 2);
            assertThat(outer[2].elementType()).isEqualTo(GgufValueType.BOOL);
            assertThat(outer[2].length()).isZero();
            GgufArray innermost = ((GgufArray[]) outer[3].values())[0];
            assertThat((double[]) innermost.values()).containsExactly(0.25);

            // The reader keeps each value's declared width.
            assertThat(m.typeOf("u8")).isEqualTo(GgufValueType.UINT8);
            assertThat(m.typeOf("i16")).isEqualTo(GgufValueType.INT16);
            assertThat(m.typeOf("u64")).isEqualTo(GgufValueType.UINT64);
            assertThat(m.typeOf("f64.nan")).isEqualTo(GgufValueType.FLOAT64);
            assertThat(m.getArray("a.u16").elementType()).isEqualTo(GgufValueType.UINT16);
        }
    }

    @Test
    void roundTripsTensorsOfEveryTypeWithNonDefaultAlignment() {
        // name, type, shape, bytes (hand-computed), offset with 64-byte alignment
        record Spec(String name, DType type, long[] shape, int bytes, long offset) {
        }
        List<Spec> specs = List.of(
                new Spec("f32.a", DType.F32, new long[] {3, 5}, 60, 0),
                new Spec("f32.b", DType.F32, new long[] {1}, 4, 64),
                new Spec("f16.a", DType.F16, new long[] {7}, 14, 128),
                new Spec("f16.b", DType.F16, new long[] {2, 2, 2, 2}, 32, 192),
                new Spec("bf16.a", DType.BF16, new long[] {2, 3}, 12, 256),
                new Spec("bf16.b", DType.BF16, new long[] {40}, 80, 320),       // 80 bytes take two 64-byte slots
                new Spec("q8.a", DType.Q8_0, new long[] {32, 2}, 68, 448),      // 2 blocks of 34
                new Spec("q8.b", DType.Q8_0, new long[] {64, 1, 3}, 204, 576),  // 6 blocks; next free 576 + 256
                new Spec("q4.a", DType.Q4_0, new long[] {64}, 36, 832),        // 2 blocks of 18
                new Spec("q4.b", DType.Q4_0, new long[] {32, 4}, 72, 896),      // 4 blocks; ends at 968
                new Spec("q4k.a", DType.Q4_K, new long[] {256, 2}, 288, 1024),  // 2 blocks of 144
                new Spec("q6k.a", DType.Q6_K, new long[] {512, 1, 2}, 840, 1344)); // 4 blocks of 210; ends at 2184, padded to 2240
        Random random = new Random(7);
        Path file = dir.resolve("tensors.gguf");
        Map<String, byte[]> data = new HashMap<>();
        try (GgufWriter w = GgufWriter.create(file)) {
            w.putUInt32("general.alignment", 64).putString("general.architecture", "test");
            for (Spec s : specs) {
                w.addTensor(s.name(), s.type(), s.shape());
            }
            for (Spec s : specs) {
                byte[] bytes = new byte[s.bytes()];
                random.nextBytes(bytes);
                data.put(s.name(), bytes);
                // In two chunks, to exercise streaming.
                w.writeTensorData(s.name(), Arrays.copyOfRange(bytes, 0, bytes.length / 3));
                w.writeTensorData(s.name(), Arrays.copyOfRange(bytes, bytes.length / 3, bytes.length));
            }
        }

        try (Arena arena = Arena.ofConfined()) {
            GgufFile f = GgufFile.open(file, arena);
            assertThat(f.alignment()).isEqualTo(64);
            assertThat(f.dataOffset() % 64).isZero();
            assertThat(f.fileSize()).isEqualTo(f.dataOffset() + 2240);
            assertThat(f.tensorInfos()).extracting(GgufTensorInfo::name)
                    .containsExactlyElementsOf(specs.stream().map(Spec::name).toList());
            for (Spec s : specs) {
                GgufTensorInfo info = f.tensorInfos().stream().filter(i -> i.name().equals(s.name())).findFirst().orElseThrow();
                assertThat(info.type()).as(s.name()).isEqualTo(s.type());
                assertThat(info.shape()).as(s.name()).containsExactly(s.shape());
                assertThat(info.dataOffset()).as(s.name()).isEqualTo(s.offset());
                assertThat(info.byteSize()).as(s.name()).isEqualTo(s.bytes());
                assertThat(f.tensor(s.name()).data().toArray(ValueLayout.JAVA_BYTE)).as(s.name()).isEqualTo(data.get(s.name()));
            }
        }
    }

    /** Q4_K and Q6_K tensors quantised from known values, written, read back and dequantised. */
    @Test
    void kQuantTensorsReadBackWithTheirValues() {
        Random random = new Random(3);
        Map<String, float[]> values = new HashMap<>();
        Map<String, DType> types = Map.of("blk.0.ffn_up.weight", DType.Q4_K, "output.weight", DType.Q6_K);
        Path file = dir.resolve("k.gguf");
        try (GgufWriter w = GgufWriter.create(file)) {
            w.putString("general.architecture", "test");
            types.forEach((name, type) -> w.addTensor(name, type, 512, 3));
            types.forEach((name, type) -> {
                float[] x = new float[512 * 3];
                for (int i = 0; i < x.length; i++) {
                    x[i] = (float) random.nextGaussian();
                }
                values.put(name, x);
                byte[] bytes = new byte[(int) type.bytesFor(x.length)];
                Quantize.fromFloat(type, x, 0, x.length, MemorySegment.ofArray(bytes), 0);
                w.writeTensorData(name, bytes);
            });
        }
        try (Arena arena = Arena.ofConfined()) {
            GgufFile f = GgufFile.open(file, arena);
            types.forEach((name, type) -> {
                Tensor t = f.tensor(name);
                assertThat(t.type()).isEqualTo(type);
                assertThat(t.shape()).containsExactly(512, 3);
                assertThat(t.rowsAreBlockAligned()).isTrue();
                assertThat(t.rowBytes()).isEqualTo(2L * type.blockBytes());
                assertThat(t.data().byteSize()).isEqualTo(6L * type.blockBytes());
                float[] x = values.get(name);
                float[] y = Dequant.toFloat(t);
                for (int i = 0; i < x.length; i++) {
                    // Far looser than KQuantTest's bounds: this is about finding the right bytes.
                    assertThat(y[i]).as("%s value %d", name, i).isCloseTo(x[i], within(0.5f));
                }
            });
        }
    }

    @Test
    void acceptsChunksFromAnySegment() {
        float[] values = {1.0f, -2.0f, 0.5f};
        Path file = dir.resolve("floats.gguf");
        try (GgufWriter w = GgufWriter.create(file)) {
            w.addTensor("x", DType.F32, 3);
            w.writeTensorData("x", MemorySegment.ofArray(values)); // a heap segment that is not a byte[]
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = GgufFile.open(file, arena).tensor("x").data();
            assertThat(data.toArray(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN)))
                    .containsExactly(1.0f, -2.0f, 0.5f);
        }
    }

    @Test
    void rejectsDuplicateKeysAndTensorNames() {
        try (GgufWriter w = GgufWriter.create(dir.resolve("dup.gguf"))) {
            w.putString("a", "x");
            assertThatThrownBy(() -> w.putUInt32("a", 1)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("'a'");
            w.addTensor("t", DType.F32, 1);
            assertThatThrownBy(() -> w.addTensor("t", DType.F16, 1)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("'t'");
            w.writeTensorData("t", new byte[4]);
        }
    }

    @Test
    void rejectsValuesThatDoNotFitTheirType() {
        try (GgufWriter w = GgufWriter.create(dir.resolve("range.gguf"))) {
            assertThatThrownBy(() -> w.putUInt8("k", 256)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> w.putUInt8("k", -1)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> w.putInt8("k", 128)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> w.putUInt16("k", 65536)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> w.putInt16("k", -32769)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> w.putUInt32("k", 1L << 32)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> w.putArray("k", GgufValueType.INT32, new long[] {0, 1L << 31}))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("INT32");
            assertThatThrownBy(() -> w.putArray("k", GgufValueType.UINT32, new int[] {1}))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("long[]");
            assertThatThrownBy(() -> w.put("k", GgufValueType.FLOAT32, 1.0)).isInstanceOf(IllegalArgumentException.class);
            // A rejected value leaves nothing behind: the key is still free.
            w.putUInt8("k", 1);
        }
    }

    @Test
    void rejectsArraysNestedDeeperThanTheReaderAccepts() {
        GgufArray a = new GgufArray(GgufValueType.UINT8, new long[] {1});
        for (int depth = 1; depth <= GgufParser.MAX_NESTING; depth++) {
            a = new GgufArray(GgufValueType.ARRAY, new GgufArray[] {a});
        }
        GgufArray tooDeep = a;
        try (GgufWriter w = GgufWriter.create(dir.resolve("deep.gguf"))) {
            assertThatThrownBy(() -> w.put("k", GgufValueType.ARRAY, tooDeep)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("nests arrays deeper");
            w.put("k", GgufValueType.ARRAY, ((GgufArray[]) tooDeep.values())[0]);
        }
    }

    @Test
    void requiresAPowerOfTwoUInt32Alignment() {
        try (GgufWriter w = GgufWriter.create(dir.resolve("align.gguf"))) {
            assertThatThrownBy(() -> w.putUInt32("general.alignment", 0)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> w.putUInt32("general.alignment", 48)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> w.putUInt64("general.alignment", 64)).isInstanceOf(IllegalArgumentException.class);
        }
    }

    @Test
    void rejectsTensorShapesWithoutWholeBlocks() {
        try (GgufWriter w = GgufWriter.create(dir.resolve("shape.gguf"))) {
            assertThatThrownBy(() -> w.addTensor("q", DType.Q8_0, 31)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("'q' has 31 elements, not a whole number of Q8_0 blocks");
            // 512 values are two Q4_K blocks, but in rows of 128 they would run across rows.
            assertThatThrownBy(() -> w.addTensor("k", DType.Q4_K, 128, 4)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("'k' has rows of 128 values, not a whole number of Q4_K blocks of 256");
            assertThatThrownBy(() -> w.addTensor("k", DType.Q6_K, 384, 2)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("rows of 384 values");
            assertThatThrownBy(() -> w.addTensor("z", DType.F32, 4, 0)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> w.addTensor("e", DType.F32)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> w.addTensor("d", DType.F32, 1, 1, 1, 1, 1)).isInstanceOf(IllegalArgumentException.class);
        }
    }

    @Test
    void checksDataSizeAndOrder() {
        GgufWriter w = GgufWriter.create(dir.resolve("order.gguf"));
        w.addTensor("a", DType.F16, 4).addTensor("b", DType.Q4_0, 32);
        assertThatThrownBy(() -> w.writeTensorData("b", new byte[18])).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("'a'");
        assertThatThrownBy(() -> w.writeTensorData("c", new byte[1])).isInstanceOf(IllegalArgumentException.class);
        w.writeTensorData("a", new byte[6]);
        assertThatThrownBy(() -> w.writeTensorData("a", new byte[3])).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("8 bytes");
        assertThatThrownBy(() -> w.putString("late", "x")).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> w.addTensor("late", DType.F32, 1)).isInstanceOf(IllegalStateException.class);
        w.writeTensorData("a", new byte[2]);
        assertThatThrownBy(w::close).isInstanceOf(IllegalStateException.class).hasMessageContaining("'b'");
    }

    /**
     * Real files written by other tools: reading one and writing it back gives the same bytes, except
     * the version (the writer always writes v3; v2 files have the same layout).
     */
    @ParameterizedTest
    @ValueSource(strings = {"stories260K.gguf", "tinyllamas-stories-260k-q8_0.gguf"})
    void rewritesRealFilesByteForByte(String name) throws IOException {
        Path original = GgufRealFilesTest.model(name);
        Path copy = dir.resolve("copy.gguf");
        try (Arena arena = Arena.ofConfined()) {
            GgufFile f = GgufFile.open(original, arena);
            try (GgufWriter w = GgufWriter.create(copy)) {
                w.putAll(f.metadata());
                f.tensorInfos().forEach(t -> w.addTensor(t.name(), t.type(), t.shape()));
                f.tensorInfos().forEach(t -> w.writeTensorData(t.name(), f.tensor(t.name()).data()));
            }
        }
        byte[] expected = Files.readAllBytes(original);
        expected[4] = 3; // the low byte of the u32 version
        assertThat(Arrays.mismatch(Files.readAllBytes(copy), expected)).isEqualTo(-1);
    }
}
