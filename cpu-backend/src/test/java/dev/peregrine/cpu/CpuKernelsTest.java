package dev.peregrine.cpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.peregrine.spi.BackendConfig;
import dev.peregrine.spi.BatchLayout;
import dev.peregrine.spi.Buffer;
import dev.peregrine.spi.Weight;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Dequant;
import dev.peregrine.tensor.Quantize;
import dev.peregrine.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Each CPU kernel against a plain double-precision computation on random data. */
class CpuKernelsTest {
    private final Arena arena = Arena.ofShared(); // the worker threads read the weights of larger matrices
    private final CpuBackend backend = (CpuBackend) new CpuBackendProvider().create(new BackendConfig(2, 0));
    private final Random random = new Random(42);

    @AfterEach
    void close() {
        backend.close();
        arena.close();
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void matmulMatchesDequantisedDoubleProduct(DType type) {
        int columns = type.isQuantized() ? 3 * type.blockSize() : 37; // 3 blocks; 37: not a multiple of any vector width
        for (int rows : new int[] {1, 5}) {
            int outputs = 19;
            Tensor t = tensor(type, columns, outputs);
            float[] w = Dequant.toFloat(t); // the reference dequantisation
            float[] x = randoms(rows * columns);
            Weight weight = backend.upload(t);
            Buffer out = backend.allocate((long) rows * outputs);
            backend.matmul(out, buffer(x), weight, rows);
            float[] got = read(out, rows * outputs);
            for (int r = 0; r < rows; r++) {
                for (int o = 0; o < outputs; o++) {
                    double expected = 0;
                    for (int i = 0; i < columns; i++) {
                        expected += (double) w[o * columns + i] * x[r * columns + i];
                    }
                    assertThat((double) got[r * outputs + o]).as("%s row %d out %d", type, r, o)
                            .isCloseTo(expected, within(1e-4 * (1 + Math.abs(expected))));
                }
            }
        }
    }

    @Test
    void quantisedRowsThatCrossBlockBoundariesAreReadFlat() {
        // 4 rows of 40 values = 160 values = 5 Q8_0 blocks; rows 1..3 start inside a block.
        int columns = 40;
        int outputs = 4;
        float[] values = randoms(columns * outputs);
        MemorySegment data = arena.allocate(DType.Q8_0.bytesFor(values.length));
        Quantize.fromFloat(DType.Q8_0, values, 0, values.length, data, 0);
        Tensor t = new Tensor("flat", DType.Q8_0, new long[] {columns, outputs}, data);
        float[] flat = Dequant.toFloat(t);
        float[] x = randoms(columns);
        Buffer out = backend.allocate(outputs);
        backend.matmul(out, buffer(x), backend.upload(t), 1);
        float[] got = read(out, outputs);
        for (int o = 0; o < outputs; o++) {
            double expected = 0;
            for (int i = 0; i < columns; i++) {
                expected += (double) flat[o * columns + i] * x[i];
            }
            assertThat((double) got[o]).isCloseTo(expected, within(1e-4));
        }
    }

    @Test
    void rmsNormMatchesDefinition() {
        int rows = 3;
        int width = 29;
        float[] x = randoms(rows * width);
        float[] g = randoms(width);
        Buffer out = backend.allocate((long) rows * width);
        backend.rmsNorm(out, buffer(x), backend.upload(f32Tensor("g", g, width, 1)), rows, width, 1e-5f);
        float[] got = read(out, rows * width);
        for (int r = 0; r < rows; r++) {
            double ss = 0;
            for (int i = 0; i < width; i++) {
                ss += (double) x[r * width + i] * x[r * width + i];
            }
            double inv = 1 / Math.sqrt(ss / width + 1e-5);
            for (int i = 0; i < width; i++) {
                assertThat((double) got[r * width + i]).isCloseTo(x[r * width + i] * inv * g[i],
                        within(1e-5));
            }
        }
    }

    @Test
    void ropeRotatesAdjacentPairsByPositionTimesFrequency() {
        int heads = 2;
        int headDim = 8;
        int ropeDims = 6; // partial rotation: the last pair of each head stays as it is
        float[] freqs = {1f, 0.1f, 0.01f};
        BatchLayout layout = new BatchLayout(16);
        int s = layout.addSequence(new int[] {0}, 1);
        layout.addToken(s, 0, 3, false);
        layout.addToken(s, 0, 7, false);
        float[] x = randoms(2 * heads * headDim);
        Buffer cs = backend.allocate(2 * ropeDims);
        backend.ropeAngles(cs, freqs, layout);
        Buffer xb = buffer(x);
        backend.rope(xb, cs, 2, heads, headDim, ropeDims);
        float[] got = read(xb, x.length);
        for (int r = 0; r < 2; r++) {
            for (int h = 0; h < heads; h++) {
                int base = (r * heads + h) * headDim;
                for (int i = 0; i < headDim / 2; i++) {
                    double a = i < ropeDims / 2 ? layout.positions[r] * (double) freqs[i] : 0;
                    double x0 = x[base + 2 * i];
                    double x1 = x[base + 2 * i + 1];
                    assertThat((double) got[base + 2 * i]).isCloseTo(x0 * Math.cos(a) - x1 * Math.sin(a), within(1e-5));
                    assertThat((double) got[base + 2 * i + 1]).isCloseTo(x0 * Math.sin(a) + x1 * Math.cos(a), within(1e-5));
                }
            }
        }
    }

    @Test
    void pagedAttentionMatchesContiguousSoftmaxAttention() {
        int heads = 4;
        int kvHeads = 2;
        int headDim = 5;
        int blockSize = 4;
        int length = 11;
        int kvWidth = kvHeads * headDim;
        // The sequence's blocks are scattered: physical blocks 5, 1, 3.
        int[] table = {5, 1, 3};
        BatchLayout layout = new BatchLayout(blockSize);
        int s = layout.addSequence(table, table.length);
        float[][] keys = new float[length][];
        float[][] values = new float[length][];
        Buffer kc = backend.allocate(6L * blockSize * kvWidth);
        Buffer vc = backend.allocate(6L * blockSize * kvWidth);
        for (int p = 0; p < length; p++) {
            keys[p] = randoms(kvWidth);
            values[p] = randoms(kvWidth);
            int slot = layout.slotOf(s, p);
            backend.copy(kc, (long) slot * kvWidth, buffer(keys[p]), 0, kvWidth);
            backend.copy(vc, (long) slot * kvWidth, buffer(values[p]), 0, kvWidth);
        }
        // Two query rows: positions 4 and 10.
        layout.addToken(s, 0, 4, false);
        layout.addToken(s, 0, 10, false);
        float[] q = randoms(2 * heads * headDim);
        Buffer out = backend.allocate(2L * heads * headDim);
        float scale = (float) (1 / Math.sqrt(headDim));
        backend.attention(out, buffer(q), kc, vc, layout, heads, kvHeads, headDim, scale);
        float[] got = read(out, q.length);
        for (int r = 0; r < 2; r++) {
            int pos = layout.positions[r];
            for (int h = 0; h < heads; h++) {
                int kvh = h / (heads / kvHeads);
                double[] w = new double[pos + 1];
                double max = Double.NEGATIVE_INFINITY;
                for (int p = 0; p <= pos; p++) {
                    double dot = 0;
                    for (int i = 0; i < headDim; i++) {
                        dot += (double) q[(r * heads + h) * headDim + i] * keys[p][kvh * headDim + i];
                    }
                    w[p] = dot * scale;
                    max = Math.max(max, w[p]);
                }
                double sum = 0;
                for (int p = 0; p <= pos; p++) {
                    w[p] = Math.exp(w[p] - max);
                    sum += w[p];
                }
                for (int i = 0; i < headDim; i++) {
                    double expected = 0;
                    for (int p = 0; p <= pos; p++) {
                        expected += w[p] / sum * values[p][kvh * headDim + i];
                    }
                    assertThat((double) got[(r * heads + h) * headDim + i]).isCloseTo(expected, within(1e-5));
                }
            }
        }
    }

    @Test
    void swigluAndAdd() {
        float[] g = randoms(33);
        float[] u = randoms(33);
        Buffer gb = buffer(g);
        Buffer ub = buffer(u);
        backend.swiglu(gb, ub, 33);
        backend.add(gb, ub, 33);
        float[] got = read(gb, 33);
        for (int i = 0; i < 33; i++) {
            double silu = g[i] / (1 + Math.exp(-g[i]));
            assertThat((double) got[i]).isCloseTo(silu * u[i] + u[i], within(1e-6));
        }
    }

    private Tensor tensor(DType type, int columns, int rows) {
        float[] values = randoms(columns * rows);
        MemorySegment data = arena.allocate(type.bytesFor(values.length));
        Quantize.fromFloat(type, values, 0, values.length, data, 0);
        return new Tensor("w", type, new long[] {columns, rows}, data);
    }

    private Tensor f32Tensor(String name, float[] values, int columns, int rows) {
        MemorySegment data = arena.allocate(4L * values.length);
        Quantize.fromFloat(DType.F32, values, 0, values.length, data, 0);
        return new Tensor(name, DType.F32, new long[] {columns, rows}, data);
    }

    private float[] randoms(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) random.nextGaussian();
        }
        return a;
    }

    private Buffer buffer(float[] values) {
        Buffer b = backend.allocate(values.length);
        backend.write(values, 0, b, 0, values.length);
        return b;
    }

    private float[] read(Buffer b, int n) {
        float[] out = new float[n];
        backend.read(b, 0, out, 0, n);
        return out;
    }
}
