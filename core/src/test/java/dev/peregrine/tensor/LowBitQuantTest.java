package dev.peregrine.tensor;

import static dev.peregrine.tensor.QuantTesting.quantize;
import static dev.peregrine.tensor.QuantTesting.decode;
import static dev.peregrine.tensor.QuantTesting.gaussian;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Q2_K, Q3_K, IQ4_NL and IQ4_XS: {@link Dequant} against blocks built byte by byte from ggml's
 * layouts (block_q2_K, block_q3_K, block_iq4_nl, block_iq4_xs in ggml-common.h; dequantize_row_* and
 * kvalues_iq4nl in ggml-quants.c), and {@link Quantize} by the error of its round trip. fp16
 * constants: 0.5 = 0x3800, 0.25 = 0x3400; stored little-endian.
 */
class LowBitQuantTest {

    /**
     * d = 0.5, dmin = 0.25 (bytes 80-83); scale byte j = j | (15 - j) &lt;&lt; 4 (scale j, min 15 - j);
     * qs bytes 0-31 = 0x1B and 32-63 = 0xE4, so value i's 2 bits (at bit 2k of qs[32h + l]) are
     * 3 - k in the first half and k in the second. value = (d * scale) * q - dmin * min.
     */
    @Test
    void q2_kBlockDecodesAsGgmlDefinesIt() {
        byte[] block = new byte[84];
        for (int j = 0; j < 16; j++) {
            block[j] = (byte) (j | (15 - j) << 4);
        }
        for (int l = 0; l < 32; l++) {
            block[16 + l] = 0x1B;
            block[48 + l] = (byte) 0xE4;
        }
        block[81] = 0x38;
        block[83] = 0x34;
        float[] y = decode(DType.Q2_K, block);
        assertThat(y[0]).isEqualTo(-3.75f);     // j 0, q 3: 0 * 3 - 0.25 * 15
        assertThat(y[40]).isEqualTo(-1.25f);    // j 2, k 1, q 2: 1 * 2 - 0.25 * 13
        assertThat(y[130]).isEqualTo(-1.75f);   // j 8, second half k 0, q 0: 0 - 0.25 * 7
        assertThat(y[200]).isEqualTo(11.25f);   // j 12, k 2, q 2: 6 * 2 - 0.25 * 3
        assertThat(y[255]).isEqualTo(22.5f);    // j 15, k 3, q 3: 7.5 * 3 - 0
        for (int i = 0; i < 256; i++) {
            int j = i / 16;
            int k = i % 128 / 32;
            int q = i < 128 ? 3 - k : k;
            assertThat(y[i]).as("value %d", i).isEqualTo(0.5f * j * q - 0.25f * (15 - j));
        }
    }

    /**
     * d = 0.5 (bytes 108-109); 6-bit scales all 32 (a zero factor) but s0 = 33, s9 = 17, s15 = 63:
     * low nibbles in bytes 0-7 (scale j at byte j % 8, nibble j / 8): byte 0 = 0x01, byte 1 = 0x10,
     * byte 7 = 0xF0; high 2 bits in bytes 8-11 (scale j at byte 8 + j % 4, bits 2 (j / 4)): 0xAA,
     * 0x9A, 0xAA, 0xEA. hmask bytes all 0x01 (the third bit only for h = 0, k = 0); qs bytes 0-31 =
     * 0x1B (low bits 3 - k), 32-63 = 0xE4 (low bits k). value = (d * (s - 32)) * (bits - (third ? 0 : 4)).
     */
    @Test
    void q3_kBlockDecodesAsGgmlDefinesIt() {
        byte[] block = new byte[110];
        for (int l = 0; l < 32; l++) {
            block[l] = 0x01;
            block[32 + l] = 0x1B;
            block[64 + l] = (byte) 0xE4;
        }
        int[] scales = {0x01, 0x10, 0, 0, 0, 0, 0, 0xF0, 0xAA, 0x9A, 0xAA, 0xEA};
        for (int i = 0; i < 12; i++) {
            block[96 + i] = (byte) scales[i];
        }
        block[109] = 0x38;
        float[] y = decode(DType.Q3_K, block);
        assertThat(y[0]).isEqualTo(1.5f);       // s 33, h 0, k 0: bits 3, third set: 0.5 * 1 * 3
        assertThat(y[16]).isEqualTo(0f);        // s 32
        assertThat(y[150]).isEqualTo(30f);      // s 17, h 1, k 0: bits 0, no third: 0.5 * -15 * -4
        assertThat(y[250]).isEqualTo(-15.5f);   // s 63, h 1, k 3: bits 3, no third: 0.5 * 31 * -1
        for (int i = 0; i < 16; i++) {
            assertThat(y[i]).isEqualTo(1.5f);
            assertThat(y[144 + i]).isEqualTo(30f);
            assertThat(y[240 + i]).isEqualTo(-15.5f);
        }
    }

    /** d = 0.5; qs[0] = 0xF0, qs[5] = 0x78: value = d * grid[nibble], grid = kvalues_iq4nl. */
    @Test
    void iq4_nlBlockDecodesAsGgmlDefinesIt() {
        byte[] block = new byte[18];
        block[1] = 0x38;
        block[2] = (byte) 0xF0;
        block[2 + 5] = 0x78;
        float[] y = decode(DType.IQ4_NL, block);
        assertThat(y[0]).isEqualTo(-63.5f);     // grid[0] = -127
        assertThat(y[16]).isEqualTo(56.5f);     // grid[15] = 113
        assertThat(y[5]).isEqualTo(0.5f);       // grid[8] = 1
        assertThat(y[21]).isEqualTo(-5f);       // grid[7] = -10
        assertThat(y[1]).isEqualTo(-63.5f);     // nibble 0
    }

    /**
     * d = 0.25; 6-bit run scales s0 = 33, s1 = 31, s7 = 0, the others 32: low nibbles in bytes 4-7
     * (run j at byte 4 + j / 2, nibble j % 2): 0xF1, 0, 0, 0; high 2 bits in the 16-bit word at byte
     * 2 (run j at bits 2j): 0x2AA6. value = (d * (s - 32)) * grid[nibble].
     */
    @Test
    void iq4_xsBlockDecodesAsGgmlDefinesIt() {
        byte[] block = new byte[136];
        block[1] = 0x34;
        block[2] = (byte) 0xA6;
        block[3] = 0x2A;
        block[4] = (byte) 0xF1;
        block[8] = (byte) 0x9F;             // run 0, position 0: nibbles 15 and 9
        block[8 + 16 + 3] = 0x00;           // run 1, position 3: nibbles 0 and 0
        block[8 + 112 + 2] = 0x08;          // run 7, position 2: nibbles 8 and 0
        float[] y = decode(DType.IQ4_XS, block);
        assertThat(y[0]).isEqualTo(28.25f);      // 0.25 * 1 * 113
        assertThat(y[16]).isEqualTo(3.25f);      // 0.25 * 1 * 13
        assertThat(y[35]).isEqualTo(31.75f);     // 0.25 * -1 * -127
        assertThat(y[226]).isEqualTo(-8f);       // 0.25 * -32 * 1
        assertThat(y[242]).isEqualTo(1016f);     // 0.25 * -32 * -127
    }

    /**
     * Round trips stay close: every value within a bound of its sub-block's step, and the RMS error
     * relative to the values' RMS below what each format's bits allow (Q2_K 4 levels, Q3_K 8, the
     * IQ4 grid 16, non-uniform).
     */
    @ParameterizedTest
    @CsvSource({"Q2_K, 0.35", "Q3_K, 0.2", "IQ4_NL, 0.1", "IQ4_XS, 0.1"})
    void roundTripsStayClose(DType type, double maxRelativeRms) {
        for (float scale : new float[] {1f, 0.02f, 300f}) {
            float[] x = gaussian(256 * 40, scale, 11);
            float[] y = decode(type, quantize(type, x));
            double err = 0;
            double sum = 0;
            for (int b = 0; b < x.length / 16; b++) {
                double amax = 0;
                for (int l = 0; l < 16; l++) {
                    amax = Math.max(amax, Math.abs(x[16 * b + l]));
                }
                for (int l = 0; l < 16; l++) {
                    int i = 16 * b + l;
                    // A value is never further from its decoded value than the sub-block's range.
                    assertThat((double) Math.abs(x[i] - y[i])).as("%s value %d", type, i).isLessThanOrEqualTo(amax * 1.01);
                    err += (double) (x[i] - y[i]) * (x[i] - y[i]);
                    sum += (double) x[i] * x[i];
                }
            }
            assertThat(Math.sqrt(err / sum)).as("%s relative RMS error at scale %s", type, scale).isLessThan(maxRelativeRms);
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q2_K", "Q3_K", "IQ4_NL", "IQ4_XS"})
    void nanIsRejectedAndTypeIdsAreGgmls(DType type) {
        float[] x = new float[2 * type.blockSize()];
        x[type.blockSize() + 8] = Float.NaN;
        assertThatThrownBy(() -> quantize(type, x)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("NaN");
        int id = switch (type) {
            case Q2_K -> 10;
            case Q3_K -> 11;
            case IQ4_NL -> 20;
            default -> 23;
        };
        assertThat(DType.fromGgmlId(id)).contains(type);
        assertThat(type.hasSuperBlocks()).isEqualTo(type != DType.IQ4_NL);
    }
}
