package dev.peregrine.tensor;

import static dev.peregrine.tensor.QuantTesting.gaussian;
import static dev.peregrine.tensor.QuantTesting.quantize;
import static dev.peregrine.tensor.QuantTesting.roundTrip;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.MemorySegment;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/**
 * {@link Quantize} against blocks worked out by hand from ggml's definitions
 * (quantize_row_q8_0_ref / quantize_row_q4_0_ref in ggml-quants.c):
 * <ul>
 *   <li>Q8_0: d = max|x| / 127, id = d ? 1/d : 0, q = roundf(x * id) (halves away from zero);
 *       stored: fp16(d), then 32 signed bytes.</li>
 *   <li>Q4_0: max = the first value of largest magnitude, with its sign; d = max / -8,
 *       id = d ? 1/d : 0, nibble = min(15, (int8)(x * id + 8.5)); stored: fp16(d), then byte j =
 *       nibble(x[j]) | nibble(x[j+16]) &lt;&lt; 4.</li>
 * </ul>
 * fp16 constants: 1.0 = 0x3C00, 2.0 = 0x4000, 0.5 = 0x3800, -0.5 = 0xB800, -1.0 = 0xBC00,
 * -0.0 = 0x8000; stored little-endian.
 */
class QuantizeTest {

    /** A block: fp16 scale bytes (low, high), then the given quant bytes, the rest filled with {@code fill}. */
    private static byte[] block(int scaleLow, int scaleHigh, int quantBytes, int fill, int... quants) {
        byte[] b = new byte[2 + quantBytes];
        b[0] = (byte) scaleLow;
        b[1] = (byte) scaleHigh;
        for (int i = 0; i < quantBytes; i++) {
            b[2 + i] = (byte) (i < quants.length ? quants[i] : fill);
        }
        return b;
    }

    @Test
    void q8_0AllZerosIsAZeroScaleAndZeroQuants() {
        assertThat(quantize(DType.Q8_0, new float[32])).isEqualTo(new byte[34]);
    }

    @Test
    void q8_0MaxMagnitudeMapsTo127() {
        // amax = 127 -> d = 1.0 (fp16 0x3C00), id = 1: every value is its own rounding.
        float[] x = new float[32];
        x[0] = 127;
        x[1] = -127;
        x[2] = 5.4f;   // 5
        x[3] = -5.6f;  // -6
        assertThat(quantize(DType.Q8_0, x)).isEqualTo(block(0x00, 0x3C, 32, 0, 127, -127, 5, -6));
    }

    @Test
    void q8_0NegativeMaxAndHalvesRoundAwayFromZero() {
        // amax = |-254| -> d = 2.0 (fp16 0x4000), id = 0.5.
        float[] x = new float[32];
        x[0] = -254;   // -127
        x[1] = 127;    //  63.5 -> 64
        x[2] = -127;   // -63.5 -> -64 (Math.round would give -63)
        x[3] = 1;      //  0.5 -> 1
        x[4] = -1;     // -0.5 -> -1
        x[5] = 5;      //  2.5 -> 3 (not to even)
        x[6] = -5;     // -2.5 -> -3
        assertThat(quantize(DType.Q8_0, x)).isEqualTo(block(0x00, 0x40, 32, 0, -127, 64, -64, 1, -1, 3, -3));
    }

    @Test
    void q8_0ScaleIsRoundedToHalfPrecisionButQuantsUseTheFloatScale() {
        // amax = 1 -> d = 1/127 = 2^-7 * 1.00787...; fp16 mantissa 0.00787 * 1024 = 8.06 -> 8:
        // bits 0 01000 0000001000 = 0x2008. Quants: 1 * 127 = 127; 0.25 * 127 = 31.75 -> 32;
        // -0.75 * 127 = -95.25 -> -95.
        float[] x = new float[32];
        x[0] = 1;
        x[1] = 0.25f;
        x[2] = -0.75f;
        assertThat(quantize(DType.Q8_0, x)).isEqualTo(block(0x08, 0x20, 32, 0, 127, 32, -95));
    }

    @Test
    void q4_0AllZerosHasANegativeZeroScaleAndNibblesOf8() {
        // max = 0 -> d = 0 / -8 = -0.0 (fp16 0x8000); id = 0 -> every nibble (int)(0 + 8.5) = 8.
        assertThat(quantize(DType.Q4_0, new float[32])).isEqualTo(block(0x00, 0x80, 16, 0x88));
    }

    @Test
    void q4_0PositiveMax() {
        // max = 8 -> d = -1 (fp16 0xBC00), id = -1; nibble = (int)(-x + 8.5), at most 15.
        float[] x = new float[32];
        x[0] = 8;        // 0.5 -> 0
        x[1] = -8;       // 16.5 -> 16 -> 15
        x[2] = 3;        // 5.5 -> 5
        x[3] = -3;       // 11.5 -> 11
        x[4] = 0.5f;     // 8.0 -> 8
        x[5] = -0.5f;    // 9.0 -> 9
        x[16] = 7;       // 1.5 -> 1
        x[17] = -7.9f;   // 16.4 -> 16 -> 15
        // byte j = nibble(x[j]) | nibble(x[j + 16]) << 4; zeros are nibble 8.
        assertThat(quantize(DType.Q4_0, x))
                .isEqualTo(block(0x00, 0xBC, 16, 0x88, 0x10, 0xFF, 0x85, 0x8B, 0x88, 0x89));
    }

    @Test
    void q4_0NegativeMaxAndHalvesRoundUp() {
        // max = -16 -> d = 2 (fp16 0x4000), id = 0.5; nibble = (int)(x / 2 + 8.5).
        float[] x = new float[32];
        x[0] = -16;      // 0.5 -> 0
        x[1] = 16;       // 16.5 -> 15
        x[2] = 1;        // 9.0 -> 9: q = +0.5 rounds up to 1
        x[3] = -1;       // 8.0 -> 8: q = -0.5 rounds up to 0
        x[4] = 3;        // 10.0 -> 10
        x[5] = -3;       // 7.0 -> 7
        x[16] = -15;     // 1.0 -> 1
        x[17] = 15;      // 16.0 -> 15
        assertThat(quantize(DType.Q4_0, x))
                .isEqualTo(block(0x00, 0x40, 16, 0x88, 0x10, 0xFF, 0x89, 0x88, 0x8A, 0x87));
    }

    @Test
    void q4_0FirstOfEqualMagnitudesGivesTheScaleItsSign() {
        float[] plusFirst = new float[32];
        plusFirst[0] = 4;
        plusFirst[1] = -4;
        // max = 4 -> d = -0.5 (0xB800), id = -2: 4 -> 0.5 -> 0; -4 -> 16.5 -> 15.
        assertThat(quantize(DType.Q4_0, plusFirst)).isEqualTo(block(0x00, 0xB8, 16, 0x88, 0x80, 0x8F));
        float[] minusFirst = new float[32];
        minusFirst[0] = -4;
        minusFirst[1] = 4;
        // max = -4 -> d = 0.5 (0x3800), id = 2: -4 -> 0.5 -> 0; 4 -> 16.5 -> 15.
        assertThat(quantize(DType.Q4_0, minusFirst)).isEqualTo(block(0x00, 0x38, 16, 0x88, 0x80, 0x8F));
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    void nanAndInfinityAreRejected(DType type) {
        for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
            float[] x = new float[2 * type.blockSize()];
            x[type.blockSize() + 8] = bad; // in the second block
            assertThatThrownBy(() -> quantize(type, x)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining(String.valueOf(bad));
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    void aPartialBlockIsRejected(DType type) {
        assertThatThrownBy(() -> Quantize.fromFloat(type, new float[40], 0, 40, MemorySegment.ofArray(new byte[100]), 0))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("40");
    }

    /**
     * Q8_0 error bound: with d = max|x|/127 and q = round(x/d), |x - d q| &lt;= d/2; storing d as
     * fp16 (relative error &lt;= 2^-11 in the normal range) adds at most 127 d 2^-11.
     */
    @ParameterizedTest
    @ValueSource(floats = {1f, 0.02f, 300f})
    void q8_0ErrorIsWithinHalfAStep(float scale) {
        float[] x = gaussian(32 * 200, scale, 1);
        float[] y = roundTrip(DType.Q8_0, x);
        for (int b = 0; b < x.length / 32; b++) {
            float amax = 0;
            for (int j = 0; j < 32; j++) {
                amax = Math.max(amax, Math.abs(x[b * 32 + j]));
            }
            double d = amax / 127.0;
            double bound = d / 2 + 127 * d * 0x1p-11;
            for (int j = 0; j < 32; j++) {
                int i = b * 32 + j;
                assertThat((double) Math.abs(x[i] - y[i])).as("value %d", i).isLessThanOrEqualTo(bound);
            }
        }
    }

    /**
     * Q4_0 error bound: with |d| = max|x|/8, rounding costs at most |d|/2, except for values of the
     * opposite sign to max beyond 7.5|d|, which the clamp to nibble 15 (q = 7) leaves up to |d| off;
     * the fp16 scale adds at most 8 |d| 2^-11.
     */
    @ParameterizedTest
    @ValueSource(floats = {1f, 0.02f, 300f})
    void q4_0ErrorIsWithinHalfAStepExceptAtTheClampedEnd(float scale) {
        float[] x = gaussian(32 * 200, scale, 2);
        float[] y = roundTrip(DType.Q4_0, x);
        for (int b = 0; b < x.length / 32; b++) {
            float max = 0;
            for (int j = 0; j < 32; j++) {
                if (Math.abs(x[b * 32 + j]) > Math.abs(max)) {
                    max = x[b * 32 + j];
                }
            }
            double d = Math.abs(max) / 8.0;
            for (int j = 0; j < 32; j++) {
                int i = b * 32 + j;
                boolean clamped = Math.signum(x[i]) == -Math.signum(max) && Math.abs(x[i]) > 7.5 * d;
                double bound = (clamped ? d : d / 2) + 8 * d * 0x1p-11;
                assertThat((double) Math.abs(x[i] - y[i])).as("value %d", i).isLessThanOrEqualTo(bound);
            }
        }
    }

    @Test
    void bf16RoundsToNearestEvenAndKeepsNaNQuiet() {
        assertThat(Quantize.floatToBf16(1.0f)).isEqualTo((short) 0x3F80);
        assertThat(Quantize.floatToBf16(Float.intBitsToFloat(0x3F808000))).isEqualTo((short) 0x3F80); // half, even below
        assertThat(Quantize.floatToBf16(Float.intBitsToFloat(0x3F818000))).isEqualTo((short) 0x3F82); // half, even above
        assertThat(Quantize.floatToBf16(Float.intBitsToFloat(0x3F808001))).isEqualTo((short) 0x3F81); // above half
        assertThat(Quantize.floatToBf16(-0.0f)).isEqualTo((short) 0x8000);
        assertThat(Quantize.floatToBf16(Float.intBitsToFloat(0x7F800001))).isEqualTo((short) 0x7FC0);
    }

    @Test
    void f16AndBf16AreStoredLittleEndian() {
        // 1.5 = fp16 0x3E00, bf16 0x3FC0; -2 = fp16 0xC000, bf16 0xC000.
        assertThat(quantize(DType.F16, new float[] {1.5f, -2f})).containsExactly(0x00, 0x3E, 0x00, 0xC0);
        assertThat(quantize(DType.BF16, new float[] {1.5f, -2f})).containsExactly(0xC0, 0x3F, 0x00, 0xC0);
    }
}
