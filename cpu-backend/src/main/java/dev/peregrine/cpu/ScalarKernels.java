package dev.peregrine.cpu;

import dev.peregrine.spi.Activation;
import dev.peregrine.spi.BatchLayout;
import dev.peregrine.tensor.Dequant;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The fallback kernel set: straightforward loops over off-heap memory, used when the JVM runs
 * without {@code jdk.incubator.vector}. Quantised weight rows are dequantised into a per-thread row
 * and reused for every token of the batch, so a prompt still reads each weight row once.
 */
final class ScalarKernels implements Kernels {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;

    @Override
    public String description() {
        return "scalar kernels";
    }

    @Override
    public void prepareMatmul(MatmulInput input, CpuWeight[] weights, int count, MemorySegment x, int firstToken,
                              int tokens) {
        input.x = x;
        input.firstToken = firstToken;
        input.columns = weights[0].columns();
    }

    @Override
    public void matmul(MatmulInput input, CpuWeight w, MemorySegment out, int tokens, int rowStart, int rowEnd,
                       ThreadScratch scratch) {
        MemorySegment x = input.x;
        int n = w.columns();
        int outWidth = w.rows();
        float[] row = scratch.row(n);
        for (int j = rowStart; j < rowEnd; j++) {
            Dequant.toFloat(w.type(), w.data(), (long) j * n, row, 0, n);
            for (int r = input.firstToken; r < input.firstToken + tokens; r++) {
                long base = (long) r * n * Float.BYTES;
                float acc = 0;
                for (int i = 0; i < n; i++) {
                    acc += row[i] * x.get(F, base + i * 4L);
                }
                out.set(F, ((long) r * outWidth + j) * Float.BYTES, acc);
            }
        }
    }

    @Override
    public void embedRow(CpuWeight w, int row, MemorySegment out, long outIndex, ThreadScratch scratch) {
        float[] values = scratch.row(w.columns());
        Dequant.toFloat(w.type(), w.data(), (long) row * w.columns(), values, 0, w.columns());
        MemorySegment.copy(values, 0, out, F, outIndex * Float.BYTES, w.columns());
    }

    @Override
    public void rmsNorm(MemorySegment out, MemorySegment in, float[] weight, int width, float eps, int rowStart, int rowEnd,
                        ThreadScratch scratch) {
        for (int r = rowStart; r < rowEnd; r++) {
            long base = (long) r * width * Float.BYTES;
            double ss = 0;
            for (int i = 0; i < width; i++) {
                float v = in.get(F, base + i * 4L);
                ss += v * v;
            }
            float scale = (float) (1.0 / Math.sqrt(ss / width + eps));
            for (int i = 0; i < width; i++) {
                out.set(F, base + i * 4L, in.get(F, base + i * 4L) * scale * weight[i]);
            }
        }
    }

    @Override
    public void rope(MemorySegment x, MemorySegment cosSin, int heads, int headDim, int ropeDimensions, int rowStart,
                     int rowEnd, ThreadScratch scratch) {
        int pairs = ropeDimensions / 2;
        for (int r = rowStart; r < rowEnd; r++) {
            long csBase = (long) r * 2 * pairs * Float.BYTES;
            for (int h = 0; h < heads; h++) {
                long base = ((long) r * heads + h) * headDim * Float.BYTES;
                for (int i = 0; i < pairs; i++) {
                    float c = cosSin.get(F, csBase + i * 4L);
                    float s = cosSin.get(F, csBase + (pairs + i) * 4L);
                    long a = base + 2L * i * Float.BYTES;
                    float x0 = x.get(F, a);
                    float x1 = x.get(F, a + 4);
                    x.set(F, a, x0 * c - x1 * s);
                    x.set(F, a + 4, x0 * s + x1 * c);
                }
            }
        }
    }

    @Override
    public void attention(AttentionArgs a, int itemStart, int itemEnd, ThreadScratch scratch) {
        BatchLayout layout = a.layout;
        int headDim = a.headDim;
        int group = a.heads / a.kvHeads;
        for (int item = itemStart; item < itemEnd; item++) {
            int r = item / a.heads;
            int h = item % a.heads;
            int seq = layout.tokenSequence[r];
            // Positions first .. position: all of them, or the last `window`.
            int first = a.firstAttended(layout.positions[r]);
            int length = layout.positions[r] + 1 - first;
            float[] scores = scratch.scores(length);
            long qBase = ((long) r * a.heads + h) * headDim * Float.BYTES;
            float max = Float.NEGATIVE_INFINITY;
            for (int p = 0; p < length; p++) {
                float score = a.score(a.dot(qBase, layout.slotOf(seq, first + p), h / group));
                scores[p] = score;
                max = Math.max(max, score);
            }
            float sum = 0;
            for (int p = 0; p < length; p++) {
                scores[p] = (float) Math.exp(scores[p] - max);
                sum += scores[p];
            }
            for (int i = 0; i < headDim; i++) {
                a.out.set(F, qBase + i * 4L, 0f);
            }
            for (int p = 0; p < length; p++) {
                float weight = scores[p] / sum;
                long vBase = a.valueIndex(layout.slotOf(seq, first + p), h / group);
                for (int i = 0; i < headDim; i++) {
                    long at = qBase + i * 4L;
                    a.out.set(F, at, a.out.get(F, at) + weight * a.value(vBase + i));
                }
            }
        }
    }

    /** tanh-GELU's constants: {@code 2 sqrt(2/pi)} and the cubic term's 0.044715 (shared with the vector kernels). */
    static final float GELU_SCALE = (float) (2 * Math.sqrt(2 / Math.PI));
    static final float GELU_CUBIC = 0.044715f;

    @Override
    public void gatedActivation(MemorySegment gate, MemorySegment up, long from, long to, Activation activation) {
        boolean gelu = activation == Activation.GELU_TANH;
        for (long i = from; i < to; i++) {
            float x = gate.get(F, i * 4);
            // Both as x * sigmoid(u); for GELU 0.5 (1 + tanh(z)) = sigmoid(2z).
            float u = gelu ? Math.fma(x * x * x, GELU_CUBIC, x) * GELU_SCALE : x;
            gate.set(F, i * 4, x / (1f + (float) Math.exp(-u)) * up.get(F, i * 4));
        }
    }

    @Override
    public void add(MemorySegment acc, MemorySegment x, long from, long to) {
        for (long i = from; i < to; i++) {
            acc.set(F, i * 4, acc.get(F, i * 4) + x.get(F, i * 4));
        }
    }
}
