package dev.peregrine.spi;

import dev.peregrine.sampling.TopK;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Tensor;

/**
 * A set of kernels plus the memory they work on. The model graph (in {@code dev.peregrine.model})
 * is written once against this interface; a backend decides how each operation runs.
 *
 * <p>Conventions: activations are row-major matrices of floats in {@link Buffer}s,
 * {@code rows x width}, one row per token of the batch. A kernel may assume its buffers are large
 * enough (the graph sizes them) and that output and input buffers do not overlap unless stated.
 * Calls are made from one thread at a time per backend.
 */
public interface Backend extends AutoCloseable {
    /**
     * The largest k {@link #selectCandidates} must support: one candidate per thread of the CUDA
     * backend's {@code pg_top_k} block (SAMPLE_THREADS in native/sampling.cu).
     */
    int MAX_CANDIDATES = 1024;

    /** Human-readable description, e.g. "CPU, 2 threads, Vector API 512-bit". */
    String description();

    /** Makes a weight matrix usable by {@link #matmul}: {@code tensor} is [columns, rows] in ggml order. */
    Weight upload(Tensor tensor);

    /** A zero-filled buffer of {@code floats} floats. */
    Buffer allocate(long floats);

    /**
     * A zero-filled buffer of {@code count} values of {@code type}: F32, or F16 for a KV cache
     * kept in half precision, which {@link #storeKv}, {@link #ropeAndStoreKv}, {@link #attention}
     * and {@link #copy} then accept in place of an F32 cache.
     *
     * @throws IllegalArgumentException if this backend keeps no buffers of that type
     */
    default Buffer allocate(long count, DType type) {
        if (type != DType.F32) {
            throw new IllegalArgumentException(description() + " keeps buffers (and KV caches) in F32 only, not " + type);
        }
        return allocate(count);
    }

    /** Called once per forward step before any kernel, so a device backend can upload the layout. */
    void beginStep(BatchLayout layout);

    /**
     * Whether a step of this layout may stop between two layers while other steps run, and then
     * go on after a second {@link #beginStep} call with its layout (the graph keeps what the next
     * layer reads aside meanwhile). A backend that records a step's kernels to replay them as one
     * says no for the steps it records.
     */
    default boolean stepMayPause(BatchLayout layout) {
        return true;
    }

    /** {@code out[r] = table row layout.tokens[r]} for every token of the step (width = table columns). */
    void embed(Buffer out, Weight table, BatchLayout layout);

    /**
     * {@code out[r] = in[r] / rms(in[r]) * weight}, for {@code rows} rows of {@code width}. {@code out}
     * may be {@code in} (the per-head q/k norm runs in place).
     */
    void rmsNorm(Buffer out, Buffer in, Weight weight, int rows, int width, float eps);

    /**
     * The residual add and the norm that follows it: {@code x += residual}, then
     * {@code out = rmsNorm(x)}, for {@code rows} rows of {@code width}. A GPU backend does both in
     * one pass over the rows; the result must equal {@link #add} then {@link #rmsNorm}.
     */
    default void addRmsNorm(Buffer x, Buffer residual, Buffer out, Weight weight, int rows, int width, float eps) {
        add(x, residual, (long) rows * width);
        rmsNorm(out, x, weight, rows, width, eps);
    }

    /** {@code out[r] = W in[r]}: out is rows x w.rows(), in is rows x w.columns(). */
    void matmul(Buffer out, Buffer in, Weight w, int rows);

    /**
     * {@code outs[i] = weights[i] in} for every i: several products of the same input (a layer's
     * q/k/v projections, its gate and up projections), which a backend may run as one dispatch.
     * The results must equal separate {@link #matmul} calls bit for bit.
     */
    default void matmuls(Buffer[] outs, Buffer in, Weight[] weights, int rows) {
        for (int i = 0; i < weights.length; i++) {
            matmul(outs[i], in, weights[i], rows);
        }
    }

    /**
     * Fills {@code cosSin} with, for every token row r and frequency i, cos and sin of
     * {@code positions[r] * frequencies[i]}: row r holds cos[0..n) then sin[0..n).
     */
    void ropeAngles(Buffer cosSin, float[] frequencies, BatchLayout layout);

    /**
     * Rotates, in place, the first {@code ropeDimensions} elements of each head of {@code x}
     * (rows x heads*headDim) by the angles of its row, pairing adjacent elements (2i, 2i+1) as
     * ggml's "normal" rope does for Llama GGUF files.
     */
    void rope(Buffer x, Buffer cosSin, int rows, int heads, int headDim, int ropeDimensions);

    /**
     * Writes row r of {@code k} and {@code v} ({@code kvHeads} heads of {@code headDim} values) into
     * slot {@code layout.slots[r]} of the caches, rounded to the nearest half when the caches are
     * F16. Where a slot's values lie in a cache is the backend's choice: only this,
     * {@link #ropeAndStoreKv}, {@link #attention} and {@link #copyKvBlock} address them.
     */
    void storeKv(Buffer keyCache, Buffer valueCache, Buffer k, Buffer v, int kvHeads, int headDim, BatchLayout layout);

    /**
     * Copies KV block {@code from} of a layer's key or value cache into block {@code to}
     * (copy-on-write of a shared block): its {@code blockSize} slots of {@code kvHeads} heads of
     * {@code headDim} values. The default copies one range, for a backend that keeps each block's
     * values together, block after block.
     */
    default void copyKvBlock(Buffer cache, int from, int to, int blockSize, int kvHeads, int headDim) {
        long count = (long) blockSize * kvHeads * headDim;
        copy(cache, to * count, cache, from * count, count);
    }

    /**
     * A layer's rope of q ({@code heads} heads) and k ({@code kvHeads} heads) and its KV store, as
     * {@link #rope} of q, {@link #rope} of k, then {@link #storeKv} of the rotated k and of v; a GPU
     * backend does them in one pass. The result must equal the three calls.
     */
    default void ropeAndStoreKv(Buffer q, Buffer k, Buffer v, Buffer cosSin, int rows, int heads, int kvHeads, int headDim,
                                int ropeDimensions, Buffer keyCache, Buffer valueCache, BatchLayout layout) {
        rope(q, cosSin, rows, heads, headDim, ropeDimensions);
        rope(k, cosSin, rows, kvHeads, headDim, ropeDimensions);
        storeKv(keyCache, valueCache, k, v, kvHeads, headDim, layout);
    }

    /**
     * Causal grouped-query attention over the paged cache: for each token row, each query head h
     * attends with KV head {@code h / (heads / kvHeads)} to the positions of the row's sequence up
     * to its own; {@code out} is rows x heads*headDim. A score is {@code scale * q.k}.
     *
     * @param window  0 for every earlier position; else a row at position p attends only to
     *                positions {@code p - window + 1 .. p} (sliding-window attention, as transformers
     *                and llama.cpp count it)
     * @param softcap 0 for none; else each score s becomes {@code softcap * tanh(s / softcap)}
     *                before the softmax (Gemma 2's attention logit soft-capping)
     * @throws IllegalArgumentException if {@code window} is negative or {@code softcap} negative or not finite
     */
    void attention(Buffer out, Buffer q, Buffer keyCache, Buffer valueCache, BatchLayout layout,
                   int heads, int kvHeads, int headDim, float scale, int window, float softcap);

    /** {@code gate[i] = activation(gate[i]) * up[i]} for {@code count} values (SwiGLU, GeGLU). */
    void gatedActivation(Buffer gate, Buffer up, long count, Activation activation);

    /** {@code x[r][i] += bias[i]} for {@code rows} rows as wide as the bias vector (q/k/v biases). */
    void addBias(Buffer x, Weight bias, int rows);

    /** {@code x[i] *= factor} for {@code count} values (Gemma's embedding scale). */
    void scale(Buffer x, long count, float factor);

    /** {@code acc[i] += x[i]} for {@code count} values. */
    void add(Buffer acc, Buffer x, long count);

    /**
     * Copies {@code count} values between buffers of one type (gathering rows, copy-on-write of KV
     * blocks); offsets and count are in values of that type.
     */
    void copy(Buffer dst, long dstOffset, Buffer src, long srcOffset, long count);

    /** Copies {@code count} floats from the host array {@code src} into {@code dst}. */
    void write(float[] src, int srcOffset, Buffer dst, long dstOffset, int count);

    /** Copies {@code count} floats from {@code src} to the host array {@code dst}. */
    void read(Buffer src, long srcOffset, float[] dst, int dstOffset, int count);

    /**
     * Reduces logits rows to their best {@code out.k()} tokens where the logits are, so that only
     * those come back to the host (greedy decoding and top-k sampling need no more). Row r of
     * {@code logits} starts at float {@code r * rowLength}; only its first {@code vocab} logits (token
     * ids {@code 0 .. vocab - 1}) compete. Row r's candidates go to row {@code firstRow + r} of
     * {@code out}, ranked as the host ranks ({@link TopK}): larger logit first, equal logits lower id
     * first, NaN as {@code -Infinity} (and reported as {@code -Infinity}).
     *
     * <p>The default reads each row into a host array that {@code out} keeps and selects there
     * (no allocation once that array has grown): right for backends whose buffers live in host
     * memory. A device backend selects on the device and copies back {@code rows x k} entries.
     *
     * @throws IllegalArgumentException unless {@code out.k() <= vocab <= rowLength} and {@code firstRow + rows <= out.rows()}
     */
    default void selectCandidates(Buffer logits, int rows, int rowLength, int vocab, Candidates out, int firstRow) {
        checkCandidateSelection(rows, rowLength, vocab, out, firstRow);
        float[] row = out.hostRow(vocab);
        for (int r = 0; r < rows; r++) {
            read(logits, (long) r * rowLength, row, 0, vocab);
            TopK.select(row, 0, vocab, out.k(), out.values(), out.ids(), out.offset(firstRow + r));
        }
    }

    /** The argument checks of {@link #selectCandidates}, for implementations. */
    static void checkCandidateSelection(int rows, int rowLength, int vocab, Candidates out, int firstRow) {
        if (out.k() > vocab || vocab > rowLength) {
            throw new IllegalArgumentException("candidate selection needs k <= vocab <= rowLength, got k " + out.k()
                    + ", vocab " + vocab + ", rowLength " + rowLength);
        }
        if (rows < 0 || firstRow < 0 || firstRow > out.rows() - rows) {
            throw new IllegalArgumentException("rows " + firstRow + " .. " + (firstRow + rows) + " are outside the "
                    + out.rows() + " rows of the candidates");
        }
    }

    /** Frees every buffer and weight this backend made. */
    @Override
    void close();
}
