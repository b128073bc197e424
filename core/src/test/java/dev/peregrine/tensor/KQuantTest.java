package dev.peregrine.tensor;

import static dev.peregrine.tensor.QuantTesting.quantize;
import static dev.peregrine.tensor.QuantTesting.decode;
import static dev.peregrine.tensor.QuantTesting.roundTrip;
import static dev.peregrine.tensor.QuantTesting.gaussian;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Q4_K, Q5_K and Q6_K: {@link Dequant} against blocks built byte by byte from ggml's layouts
 * (block_q4_K / block_q5_K / block_q6_K in ggml-common.h, dequantize_row_q4_K / _q5_K / _q6_K and
 * get_scale_min_k4 in ggml-quants.c), and {@link Quantize} by the error of its round trip.
 * fp16 constants: 0.5 = 0x3800, 0.25 = 0x3400; stored little-endian.
 */
class KQuantTest {

    /**
     * d = 0.5, dmin = 0.25; sub-block scales sc = {1, 2, 3, 63, 4, 17, 33, 63} and mins
     * m = {0, 5, 63, 1, 2, 16, 40, 63}, packed as get_scale_min_k4 unpacks them:
     * <pre>
     *   bytes 0-3:  sc[0..3] | (sc[4..7] &gt;&gt; 4) &lt;&lt; 6 = 1|0, 2|1&lt;&lt;6, 3|2&lt;&lt;6, 63|3&lt;&lt;6 = 01 42 83 FF
     *   bytes 4-7:  m[0..3]  | (m[4..7] &gt;&gt; 4) &lt;&lt; 6  = 0|0, 5|1&lt;&lt;6, 63|2&lt;&lt;6, 1|3&lt;&lt;6 = 00 45 BF C1
     *   bytes 8-11: (sc[4..7] &amp; 15) | (m[4..7] &amp; 15) &lt;&lt; 4 = 4|2&lt;&lt;4, 1|0, 1|8&lt;&lt;4, 15|15&lt;&lt;4 = 24 01 81 FF
     * </pre>
     * (17 = 0b01_0001, 33 = 0b10_0001, 16 = 0b01_0000, 40 = 0b10_1000.) Quants: byte l of each
     * 32-byte run is (l % 16) | (15 - l % 16) &lt;&lt; 4, so value l of an even sub-block has
     * q = l % 16 and of an odd one q = 15 - l % 16. value = d sc q - dmin m.
     */
    @Test
    void q4_kBlockDecodesAsGgmlDefinesIt() {
        byte[] block = new byte[144];
        block[1] = 0x38;
        block[3] = 0x34;
        int[] packed = {0x01, 0x42, 0x83, 0xFF, 0x00, 0x45, 0xBF, 0xC1, 0x24, 0x01, 0x81, 0xFF};
        for (int i = 0; i < 12; i++) {
            block[4 + i] = (byte) packed[i];
        }
        for (int i = 0; i < 128; i++) {
            int l = i % 32;
            block[16 + i] = (byte) ((l % 16) | (15 - l % 16) << 4);
        }
        float[] y = decode(DType.Q4_K, block);

        assertThat(y[3]).isEqualTo(1.5f);              // sub-block 0: 0.5*1*3 - 0
        assertThat(y[32]).isEqualTo(13.75f);           // sub-block 1, q = 15: 0.5*2*15 - 0.25*5
        assertThat(y[64 + 17]).isEqualTo(-14.25f);     // sub-block 2, q = 1: 0.5*3*1 - 0.25*63
        assertThat(y[96 + 15]).isEqualTo(-0.25f);      // sub-block 3, q = 0: 0 - 0.25*1
        assertThat(y[128 + 20]).isEqualTo(7.5f);       // sub-block 4, q = 4: 0.5*4*4 - 0.25*2
        assertThat(y[160 + 1]).isEqualTo(115f);        // sub-block 5, q = 14: 0.5*17*14 - 0.25*16
        assertThat(y[192 + 5]).isEqualTo(72.5f);       // sub-block 6, q = 5: 0.5*33*5 - 0.25*40
        assertThat(y[224]).isEqualTo(456.75f);         // sub-block 7, q = 15: 0.5*63*15 - 0.25*63
        int[] sc = {1, 2, 3, 63, 4, 17, 33, 63};
        int[] m = {0, 5, 63, 1, 2, 16, 40, 63};
        for (int i = 0; i < 256; i++) {
            int j = i / 32;
            int q = j % 2 == 0 ? i % 16 : 15 - i % 16;
            assertThat(y[i]).as("value %d", i).isEqualTo(0.5f * sc[j] * q - 0.25f * m[j]);
        }
    }

    /**
     * Q5_K: the Q4_K block above (d, dmin, the same 12 scale bytes and 128 nibble bytes, now at
     * offset 48) with 32 bytes qh at offset 16, qh[l] = 37 l mod 256; the value at position l of
     * sub-block j gains 16 where bit j of qh[l] is set (dequantize_row_q5_K: u1 = 1 &lt;&lt; 2r for
     * the low nibbles of run r, u2 = 2 &lt;&lt; 2r for the high ones).
     */
    @Test
    void q5_kBlockDecodesAsGgmlDefinesIt() {
        byte[] block = new byte[176];
        block[1] = 0x38;
        block[3] = 0x34;
        int[] packed = {0x01, 0x42, 0x83, 0xFF, 0x00, 0x45, 0xBF, 0xC1, 0x24, 0x01, 0x81, 0xFF};
        for (int i = 0; i < 12; i++) {
            block[4 + i] = (byte) packed[i];
        }
        for (int l = 0; l < 32; l++) {
            block[16 + l] = (byte) (37 * l);
        }
        for (int i = 0; i < 128; i++) {
            int l = i % 32;
            block[48 + i] = (byte) ((l % 16) | (15 - l % 16) << 4);
        }
        float[] y = decode(DType.Q5_K, block);

        // qh[3] = 111 = 0b0110_1111: sub-blocks 0-3, 5, 6 get 16 at position 3.
        assertThat(y[3]).isEqualTo(9.5f);              // sub-block 0, q = 3 + 16: 0.5*1*19 - 0
        assertThat(y[128 + 3]).isEqualTo(5.5f);        // sub-block 4, q = 3 (bit 4 clear): 0.5*4*3 - 0.25*2
        assertThat(y[160 + 3]).isEqualTo(234f);        // sub-block 5, q = 12 + 16: 0.5*17*28 - 0.25*16
        // qh[1] = 37 = 0b0010_0101: sub-block 7 at position 1 (bit 7 clear), q = 14: 0.5*63*14 - 0.25*63.
        assertThat(y[224 + 1]).isEqualTo(425.25f);
        int[] sc = {1, 2, 3, 63, 4, 17, 33, 63};
        int[] m = {0, 5, 63, 1, 2, 16, 40, 63};
        for (int i = 0; i < 256; i++) {
            int j = i / 32;
            int l = i % 32;
            int q = (j % 2 == 0 ? l % 16 : 15 - l % 16) + ((37 * l & 0xFF) >>> j & 1) * 16;
            assertThat(y[i]).as("value %d", i).isEqualTo(0.5f * sc[j] * q - 0.25f * m[j]);
        }
    }

    /**
     * d = 0.5 at bytes 208-209; int8 scales sc (bytes 192-207) below; all quant bits zero (q = 0,
     * value d sc (0 - 32) = -16 sc) except:
     * <ul>
     *   <li>ql[0] = 0x21, qh[0] = 0xE4 = 0b11_10_01_00: the first half's runs k = 0..3 at l = 0,
     *       values 0, 32, 64, 96, take low bits from ql[0] low, ql[32] low, ql[0] high, ql[32]
     *       high = 1, 0, 2, 0 and high bits from qh[0] bits 2k = 0, 1, 2, 3: q = 1, 16, 34, 48.</li>
     *   <li>ql[64 + 33] = 0xF7, qh[32 + 1] = 0x48 = 0b01_00_10_00: second half, l = 1; values 161
     *       (k = 1: ql[97] low = 7, qh bits 2-3 = 2, q = 39) and 225 (k = 3: ql[97] high = 15,
     *       qh bits 6-7 = 1, q = 31).</li>
     * </ul>
     */
    @Test
    void q6_kBlockDecodesAsGgmlDefinesIt() {
        int[] sc = {1, -1, 2, -3, 4, 5, -6, 7, 10, -10, 20, -20, 100, -128, 127, 3};
        byte[] block = new byte[210];
        for (int j = 0; j < 16; j++) {
            block[192 + j] = (byte) sc[j];
        }
        block[209] = 0x38;
        block[0] = 0x21;
        block[128] = (byte) 0xE4;
        block[64 + 33] = (byte) 0xF7;
        block[128 + 32 + 1] = 0x48;
        float[] y = decode(DType.Q6_K, block);

        float[] expected = new float[256];
        for (int i = 0; i < 256; i++) {
            expected[i] = -16f * sc[i / 16];
        }
        expected[0] = -15.5f;   // q = 1:  0.5 * sc[0] * (1 - 32) = 0.5 * 1 * -31
        expected[32] = -16f;    // q = 16: 0.5 * sc[2] * -16 = 0.5 * 2 * -16
        expected[64] = 4f;      // q = 34: 0.5 * sc[4] * 2 = 0.5 * 4 * 2
        expected[96] = -48f;    // q = 48: 0.5 * sc[6] * 16 = 0.5 * -6 * 16
        expected[161] = 70f;    // q = 39: 0.5 * sc[10] * 7 = 0.5 * 20 * 7
        expected[225] = -63.5f; // q = 31: 0.5 * sc[14] * -1 = 0.5 * 127 * -1
        assertThat(y[16]).isEqualTo(16f);      // q = 0: 0.5 * -1 * -32
        assertThat(y[208]).isEqualTo(2048f);   // q = 0: 0.5 * -128 * -32
        assertThat(y).containsExactly(expected);
    }

    /** Reading from inside a block (first and count anywhere) gives the same values as decoding whole blocks. */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS"})
    void partialRangesMatchWholeBlocks(DType type) {
        float[] x = gaussian(3 * 256, 1, 5);
        MemorySegment q = MemorySegment.ofArray(quantize(type, x));
        float[] all = new float[x.length];
        Dequant.toFloat(type, q, 0, all, 0, all.length);
        for (int[] range : new int[][] {{100, 300}, {255, 2}, {0, 1}, {256, 256}, {511, 257}, {700, 68}}) {
            int first = range[0];
            int count = range[1];
            float[] part = new float[count + 3];
            Dequant.toFloat(type, q, first, part, 3, count);
            assertThat(Arrays.copyOfRange(part, 3, 3 + count)).as("%s from %d, %d values", type, first, count)
                    .containsExactly(Arrays.copyOfRange(all, first, first + count));
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q4_1", "Q5_1", "Q4_K", "Q5_K", "Q6_K"})
    void zerosEncodeAndDecodeToZeros(DType type) {
        float[] y = roundTrip(type, new float[512]);
        assertThat(y).containsOnly(0f);
    }

    /**
     * Q4_K and Q5_K error bound (levels L = 15 or 31). Sub-block j spans [lo, hi] (lo = min(0, min
     * x)), scale s = (hi - lo) / L, min m = -lo; with D = max s / 63 and M = max m / 63, the stored
     * 6-bit scale and min are each within D/2 and M/2 of s and m. Inside the covered range a value
     * is off by at most half a step (s/2 + D/4); beyond it the clamped end is at most L D/2 + M/2
     * away. fp16 rounding of D and M moves these by a factor 1 + 2^-11, well inside the bound s/2
     * + (L + 1) D / 2 + M.
     */
    @ParameterizedTest
    @CsvSource({"Q4_K, 1", "Q4_K, 0.02", "Q4_K, 300", "Q5_K, 1", "Q5_K, 0.02", "Q5_K, 300"})
    void q4_kAndQ5_kErrorIsWithinHalfAStepPlusTheScaleRounding(DType type, float scale) {
        int levels = type == DType.Q4_K ? 15 : 31;
        float[] x = gaussian(256 * 100, scale, 3);
        float[] y = roundTrip(type, x);
        for (int b = 0; b < x.length / 256; b++) {
            double[] s = new double[8];
            double maxS = 0;
            double maxM = 0;
            for (int j = 0; j < 8; j++) {
                double lo = 0;
                double hi = Double.NEGATIVE_INFINITY;
                for (int l = 0; l < 32; l++) {
                    lo = Math.min(lo, x[b * 256 + 32 * j + l]);
                    hi = Math.max(hi, x[b * 256 + 32 * j + l]);
                }
                s[j] = (hi - lo) / levels;
                maxS = Math.max(maxS, s[j]);
                maxM = Math.max(maxM, -lo);
            }
            for (int i = 0; i < 256; i++) {
                int at = b * 256 + i;
                double bound = s[i / 32] / 2 + (levels + 1) / 2.0 * maxS / 63 + maxM / 63;
                assertThat((double) Math.abs(x[at] - y[at])).as("value %d", at).isLessThanOrEqualTo(bound);
            }
        }
        assertThat(relativeRms(x, y)).as("relative RMS error").isLessThan(type == DType.Q4_K ? 0.1 : 0.05);
    }

    /**
     * Q6_K error bound. Sub-block j (16 values) has scale s = max|x| / 31; with D = max s / 127
     * the stored int8 scale is within D/2 of s. Within range a value is off by at most half a step
     * (s/2 + D/4); a value clamped at q - 32 = 31 is at most 31 D/2 away. With fp16 rounding of D,
     * within s/2 + 16 D.
     */
    @ParameterizedTest
    @ValueSource(floats = {1f, 0.02f, 300f})
    void q6_kErrorIsWithinHalfAStepPlusTheScaleRounding(float scale) {
        float[] x = gaussian(256 * 100, scale, 4);
        float[] y = roundTrip(DType.Q6_K, x);
        for (int b = 0; b < x.length / 256; b++) {
            double[] s = new double[16];
            double maxS = 0;
            for (int j = 0; j < 16; j++) {
                for (int l = 0; l < 16; l++) {
                    s[j] = Math.max(s[j], Math.abs(x[b * 256 + 16 * j + l]) / 31.0);
                }
                maxS = Math.max(maxS, s[j]);
            }
            for (int i = 0; i < 256; i++) {
                int at = b * 256 + i;
                double bound = s[i / 16] / 2 + 16 * maxS / 127;
                assertThat((double) Math.abs(x[at] - y[at])).as("value %d", at).isLessThanOrEqualTo(bound);
            }
        }
        assertThat(relativeRms(x, y)).as("relative RMS error").isLessThan(0.025);
    }

    @ParameterizedTest
    @CsvSource({"Q4_K, 144, 12", "Q5_K, 176, 13", "Q6_K, 210, 14"})
    void sizesAreWholeSuperBlocks(DType type, int blockBytes, int ggmlId) {
        assertThat(type.blockSize()).isEqualTo(256);
        assertThat(type.bytesFor(512)).isEqualTo(2L * blockBytes);
        assertThat(type.hasSuperBlocks()).isTrue();
        assertThatThrownBy(() -> type.bytesFor(320)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("320");
        assertThat(DType.fromGgmlId(ggmlId)).contains(type);
    }



    private static double relativeRms(float[] x, float[] y) {
        double err = 0;
        double sum = 0;
        for (int i = 0; i < x.length; i++) {
            err += (double) (x[i] - y[i]) * (x[i] - y[i]);
            sum += (double) x[i] * x[i];
        }
        double rms = Math.sqrt(err / sum);
        System.out.printf("[KQuantTest] relative RMS error %.4f%n", rms);
        return rms;
    }
}
