package dev.peregrine.cpu;

import static dev.peregrine.cpu.VectorKernels.BLOCK;
import static dev.peregrine.cpu.VectorKernels.F;
import static dev.peregrine.cpu.VectorKernels.FL;
import static dev.peregrine.cpu.VectorKernels.FLOAT;
import static dev.peregrine.cpu.VectorKernels.HALF_SHORTS;
import static dev.peregrine.cpu.VectorKernels.I;
import static dev.peregrine.cpu.VectorKernels.K_BLOCK;
import static dev.peregrine.cpu.VectorKernels.LE;
import static dev.peregrine.cpu.VectorKernels.LE_FLOAT;
import static dev.peregrine.cpu.VectorKernels.LE_INT;
import static dev.peregrine.cpu.VectorKernels.LE_LONG;
import static dev.peregrine.cpu.VectorKernels.LE_SHORT;
import static dev.peregrine.cpu.VectorKernels.NATIVE;
import static dev.peregrine.cpu.VectorKernels.QUARTER_BYTES;
import static dev.peregrine.cpu.VectorKernels.UNIT;

import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Dequant;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/**
 * Weight rows of every type to floats with the Vector API: the panels of {@link TileProducts}, rows
 * read by token embedding lookups, and the float copies of activations. Each decoder gives the
 * values of the reference dequantisation ({@link Dequant}).
 */
final class FloatDecoders {

    /**
     * Dequantises the first {@code count} values of the row of {@code w} at byte {@code rowOffset},
     * its units (blocks, or runs of {@link #UNIT} float values) {@code w.blockStride()} bytes apart,
     * into floats at byte {@code dstOffset} of {@code dst}, zero-filled up to {@code paddedCount}
     * values.
     */
    static void decodeRange(CpuWeight w, long rowOffset, int count, MemorySegment dst, long dstOffset, int paddedCount,
                            ThreadScratch scratch) {
        DType type = w.type();
        MemorySegment data = w.data();
        long blockStride = w.blockStride();
        switch (type) {
            case F32 -> decodeF32(data, rowOffset, blockStride, count, dst, dstOffset);
            case F16 -> decodeF16(data, rowOffset, blockStride, count, dst, dstOffset);
            case BF16 -> decodeBf16(data, rowOffset, blockStride, count, dst, dstOffset);
            case Q8_0 -> decodeQ8(data, rowOffset, blockStride, count / BLOCK, dst, dstOffset);
            case Q4_0, Q4_1, Q5_0, Q5_1 -> decodeNibbleBlocks(type, data, rowOffset, blockStride, count / BLOCK, dst, dstOffset);
            case IQ4_NL -> decodeIq4(false, data, rowOffset, blockStride, count / BLOCK, dst, dstOffset);
            case Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS -> {
                if (rowOffset % type.blockBytes() == 0 && count % K_BLOCK == 0) {
                    long at = rowOffset;
                    // Up to 32 scales (and offsets), then FL values (see q45kValues).
                    float[] scales = scratch.blockScales(32 + FL);
                    int blocks = count / K_BLOCK;
                    switch (type) {
                        case Q4_K, Q5_K -> decodeQ45K(type == DType.Q5_K, data, at, blockStride, blocks, dst, dstOffset, scales);
                        case Q6_K -> decodeQ6K(data, at, blockStride, blocks, dst, dstOffset, scales);
                        case Q2_K, Q3_K -> decodeQ23K(type == DType.Q3_K, data, at, blockStride, blocks, dst, dstOffset, scales);
                        default -> decodeIq4(true, data, at, blockStride, blocks, dst, dstOffset);
                    }
                } else {
                    // Rows that do not start on a super-block (read flat): the reference, through
                    // a float row of the thread's.
                    float[] row = scratch.row(count);
                    long firstValue = rowOffset / type.blockBytes() * type.blockSize();
                    Dequant.toFloat(type, data, firstValue, row, 0, count);
                    MemorySegment.copy(row, 0, dst, FLOAT, dstOffset, count);
                }
            }
            default -> {
                // The reference dequantisation, through a float row of the thread's.
                float[] row = scratch.row(count);
                long firstValue = rowOffset / type.blockBytes() * type.blockSize();
                Dequant.toFloat(type, data, firstValue, row, 0, count);
                MemorySegment.copy(row, 0, dst, FLOAT, dstOffset, count);
            }
        }
        zero(dst, dstOffset + 4L * count, paddedCount - count);
    }

    /*
     * Float rows: {@code n} values from byte {@code offset}, in units of UNIT values
     * {@code unitStride} bytes apart (a unit's bytes: a row in the file's layout is one run).
     */

    static void decodeF32(MemorySegment data, long offset, long unitStride, int n, MemorySegment dst, long dstOffset) {
        int i = 0;
        int vectorEnd = n / FL * FL;
        for (; i < vectorEnd; i += FL) {
            FloatVector.fromMemorySegment(F, data, offset + (long) (i / UNIT) * unitStride + 4L * (i % UNIT), LE)
                    .intoMemorySegment(dst, dstOffset + 4L * i, NATIVE);
        }
        for (; i < n; i++) {
            dst.set(FLOAT, dstOffset + 4L * i, data.get(LE_FLOAT, offset + (long) (i / UNIT) * unitStride + 4L * (i % UNIT)));
        }
    }

    /**
     * IEEE half to float in int lanes: shifting the half's exponent and mantissa into place and
     * multiplying by 2^112 (the difference of the exponent biases) is exact for normal and subnormal
     * halves alike; infinities and NaNs (exponent 31) get the float's all-ones exponent instead.
     */
    static void decodeF16(MemorySegment data, long offset, long unitStride, int n, MemorySegment dst, long dstOffset) {
        int i = 0;
        int vectorEnd = n / FL * FL;
        for (; i < vectorEnd; i += FL) {
            IntVector h = (IntVector) ShortVector.fromMemorySegment(HALF_SHORTS, data,
                    offset + (long) (i / UNIT) * unitStride + 2L * (i % UNIT), LE).convertShape(VectorOperators.S2I, I, 0);
            IntVector bits = h.lanewise(VectorOperators.LSHL, 13).and(0x8FFFFFFF);
            FloatVector f = bits.reinterpretAsFloats().mul(0x1p112f);
            FloatVector magnitude = f.abs();
            // Exponent 31 scales to exactly 2^16 for an infinity and above it for a NaN, which is
            // made quiet as Float.float16ToFloat (and the hardware's conversion) makes it.
            IntVector special = bits.or(0x7F800000).lanewise(VectorOperators.OR, 0x00400000,
                    magnitude.compare(VectorOperators.GT, 65536f).cast(I));
            f.blend(special.reinterpretAsFloats(), magnitude.compare(VectorOperators.GE, 65536f))
                    .intoMemorySegment(dst, dstOffset + 4L * i, NATIVE);
        }
        for (; i < n; i++) {
            dst.set(FLOAT, dstOffset + 4L * i,
                    Float.float16ToFloat(data.get(LE_SHORT, offset + (long) (i / UNIT) * unitStride + 2L * (i % UNIT))));
        }
    }

    static void decodeBf16(MemorySegment data, long offset, long unitStride, int n, MemorySegment dst, long dstOffset) {
        int i = 0;
        int vectorEnd = n / FL * FL;
        for (; i < vectorEnd; i += FL) {
            ((IntVector) ShortVector.fromMemorySegment(HALF_SHORTS, data, offset + (long) (i / UNIT) * unitStride + 2L * (i % UNIT), LE)
                    .convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats()
                    .intoMemorySegment(dst, dstOffset + 4L * i, NATIVE);
        }
        for (; i < n; i++) {
            short bits = data.get(LE_SHORT, offset + (long) (i / UNIT) * unitStride + 2L * (i % UNIT));
            dst.set(FLOAT, dstOffset + 4L * i, Float.intBitsToFloat((bits & 0xFFFF) << 16));
        }
    }

    static void decodeQ8(MemorySegment data, long offset, long stride, int blocks, MemorySegment dst, long dstOffset) {
        for (int b = 0; b < blocks; b++) {
            long o = offset + b * stride;
            float d = Float.float16ToFloat(data.get(LE_SHORT, o));
            for (int c = 0; c < BLOCK; c += FL) {
                ((FloatVector) ByteVector.fromMemorySegment(QUARTER_BYTES, data, o + 2 + c, LE)
                        .convertShape(VectorOperators.B2F, F, 0))
                        .mul(d).intoMemorySegment(dst, dstOffset + 4L * (b * BLOCK + c), NATIVE);
            }
        }
    }

    /**
     * Q4_K or Q5_K super-blocks to floats, the values of {@link Dequant} and of rowsQ45K: scale * q -
     * offset. {@code scales} holds at least 16 + FL floats: a super-block's scales and offsets, then
     * the values being converted.
     */
    static void decodeQ45K(boolean fiveBits, MemorySegment data, long offset, long stride, int blocks, MemorySegment dst,
                           long dstOffset, float[] scales) {
        for (int blk = 0; blk < blocks; blk++) {
            long at = offset + blk * stride;
            long to = dstOffset + 4L * K_BLOCK * blk;
            q4kScales(data, at, scales, 0);
            for (int j = 0; j < 8; j++) {
                for (int c = 0; c < 32; c += FL) {
                    q45kValues(fiveBits, data, at, j, c, scales, 16);
                    FloatVector.fromArray(F, scales, 16).mul(scales[j]).sub(scales[8 + j])
                            .intoMemorySegment(dst, to + 4L * (32 * j + c), NATIVE);
                }
            }
        }
    }

    /** Q6_K super-blocks to floats, the values of {@link Dequant} and of RowProducts.rowsQ6K: (d * sc) * (q - 32); {@code scales} as for decodeQ45K. */
    static void decodeQ6K(MemorySegment data, long offset, long stride, int blocks, MemorySegment dst, long dstOffset,
                          float[] scales) {
        for (int blk = 0; blk < blocks; blk++) {
            long at = offset + blk * stride;
            long to = dstOffset + 4L * K_BLOCK * blk;
            q6kScales(data, at, scales, 0);
            for (int i = 0; i < K_BLOCK; i += FL) {
                q6kValues(data, at, i, scales, 16);
                FloatVector.fromArray(F, scales, 16).mul(scales[i / 16]).intoMemorySegment(dst, to + 4L * i, NATIVE);
            }
        }
    }

    /**
     * Q2_K (3 bits false) or Q3_K super-blocks to floats, the values of {@link Dequant}: value i
     * takes 2 bits from qs[32h + l] at bit 2k (h = i / 128, k = i % 128 / 32, l = i % 32), Q3_K a
     * third from hmask[l] at bit 4h + k; Q2_K's value is (d * scale) * q - dmin * min, Q3_K's (d *
     * (scale - 32)) * (q - 4). {@code scales} holds at least 32 + FL floats.
     */
    static void decodeQ23K(boolean threeBits, MemorySegment data, long offset, long stride, int blocks, MemorySegment dst,
                           long dstOffset, float[] scales) {
        long quants = threeBits ? 32 : 16;
        for (int blk = 0; blk < blocks; blk++) {
            long at = offset + blk * stride;
            long to = dstOffset + 4L * K_BLOCK * blk;
            q23kScales(threeBits, data, at, scales);
            for (int i = 0; i < K_BLOCK; i += FL) {
                int h = i / 128;
                int k = i % 128 / 32;
                int l = i % 32;
                IntVector q = ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, data, at + quants + 32L * h + l, LE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 2 * k).and(3);
                if (threeBits) {
                    // q - 4, plus 4 where the hmask bit is set.
                    q = q.or(((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, data, at + l, LE)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 4 * h + k)
                            .and(1).lanewise(VectorOperators.LSHL, 2)).sub(4);
                }
                ((FloatVector) q.convert(VectorOperators.I2F, 0)).mul(scales[i / 16]).sub(scales[16 + i / 16])
                        .intoMemorySegment(dst, to + 4L * i, NATIVE);
            }
        }
    }

    /**
     * The 16 sub-block scales of the Q2_K or Q3_K super-block at {@code at} into {@code into[0..15]} and
     * the 16 offsets into {@code into[16..31]} (from {@code into[base]} in the second form): Q2_K's d * scale and dmin * min; Q3_K's d * (s - 32)
     * and zeros, its 6-bit scales unpacked 8 at a time in two longs (as {@link Dequant#q3kScale} reads
     * them one by one).
     */
    static void q23kScales(boolean threeBits, MemorySegment data, long at, float[] into) {
        q23kScales(threeBits, data, at, into, 0);
    }

    static void q23kScales(boolean threeBits, MemorySegment data, long at, float[] into, int base) {
        if (!threeBits) {
            float d = Float.float16ToFloat(data.get(LE_SHORT, at + 80));
            float dmin = Float.float16ToFloat(data.get(LE_SHORT, at + 82));
            for (int p = 0; p < 16; p += FL) {
                IntVector sc = (IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, data, at + p, LE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0);
                ((FloatVector) sc.and(0x0F).convert(VectorOperators.I2F, 0)).mul(d).intoArray(into, base + p);
                ((FloatVector) sc.lanewise(VectorOperators.LSHR, 4).convert(VectorOperators.I2F, 0)).mul(dmin)
                        .intoArray(into, base + 16 + p);
            }
            return;
        }
        float d = Float.float16ToFloat(data.get(LE_SHORT, at + 108));
        long low = data.get(LE_LONG, at + 96);
        long high = data.get(LE_INT, at + 104) & 0xFFFFFFFFL;
        // Scales 0-7: low nibbles of bytes 0-7, top bits 2 (j / 4) of byte 8 + j % 4; 8-15: high nibbles.
        long first = (low & 0x0F0F0F0F0F0F0F0FL) | ((high & 0x03030303L) | (high >>> 2 & 0x03030303L) << 32) << 4;
        long second = (low >>> 4 & 0x0F0F0F0F0F0F0F0FL) | ((high >>> 4 & 0x03030303L) | (high >>> 6 & 0x03030303L) << 32) << 4;
        ByteVector bytes = LongVector.zero(LongVector.SPECIES_128).withLane(0, first).withLane(1, second).reinterpretAsBytes();
        for (int p = 0; p < 16; p += FL) {
            ((FloatVector) ((IntVector) bytes.convertShape(VectorOperators.ZERO_EXTEND_B2I, I, p / FL)).sub(32)
                    .convert(VectorOperators.I2F, 0)).mul(d).intoArray(into, base + p);
        }
        java.util.Arrays.fill(into, base + 16, base + 32, 0f);
    }

    /** The IQ4 grid as float bits, for lookups 16 lanes (or twice 8) at a time. */
    static final int[] IQ4_GRID_BITS = new int[16];

    static {
        for (int n = 0; n < 16; n++) {
            IQ4_GRID_BITS[n] = Float.floatToIntBits(DType.iq4Value(n));
        }
    }

    /**
     * IQ4_NL blocks (32 values) or IQ4_XS super-blocks (8 runs of 32 with 6-bit scales) to floats,
     * the values of {@link Dequant}: scale * grid[nibble], the grid looked up in registers.
     */
    static void decodeIq4(boolean superBlock, MemorySegment data, long offset, long stride, int blocks, MemorySegment dst,
                          long dstOffset) {
        int runs = superBlock ? 8 : 1;
        long quants = superBlock ? 8 : 2;
        IntVector gridLow = IntVector.fromArray(I, IQ4_GRID_BITS, 0);
        IntVector gridHigh = IntVector.fromArray(I, IQ4_GRID_BITS, 16 - FL);
        for (int blk = 0; blk < blocks; blk++) {
            long at = offset + blk * stride;
            float d = Float.float16ToFloat(data.get(LE_SHORT, at));
            int scalesHigh = superBlock ? data.get(LE_SHORT, at + 2) & 0xFFFF : 0;
            for (int j = 0; j < runs; j++) {
                float scale = d;
                if (superBlock) {
                    int s = (data.get(ValueLayout.JAVA_BYTE, at + 4 + j / 2) >>> 4 * (j % 2) & 0x0F) | (scalesHigh >>> 2 * j & 3) << 4;
                    scale = d * (s - 32);
                }
                long to = dstOffset + 4L * ((long) runs * BLOCK * blk + BLOCK * j);
                for (int half = 0; half < 2; half++) {
                    for (int c = 0; c < BLOCK / 2; c += FL) {
                        IntVector n = ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, data, at + quants + 16L * j + c, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 4 * half).and(0x0F);
                        // 16 lanes: one table; 8 lanes: the grid in two (index n picks from both).
                        IntVector grid = FL == 16 ? n.selectFrom(gridLow) : n.selectFrom(gridLow, gridHigh);
                        grid.reinterpretAsFloats().mul(scale).intoMemorySegment(dst, to + 4L * (16 * half + c), NATIVE);
                    }
                }
            }
        }
    }

    /** Blocks of a 32-value nibble type to floats, the values of RowProducts.rowsNibbles (and {@code Dequant}): fma(q, d, m). */
    static void decodeNibbleBlocks(DType type, MemorySegment data, long offset, long stride, int blocks, MemorySegment dst,
                                   long dstOffset) {
        NibbleLayout layout = NibbleLayout.of(type);
        IntVector bitOfLane = IntVector.zero(I).addIndex(1);
        for (int b = 0; b < blocks; b++) {
            long o = offset + b * stride;
            float d = Float.float16ToFloat(data.get(LE_SHORT, o));
            float m = layout.withMin ? Float.float16ToFloat(data.get(LE_SHORT, o + 2)) : layout.bias * d;
            int qh = layout.fiveBits ? data.get(LE_INT, o + layout.quants - 4) : 0;
            for (int half = 0; half < 2; half++) {
                for (int c = 0; c < BLOCK / 2; c += FL) {
                    IntVector q = ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, data, o + layout.quants + c, LE)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 4 * half).and(0x0F);
                    int bit = 16 * half + c;
                    if (layout.fiveBits) {
                        q = q.or(IntVector.broadcast(I, (qh >>> bit & 0xFFFF) << 4).lanewise(VectorOperators.LSHR, bitOfLane).and(16));
                    }
                    ((FloatVector) q.convert(VectorOperators.I2F, 0)).fma(d, m)
                            .intoMemorySegment(dst, dstOffset + 4L * (b * BLOCK + bit), NATIVE);
                }
            }
        }
    }

    /** Copies {@code n} floats from float index {@code srcIndex} of {@code src}, zero-padded to {@code paddedN}. */
    static void copyRow(MemorySegment src, long srcIndex, int n, MemorySegment dst, long dstIndex, int paddedN) {
        MemorySegment.copy(src, 4 * srcIndex, dst, 4 * dstIndex, 4L * n);
        zero(dst, 4 * (dstIndex + n), paddedN - n);
    }

    /** Zeroes {@code count} floats from byte {@code offset} (one at a time: a slice would allocate). */
    static void zero(MemorySegment dst, long offset, int count) {
        for (int i = 0; i < count; i++) {
            dst.set(FLOAT, offset + 4L * i, 0f);
        }
    }

    /** Lanes 8-15 of a 16-lane vector (the Q4_K offsets after the 8 scales, see q4kScales). */
    static final VectorMask<Float> UPPER_HALF = VectorMask.fromLong(F, 0xFF00L);

    /**
     * Where a 32-value nibble type keeps its parts: a stored minimum after d (else m = bias * d),
     * a word of fifth bits just before the nibbles, and the nibbles' byte offset in the block.
     */
    record NibbleLayout(boolean withMin, boolean fiveBits, long quants, float bias) {
        static final NibbleLayout Q4_0 = new NibbleLayout(false, false, 2, -8);
        static final NibbleLayout Q4_1 = new NibbleLayout(true, false, 4, 0);
        static final NibbleLayout Q5_0 = new NibbleLayout(false, true, 6, -16);
        static final NibbleLayout Q5_1 = new NibbleLayout(true, true, 8, 0);

        static NibbleLayout of(DType type) {
            return switch (type) {
                case Q4_0 -> Q4_0;
                case Q4_1 -> Q4_1;
                case Q5_0 -> Q5_0;
                case Q5_1 -> Q5_1;
                default -> throw new IllegalArgumentException(type + " is not a 32-value nibble type");
            };
        }
    }

    /**
     * Q4_K or Q5_K values of sub-block {@code j} of the super-block at {@code at}, FL of them from
     * position {@code l}, as floats into {@code into[to ..]}. Stored, not returned: a helper
     * returning a vector boxes it wherever C2 does not inline the helper (with 256-bit vectors a
     * Q4_K_M decode step allocated 512 KB).
     */
    static void q45kValues(boolean fiveBits, MemorySegment w, long at, int j, int l, float[] into, int to) {
        IntVector q = ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, at + (fiveBits ? 48 : 16) + 32L * (j / 2) + l, LE)
                .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 4 * (j % 2)).and(0x0F);
        if (fiveBits) {
            q = q.or(((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, at + 16 + l, LE)
                    .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHL, 4)
                    .lanewise(VectorOperators.LSHR, j).and(16));
        }
        ((FloatVector) q.convert(VectorOperators.I2F, 0)).intoArray(into, to);
    }

    /**
     * Q6_K values q - 32 of the super-block at {@code at}, FL of them from value {@code i}, as
     * floats into {@code into[to ..]} (stored, as q45kValues explains): q's low 4 bits from ql, high
     * 2 bits from qh (the RowProducts.rowsQ6K comment has the layout).
     */
    static void q6kValues(MemorySegment w, long at, int i, float[] into, int to) {
        int h = i / 128;
        int k = i % 128 / 32;
        int l = i % 32;
        ((FloatVector) ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, at + 64L * h + l + 32 * (k % 2), LE)
                .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, k < 2 ? 0 : 4).and(0x0F)
                .or(((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, at + 128 + 32L * h + l, LE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 2 * k)
                        .and(3).lanewise(VectorOperators.LSHL, 4))
                .sub(32).convert(VectorOperators.I2F, 0)).intoArray(into, to);
    }

    /** The 8 scales (d * sc[j]) then the 8 offsets (dmin * m[j]) of the Q4_K super-block at {@code at}, from {@code into[base]}. */
    static void q4kScales(MemorySegment w, long at, float[] into, int base) {
        float d = Float.float16ToFloat(w.get(LE_SHORT, at));
        float dmin = Float.float16ToFloat(w.get(LE_SHORT, at + 2));
        // The 12 packed bytes in two loads, unpacked 8 at a time (Dequant.q4kScale / q4kMin byte by byte):
        // sc and m 0-3 are bytes 0-3 and 4-7 less their top 2 bits; sc and m 4-7 take bytes 8-11's low and
        // high nibbles, with those top bits of bytes 0-3 and 4-7 above.
        long first8 = w.get(LE_LONG, at + 4);
        long last4 = w.get(LE_INT, at + 12) & 0xFFFFFFFFL;
        long low = first8 & 0x3F3F3F3F3F3F3F3FL;
        long tops = first8 >>> 6 & 0x0303030303030303L;
        long scales = (low & 0xFFFFFFFFL) | ((last4 & 0x0F0F0F0FL) | (tops & 0x03030303L) << 4) << 32;
        long mins = (low >>> 32) | ((last4 >>> 4 & 0x0F0F0F0FL) | (tops >>> 32) << 4) << 32;
        ByteVector bytes = LongVector.zero(LongVector.SPECIES_128).withLane(0, scales).withLane(1, mins).reinterpretAsBytes();
        if (FL == 16) {
            ((FloatVector) ((IntVector) bytes.convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).convert(VectorOperators.I2F, 0))
                    .mul(FloatVector.broadcast(F, d).blend(dmin, UPPER_HALF)).intoArray(into, base);
        } else {
            ((FloatVector) ((IntVector) bytes.convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).convert(VectorOperators.I2F, 0))
                    .mul(d).intoArray(into, base);
            ((FloatVector) ((IntVector) bytes.convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 1)).convert(VectorOperators.I2F, 0))
                    .mul(dmin).intoArray(into, base + FL);
        }
    }

    /** The 16 products d * sc[s] of the Q6_K super-block at {@code at}, from {@code into[base]}. */
    static void q6kScales(MemorySegment w, long at, float[] into, int base) {
        float d = Float.float16ToFloat(w.get(LE_SHORT, at + 208));
        if (FL == 16) {
            // The 16 signed bytes as one vector: the same products as below.
            ((FloatVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, at + 192, LE).convertShape(VectorOperators.B2F, F, 0))
                    .mul(d).intoArray(into, base);
            return;
        }
        for (int s = 0; s < 16; s++) {
            into[base + s] = d * w.get(ValueLayout.JAVA_BYTE, at + 192 + s);
        }
    }

    private FloatDecoders() {
    }
}
