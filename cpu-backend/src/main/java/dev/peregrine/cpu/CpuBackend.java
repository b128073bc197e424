package dev.peregrine.cpu;

import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BatchLayout;
import dev.peregrine.spi.Buffer;
import dev.peregrine.spi.Weight;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Dequant;
import dev.peregrine.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Straightforward CPU kernels: plain Java loops over off-heap memory, split across a fixed
 * {@link WorkerPool}. Weights are read in place from the memory-mapped model file; quantised rows
 * are dequantised into a per-thread scratch row and reused for every token of the batch, so a
 * prompt reads each weight row once.
 */
final class CpuBackend implements Backend {
    private static final Logger LOG = LoggerFactory.getLogger(CpuBackend.class);
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;

    private final Arena arena = Arena.ofShared();
    private final WorkerPool pool;
    /** Per-thread scratch rows (dequantised weights, attention scores), grown on demand. */
    private final float[][] rowScratch;
    private final float[][] scoreScratch;

    CpuBackend(int threads) {
        this.pool = new WorkerPool(threads);
        this.rowScratch = new float[threads][0];
        this.scoreScratch = new float[threads][0];
    }

    @Override
    public String description() {
        return "CPU, " + pool.threads() + " thread" + (pool.threads() == 1 ? "" : "s") + ", scalar kernels";
    }

    @Override
    public Weight upload(Tensor t) {
        long columns = t.rowLength();
        long rows = t.rows();
        if (columns > Integer.MAX_VALUE || rows > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(t + " is too large for the CPU backend");
        }
        MemorySegment data = t.data();
        DType type = t.type();
        if (!t.rowsAreBlockAligned()) {
            // Some old files store quantised blocks that run across row boundaries (ggml cannot read
            // them). Read such a tensor as one flat run of values and keep it as F32 rows.
            LOG.info("{}: rows of {} values are not a whole number of {} blocks; dequantising it flat to F32",
                    t.name(), columns, type);
            float[] all = Dequant.toFloat(t);
            data = arena.allocate((long) all.length * Float.BYTES, 64);
            MemorySegment.copy(all, 0, data, F, 0, all.length);
            type = DType.F32;
        }
        long rowBytes = type.bytesFor(columns);
        float[] vector = null;
        if (rows == 1) {
            vector = new float[(int) columns];
            Dequant.toFloat(type, data, 0, vector, 0, (int) columns);
        }
        return new CpuWeight(t.name(), type, (int) rows, (int) columns, data, rowBytes, vector);
    }

    @Override
    public Buffer allocate(long floats) {
        return new CpuBuffer(arena.allocate(floats * Float.BYTES, 64));
    }

    @Override
    public void beginStep(BatchLayout layout) {
        // Host memory: kernels read the layout directly.
    }

    @Override
    public void embed(Buffer out, Weight table, BatchLayout layout) {
        CpuWeight w = (CpuWeight) table;
        MemorySegment o = seg(out);
        float[] row = rowScratch(0, w.columns());
        for (int r = 0; r < layout.tokenCount; r++) {
            int token = layout.tokens[r];
            if (token < 0 || token >= w.rows()) {
                throw new IllegalArgumentException("token id " + token + " outside the vocabulary of " + w.rows());
            }
            rowToFloat(w, token, row);
            MemorySegment.copy(row, 0, o, F, (long) r * w.columns() * Float.BYTES, w.columns());
        }
    }

    @Override
    public void rmsNorm(Buffer out, Buffer in, Weight weight, int rows, int width, float eps) {
        MemorySegment o = seg(out);
        MemorySegment x = seg(in);
        float[] g = ((CpuWeight) weight).asVector();
        for (int r = 0; r < rows; r++) {
            long base = (long) r * width * Float.BYTES;
            double ss = 0;
            for (int i = 0; i < width; i++) {
                float v = x.get(F, base + i * 4L);
                ss += v * v;
            }
            float scale = (float) (1.0 / Math.sqrt(ss / width + eps));
            for (int i = 0; i < width; i++) {
                o.set(F, base + i * 4L, x.get(F, base + i * 4L) * scale * g[i]);
            }
        }
    }

    @Override
    public void matmul(Buffer out, Buffer in, Weight weight, int rows) {
        CpuWeight w = (CpuWeight) weight;
        MemorySegment o = seg(out);
        MemorySegment x = seg(in);
        int n = w.columns();
        int outWidth = w.rows();
        pool.parallelFor(outWidth, 16, (long) outWidth * n * rows, (start, end, thread) -> {
            float[] row = rowScratch(thread, n);
            for (int j = start; j < end; j++) {
                rowToFloat(w, j, row);
                for (int r = 0; r < rows; r++) {
                    long base = (long) r * n * Float.BYTES;
                    float acc = 0;
                    for (int i = 0; i < n; i++) {
                        acc += row[i] * x.get(F, base + i * 4L);
                    }
                    o.set(F, ((long) r * outWidth + j) * Float.BYTES, acc);
                }
            }
        });
    }

    @Override
    public void ropeAngles(Buffer cosSin, float[] frequencies, BatchLayout layout) {
        MemorySegment cs = seg(cosSin);
        int pairs = frequencies.length;
        for (int r = 0; r < layout.tokenCount; r++) {
            long base = (long) r * 2 * pairs * Float.BYTES;
            int pos = layout.positions[r];
            for (int i = 0; i < pairs; i++) {
                double angle = (double) pos * frequencies[i];
                cs.set(F, base + i * 4L, (float) Math.cos(angle));
                cs.set(F, base + (pairs + i) * 4L, (float) Math.sin(angle));
            }
        }
    }

    @Override
    public void rope(Buffer x, Buffer cosSin, int rows, int heads, int headDim, int ropeDimensions) {
        MemorySegment v = seg(x);
        MemorySegment cs = seg(cosSin);
        int pairs = ropeDimensions / 2;
        for (int r = 0; r < rows; r++) {
            long csBase = (long) r * 2 * pairs * Float.BYTES;
            for (int h = 0; h < heads; h++) {
                long base = ((long) r * heads + h) * headDim * Float.BYTES;
                for (int i = 0; i < pairs; i++) {
                    float c = cs.get(F, csBase + i * 4L);
                    float s = cs.get(F, csBase + (pairs + i) * 4L);
                    long a = base + 2L * i * Float.BYTES;
                    float x0 = v.get(F, a);
                    float x1 = v.get(F, a + 4);
                    v.set(F, a, x0 * c - x1 * s);
                    v.set(F, a + 4, x0 * s + x1 * c);
                }
            }
        }
    }

    @Override
    public void storeKv(Buffer keyCache, Buffer valueCache, Buffer k, Buffer v, int width, BatchLayout layout) {
        long rowBytes = (long) width * Float.BYTES;
        for (int r = 0; r < layout.tokenCount; r++) {
            long slot = layout.slots[r];
            MemorySegment.copy(seg(k), r * rowBytes, seg(keyCache), slot * rowBytes, rowBytes);
            MemorySegment.copy(seg(v), r * rowBytes, seg(valueCache), slot * rowBytes, rowBytes);
        }
    }

    @Override
    public void attention(Buffer out, Buffer q, Buffer keyCache, Buffer valueCache, BatchLayout layout,
                          int heads, int kvHeads, int headDim, float scale) {
        MemorySegment o = seg(out);
        MemorySegment qs = seg(q);
        MemorySegment kc = seg(keyCache);
        MemorySegment vc = seg(valueCache);
        int group = heads / kvHeads;
        int kvWidth = kvHeads * headDim;
        long work = 0;
        for (int r = 0; r < layout.tokenCount; r++) {
            work += (long) (layout.positions[r] + 1) * heads * headDim * 2;
        }
        pool.parallelFor(layout.tokenCount * heads, 1, work, (start, end, thread) -> {
            for (int item = start; item < end; item++) {
                int r = item / heads;
                int h = item % heads;
                int seq = layout.tokenSequence[r];
                int length = layout.positions[r] + 1;
                float[] scores = scoreScratch(thread, length);
                long qBase = ((long) r * heads + h) * headDim * Float.BYTES;
                long kvOffset = (long) (h / group) * headDim * Float.BYTES;
                float max = Float.NEGATIVE_INFINITY;
                for (int p = 0; p < length; p++) {
                    long kBase = (long) layout.slotOf(seq, p) * kvWidth * Float.BYTES + kvOffset;
                    float dot = 0;
                    for (int i = 0; i < headDim; i++) {
                        dot += qs.get(F, qBase + i * 4L) * kc.get(F, kBase + i * 4L);
                    }
                    scores[p] = dot * scale;
                    max = Math.max(max, scores[p]);
                }
                float sum = 0;
                for (int p = 0; p < length; p++) {
                    scores[p] = (float) Math.exp(scores[p] - max);
                    sum += scores[p];
                }
                long oBase = qBase;
                for (int i = 0; i < headDim; i++) {
                    o.set(F, oBase + i * 4L, 0f);
                }
                for (int p = 0; p < length; p++) {
                    float a = scores[p] / sum;
                    long vBase = (long) layout.slotOf(seq, p) * kvWidth * Float.BYTES + kvOffset;
                    for (int i = 0; i < headDim; i++) {
                        long at = oBase + i * 4L;
                        o.set(F, at, o.get(F, at) + a * vc.get(F, vBase + i * 4L));
                    }
                }
            }
        });
    }

    @Override
    public void swiglu(Buffer gate, Buffer up, long count) {
        MemorySegment g = seg(gate);
        MemorySegment u = seg(up);
        for (long i = 0; i < count; i++) {
            float x = g.get(F, i * 4);
            g.set(F, i * 4, x / (1f + (float) Math.exp(-x)) * u.get(F, i * 4));
        }
    }

    @Override
    public void add(Buffer acc, Buffer x, long count) {
        MemorySegment a = seg(acc);
        MemorySegment b = seg(x);
        for (long i = 0; i < count; i++) {
            a.set(F, i * 4, a.get(F, i * 4) + b.get(F, i * 4));
        }
    }

    @Override
    public void copy(Buffer dst, long dstOffset, Buffer src, long srcOffset, long count) {
        MemorySegment.copy(seg(src), srcOffset * Float.BYTES, seg(dst), dstOffset * Float.BYTES, count * Float.BYTES);
    }

    @Override
    public void write(float[] src, int srcOffset, Buffer dst, long dstOffset, int count) {
        MemorySegment.copy(src, srcOffset, seg(dst), F, dstOffset * Float.BYTES, count);
    }

    @Override
    public void read(Buffer src, long srcOffset, float[] dst, int dstOffset, int count) {
        MemorySegment.copy(seg(src), F, srcOffset * Float.BYTES, dst, dstOffset, count);
    }

    @Override
    public void close() {
        pool.close();
        arena.close();
    }

    /** Row {@code r} of a weight as floats. */
    private static void rowToFloat(CpuWeight w, int r, float[] dst) {
        long first = (long) r * w.columns();
        Dequant.toFloat(w.type(), w.data(), first, dst, 0, w.columns());
    }

    private float[] rowScratch(int thread, int n) {
        if (rowScratch[thread].length < n) {
            rowScratch[thread] = new float[n];
        }
        return rowScratch[thread];
    }

    private float[] scoreScratch(int thread, int n) {
        if (scoreScratch[thread].length < n) {
            scoreScratch[thread] = new float[Math.max(n, scoreScratch[thread].length * 2)];
        }
        return scoreScratch[thread];
    }

    private static MemorySegment seg(Buffer b) {
        return ((CpuBuffer) b).segment();
    }

}
