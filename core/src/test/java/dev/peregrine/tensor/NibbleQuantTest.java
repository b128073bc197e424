package dev.peregrine.tensor;

import static dev.peregrine.tensor.QuantTesting.quantize;
import static dev.peregrine.tensor.QuantTesting.decode;
import static dev.peregrine.tensor.QuantTesting.gaussian;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Q4_1, Q5_0 and Q5_1, the 32-value types llama.cpp's K-quant mixes fall back to for rows that are
 * not whole 256-value super-blocks: {@link Dequant} against blocks built byte by byte from ggml's
 * layouts (block_q4_1 / block_q5_0 / block_q5_1 in ggml-common.h, dequantize_row_* in
 * ggml-quants.c), and {@link Quantize} against blocks worked out by hand from quantize_row_*_ref.
 * fp16 constants: 1.0 = 0x3C00, -1.0 = 0xBC00, 0.5 = 0x3800, 0.25 = 0x3400; stored little-endian.
 */
class NibbleQuantTest {

    /** d = 0.5, qh = 0x80000001, qs[0] = 0x21, qs[15] = 0xF0: value = d * (q - 16), q = nibble | qh bit << 4. */
    @Test
    void q5_0BlockDecodesAsGgmlDefinesIt() {
        byte[] block = new byte[22];
        block[1] = 0x38;
        block[2] = 0x01;              // qh bit 0
        block[5] = (byte) 0x80;       // qh bit 31
        block[6] = 0x21;              // qs[0]: value 0 low nibble 1, value 16 high nibble 2
        block[6 + 15] = (byte) 0xF0;  // qs[15]: value 15 low nibble 0, value 31 high nibble 15
        float[] y = decode(DType.Q5_0, block);
        assertThat(y[0]).isEqualTo(0.5f);    // q = 1 | 16 = 17
        assertThat(y[16]).isEqualTo(-7f);    // q = 2
        assertThat(y[15]).isEqualTo(-8f);    // q = 0
        assertThat(y[31]).isEqualTo(7.5f);   // q = 15 | 16 = 31
        assertThat(y[1]).isEqualTo(-8f);     // everything else q = 0
    }

    /** d = 0.5, m = -1, qs[0] = 0x21: value = q * d + m. */
    @Test
    void q4_1BlockDecodesAsGgmlDefinesIt() {
        byte[] block = new byte[20];
        block[1] = 0x38;
        block[3] = (byte) 0xBC;
        block[4] = 0x21;
        block[4 + 3] = (byte) 0xFF;
        float[] y = decode(DType.Q4_1, block);
        assertThat(y[0]).isEqualTo(-0.5f);   // q = 1
        assertThat(y[16]).isEqualTo(0f);     // q = 2
        assertThat(y[3]).isEqualTo(6.5f);    // q = 15
        assertThat(y[19]).isEqualTo(6.5f);
        assertThat(y[1]).isEqualTo(-1f);     // q = 0
    }

    /** d = 0.25, m = 0.5, qh bit 16, qs[0] = 0x3F: value = q * d + m with Q5_0's 5-bit q. */
    @Test
    void q5_1BlockDecodesAsGgmlDefinesIt() {
        byte[] block = new byte[24];
        block[1] = 0x34;
        block[3] = 0x38;
        block[4 + 2] = 0x01;   // qh bit 16
        block[8] = 0x3F;
        float[] y = decode(DType.Q5_1, block);
        assertThat(y[0]).isEqualTo(4.25f);   // q = 15
        assertThat(y[16]).isEqualTo(5.25f);  // q = 3 | 16 = 19
        assertThat(y[1]).isEqualTo(0.5f);    // q = 0
    }

    @Test
    void q5_0MatchesGgmlsQuantiser() {
        // max = 16 -> d = -1 (0xBC00), id = -1; q = min(31, (int) (-x + 16.5)).
        float[] x = new float[32];
        x[0] = 16;    // 0.5 -> 0
        x[1] = -15;   // 31.5 -> 31
        x[2] = 3;     // 13.5 -> 13
        x[16] = -16;  // 32.5 -> 32 -> 31
        // zeros: 16.5 -> 16 (nibble 0, fifth bit set). qh: every bit but 0 and 2.
        byte[] expected = new byte[22];
        expected[1] = (byte) 0xBC;
        expected[2] = (byte) 0xFA;
        expected[3] = (byte) 0xFF;
        expected[4] = (byte) 0xFF;
        expected[5] = (byte) 0xFF;
        expected[6] = (byte) 0xF0;   // q0 = 0, q16 = 31
        expected[7] = 0x0F;          // q1 = 31, q17 = 16
        expected[8] = 0x0D;          // q2 = 13, q18 = 16
        assertThat(quantize(DType.Q5_0, x)).isEqualTo(expected);
    }

    @Test
    void q4_1MatchesGgmlsQuantiser() {
        // min = -1, max = 14 -> d = 1 (0x3C00), m = -1 (0xBC00); q = min(15, (int) ((x + 1) + 0.5)).
        float[] x = new float[32];
        x[0] = -1;      // 0.5 -> 0
        x[1] = 14;      // 15.5 -> 15
        x[2] = 2.4f;    // 3.9 -> 3
        x[16] = 2.5f;   // 4.0 -> 4
        // zeros: 1.5 -> 1.
        byte[] expected = new byte[20];
        expected[1] = 0x3C;
        expected[3] = (byte) 0xBC;
        for (int j = 0; j < 16; j++) {
            expected[4 + j] = 0x11;
        }
        expected[4] = 0x40;
        expected[5] = 0x1F;
        expected[6] = 0x13;
        assertThat(quantize(DType.Q4_1, x)).isEqualTo(expected);
    }

    @Test
    void q5_1MatchesGgmlsQuantiser() {
        // min = 0, max = 31 -> d = 1 (0x3C00), m = 0; q = (int) (x + 0.5).
        float[] x = new float[32];
        x[0] = 31;       // 31
        x[1] = 16.49f;   // 16
        x[16] = 17.5f;   // 18
        byte[] expected = new byte[24];
        expected[1] = 0x3C;
        expected[4] = 0x03;   // qh bits 0, 1
        expected[6] = 0x01;   // qh bit 16
        expected[8] = 0x2F;   // q0 = 31, q16 = 18
        assertThat(quantize(DType.Q5_1, x)).isEqualTo(expected);
    }

    /**
     * Round-trip error: half a step d/2 (Q5_0: |d| = max|x| / 16, except values of the opposite sign
     * to max beyond 15.5|d|, clamped at q = 31, up to |d| off; Q4_1 / Q5_1: d = (max - min) / L), plus
     * the fp16 rounding of d (times at most 16 or L) and of m.
     */
    @ParameterizedTest
    @CsvSource({"Q5_0, 1", "Q5_0, 0.02", "Q5_0, 300", "Q4_1, 1", "Q4_1, 0.02", "Q4_1, 300", "Q5_1, 1", "Q5_1, 300"})
    void errorIsWithinHalfAStepPlusTheScaleRounding(DType type, float scale) {
        float[] x = gaussian(32 * 200, scale, 7);
        float[] y = decode(type, quantize(type, x));
        for (int b = 0; b < x.length / 32; b++) {
            double min = Double.MAX_VALUE;
            double max = -Double.MAX_VALUE;
            double amax = 0;
            for (int j = 0; j < 32; j++) {
                min = Math.min(min, x[32 * b + j]);
                max = Math.max(max, x[32 * b + j]);
                amax = Math.max(amax, Math.abs(x[32 * b + j]));
            }
            double bound = type == DType.Q5_0
                    ? amax / 16 + 16 * amax / 16 * 0x1p-11
                    : (max - min) / (type == DType.Q4_1 ? 15 : 31) * (0.5 + 31 * 0x1p-11) + Math.abs(min) * 0x1p-11;
            for (int j = 0; j < 32; j++) {
                int i = 32 * b + j;
                assertThat((double) Math.abs(x[i] - y[i])).as("%s value %d", type, i).isLessThanOrEqualTo(bound);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q4_1", "Q5_0", "Q5_1", "Q5_K"})
    void nanAndInfinityAreRejectedAndPartialBlocksToo(DType type) {
        float[] x = new float[2 * type.blockSize()];
        x[type.blockSize() + 8] = Float.NaN;
        assertThatThrownBy(() -> quantize(type, x)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("NaN");
        assertThatThrownBy(() -> Quantize.fromFloat(type, new float[40], 0, 40, MemorySegment.ofArray(new byte[400]), 0))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("40");
    }

    @Test
    void typeIdsAndSizesAreGgmls() {
        assertThat(DType.fromGgmlId(3)).contains(DType.Q4_1);
        assertThat(DType.fromGgmlId(6)).contains(DType.Q5_0);
        assertThat(DType.fromGgmlId(7)).contains(DType.Q5_1);
        assertThat(DType.fromGgmlId(13)).contains(DType.Q5_K);
        assertThat(DType.Q4_1.bytesFor(64)).isEqualTo(40);
        assertThat(DType.Q5_0.bytesFor(64)).isEqualTo(44);
        assertThat(DType.Q5_1.bytesFor(64)).isEqualTo(48);
        assertThat(DType.Q5_0.hasSuperBlocks()).isFalse();
    }
}
