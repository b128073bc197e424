package dev.peregrine.model;

import dev.peregrine.kv.KvCache;
import dev.peregrine.sampling.TopK;
import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BatchLayout;
import dev.peregrine.spi.Buffer;
import dev.peregrine.spi.Candidates;
import dev.peregrine.spi.Weight;

/**
 * The Llama forward pass over one ragged batch, written once against the {@link Backend} kernels.
 * Reads top to bottom like llama2.c's {@code forward}: embed, then per layer attention and
 * feed-forward with pre-norms and residuals, then the final norm and the output projection for
 * the rows whose logits are wanted. What the other families change is a condition on the config
 * at the place it happens (see {@link Family}): q/k/v biases, q/k norms, Gemma's embedding scale,
 * post-norms, GeGLU and soft-caps, per-layer sliding windows and rope bases.
 *
 * <p>Holds the scratch buffers for up to {@code maxTokens} tokens per step, allocated once. Not
 * thread-safe: the engine runs one step at a time (or one inside another's {@link Pause}, on the
 * same thread).
 */
public final class LlamaGraph {
    /** Rows of logits computed per output projection, to bound the logits buffer for big vocabularies. */
    static final int LOGIT_ROWS_PER_CHUNK = 16;

    /**
     * Other work a step lets run between two of its layers (the engine's steps for requests that
     * arrived during a long prefill step). It may run forward steps on this graph: the paused
     * step's residual stream is saved around it and its layout set up again afterwards, so the
     * paused step's results do not change.
     */
    public interface Pause {
        /** Whether to pause now, after a layer; asked between every two layers, so it must be cheap. */
        boolean wanted();

        /** The work to do in the pause, on the thread running the step. */
        void run();
    }

    private final LlamaConfig c;
    private final LlamaWeights w;
    private final Backend backend;
    private final KvCache kv;
    private final int maxTokens;
    private final float[] ropeFrequencies;
    /**
     * The sliding layers' rope when their base differs (Gemma 3's: base 10000, no scaling; another
     * family's stated rope.freq_base_swa, scaled as the others), or null when every layer ropes alike.
     */
    private final float[] slidingRopeFrequencies;
    private final float attentionScale;
    /** The sliding layers' scale: Gemma 3's rope is unscaled there, so no YaRN factor (llama.cpp: freq_scale_swa 1). */
    private final float slidingAttentionScale;
    /** Gemma multiplies the embeddings by sqrt(dim). */
    private final float embeddingScale;

    private final Buffer x;       // residual stream      [tokens, dim]
    private final Buffer xb;      // normed input         [tokens, dim]
    private final Buffer q;       // queries              [tokens, heads * headDim]
    private final Buffer k;       // keys                 [tokens, kvHeads * headDim]
    private final Buffer v;       // values               [tokens, kvHeads * headDim]
    private final Buffer att;     // attention output     [tokens, heads * headDim]
    private final Buffer proj;    // projection output    [tokens, dim]
    private final Buffer gate;    // FFN gate             [tokens, ffn]
    private final Buffer up;      // FFN up               [tokens, ffn]
    private final Buffer cosSin;  // rope angles          [tokens, ropeDims]
    private final Buffer slidingCosSin; // the sliding layers' angles, when they differ
    private final Buffer lastRows;   // rows whose logits are wanted [chunk, dim]
    private final Buffer lastNormed; // the same after the final norm
    private final Buffer logits;     // [chunk, vocab]
    // The paused step's residual stream and its normed copy, allocated at the first pause.
    private Buffer pausedX;
    private Buffer pausedXb;
    // Products of one input, grouped so that a backend can run each group as one dispatch.
    private final Buffer[] qkv;
    private final Buffer[] gateUp;
    private final Weight[][] qkvWeights;
    private final Weight[][] gateUpWeights;

    public LlamaGraph(LlamaConfig c, LlamaWeights w, Backend backend, KvCache kv, int maxTokens) {
        this.c = c;
        this.w = w;
        this.backend = backend;
        this.kv = kv;
        this.maxTokens = maxTokens;
        // Fixed per model: the angles of a token depend on its position only (batch invariance).
        this.ropeFrequencies = RopeScaling.frequencies(c.ropeTheta(), c.ropeDimensions(), c.ropeScaling(), w.ropeDivisors());
        // Gemma 3's local layers rope unscaled; another family's sliding layers, with their own base
        // (rope.freq_base_swa), scale as the others (llama.cpp: rope_freq_scale_train_swa).
        boolean slidingUnscaled = c.family() == Family.GEMMA3;
        this.slidingRopeFrequencies = c.slidingRopeTheta() <= 0 ? null : RopeScaling.frequencies(c.slidingRopeTheta(),
                c.ropeDimensions(), slidingUnscaled ? RopeScaling.NONE : c.ropeScaling(), slidingUnscaled ? null : w.ropeDivisors());
        // YaRN multiplies cos and sin by m, so every rotated q and k by m, and each score q.k by m^2.
        // With the whole head rotated (LlamaConfig checks it) that is the same as m^2 in the
        // attention scale, and the rope kernels stay as they are.
        double m = c.ropeScaling().attentionFactor();
        this.attentionScale = (float) (m * m * c.queryScale());
        this.slidingAttentionScale = slidingUnscaled ? (float) c.queryScale() : attentionScale;
        this.embeddingScale = (float) Math.sqrt(c.dim());
        long t = maxTokens;
        x = backend.allocate(t * c.dim());
        xb = backend.allocate(t * c.dim());
        q = backend.allocate(t * c.queryDim());
        k = backend.allocate(t * c.kvDim());
        v = backend.allocate(t * c.kvDim());
        att = backend.allocate(t * c.queryDim());
        proj = backend.allocate(t * c.dim());
        gate = backend.allocate(t * c.ffnDim());
        up = backend.allocate(t * c.ffnDim());
        cosSin = backend.allocate(t * c.ropeDimensions());
        slidingCosSin = slidingRopeFrequencies == null ? null : backend.allocate(t * c.ropeDimensions());
        lastRows = backend.allocate((long) LOGIT_ROWS_PER_CHUNK * c.dim());
        lastNormed = backend.allocate((long) LOGIT_ROWS_PER_CHUNK * c.dim());
        logits = backend.allocate((long) LOGIT_ROWS_PER_CHUNK * c.vocabularySize());
        qkv = new Buffer[] {q, k, v};
        gateUp = new Buffer[] {gate, up};
        qkvWeights = new Weight[c.layers()][];
        gateUpWeights = new Weight[c.layers()][];
        for (int l = 0; l < c.layers(); l++) {
            LlamaWeights.Layer layer = w.layers()[l];
            qkvWeights[l] = new Weight[] {layer.wq(), layer.wk(), layer.wv()};
            gateUpWeights[l] = new Weight[] {layer.gate(), layer.up()};
        }
    }

    public int maxTokens() {
        return maxTokens;
    }

    /**
     * Runs the batch and writes the logits of {@code layout.logitRows} into {@code out}, one row
     * of {@code vocabularySize} floats each, in that order. The KV cache slots named by the
     * layout must already belong to their sequences.
     */
    public void forward(BatchLayout layout, float[] out) {
        forward(layout, out, null);
    }

    /** The model's layers: the points between which a step may pause. */
    public int layers() {
        return c.layers();
    }

    /** {@link #forward(BatchLayout, float[])}, letting {@code pause} (if not null) run between layers. */
    public void forward(BatchLayout layout, float[] out, Pause pause) {
        if (out.length < layout.logitCount * c.vocabularySize()) {
            throw new IllegalArgumentException("logits array too small for " + layout.logitCount + " rows");
        }
        run(layout, pause);
        int total = layout.logitCount;
        for (int start = 0; start < total; start += LOGIT_ROWS_PER_CHUNK) {
            int rows = projectLogits(layout, start);
            backend.read(logits, 0, out, start * c.vocabularySize(), rows * c.vocabularySize());
        }
        if (c.finalSoftcap() > 0) {
            for (int i = 0, end = total * c.vocabularySize(); i < end; i++) {
                out[i] = softcap(out[i]);
            }
        }
    }

    /**
     * Runs the batch as {@link #forward} does but leaves the logits on the backend: for each row of
     * {@code layout.logitRows}, in that order, {@code out} receives its best {@code out.k()} tokens
     * among the first {@code vocab} ids, ranked, with the logits {@link #forward} would give them
     * (Gemma 2's final soft-cap included). A device backend thereby copies back {@code k} entries
     * per row instead of the vocabulary.
     *
     * <p>The soft-cap {@code cap * tanh(v / cap)} is monotonic, so it is applied to the candidates
     * after the selection; where it rounds neighbouring logits to the same float the candidates are
     * ranked again (equal values, lower id first), as the host ranks the capped row. What this
     * cannot see is a token just outside the k that the cap makes equal to the last candidate and
     * that has the lower id: {@link #forward} would rank it first among equals. That takes two
     * logits within a rounding of each other across the k-th place. (Nor does it tell NaN from
     * {@code -Infinity}: both become {@code -cap} here, where {@link #forward} leaves NaN, which
     * matters only for rows with fewer than k finite logits.)
     *
     * @param vocab the ids that may be chosen (a tokenizer may be smaller than a padded embedding table)
     * @param out   sized by the caller ({@link Candidates#reset}) for at least {@code layout.logitCount} rows
     */
    public void forwardCandidates(BatchLayout layout, int vocab, Candidates out) {
        forwardCandidates(layout, vocab, out, null);
    }

    /** {@link #forwardCandidates(BatchLayout, int, Candidates)}, letting {@code pause} (if not null) run between layers. */
    public void forwardCandidates(BatchLayout layout, int vocab, Candidates out, Pause pause) {
        if (out.rows() < layout.logitCount) {
            throw new IllegalArgumentException("candidates sized for " + out.rows() + " rows, the step has "
                    + layout.logitCount);
        }
        if (vocab < 1 || vocab > c.vocabularySize()) {
            throw new IllegalArgumentException("vocab must be in 1.." + c.vocabularySize() + ", got " + vocab);
        }
        run(layout, pause);
        int total = layout.logitCount;
        for (int start = 0; start < total; start += LOGIT_ROWS_PER_CHUNK) {
            int rows = projectLogits(layout, start);
            backend.selectCandidates(logits, rows, c.vocabularySize(), vocab, out, start);
        }
        if (c.finalSoftcap() > 0) {
            float[] values = out.values();
            for (int row = 0; row < total; row++) {
                int from = out.offset(row);
                for (int j = from; j < from + out.k(); j++) {
                    values[j] = softcap(values[j]);
                }
                TopK.rank(values, out.ids(), from, out.k());
            }
        }
    }

    /**
     * Everything up to the final norm: embeddings, then every layer, into the residual stream
     * {@link #x}; between two layers, {@code pause} may run other steps (see {@link Pause}).
     */
    private void run(BatchLayout layout, Pause pause) {
        int n = layout.tokenCount;
        if (n <= 0 || n > maxTokens) {
            throw new IllegalArgumentException("a step holds 1.." + maxTokens + " tokens, got " + n);
        }
        if (pause != null && !backend.stepMayPause(layout)) {
            pause = null;
        }
        beginStep(layout);
        backend.embed(x, w.tokenEmbedding(), layout);
        if (c.family().scaledEmbeddingAndPostNorms()) {
            backend.scale(x, (long) n * c.dim(), embeddingScale);
        }

        // Each residual add below also computes the norm of x that the next block needs
        // (Backend.addRmsNorm: one pass on a GPU); the first layer's norm comes first.
        backend.rmsNorm(xb, x, w.layers()[0].attentionNorm(), n, c.dim(), c.rmsEps());
        for (int l = 0; l < c.layers(); l++) {
            LlamaWeights.Layer layer = w.layers()[l];

            // Attention block: x += Wo · attention(rope(Wq·xb), rope(Wk·xb), Wv·xb), xb = norm(x)
            backend.matmuls(qkv, xb, qkvWeights[l], n);
            if (layer.qBias() != null) {
                backend.addBias(q, layer.qBias(), n);
                backend.addBias(k, layer.kBias(), n);
                backend.addBias(v, layer.vBias(), n);
            }
            if (layer.qNorm() != null) {
                // Qwen3, Gemma 3: each head of q and k RMS-normed before rope (rows of headDim, in place).
                backend.rmsNorm(q, q, layer.qNorm(), n * c.heads(), c.headDim(), c.rmsEps());
                backend.rmsNorm(k, k, layer.kNorm(), n * c.kvHeads(), c.headDim(), c.rmsEps());
            }
            boolean slidingRope = c.usesSlidingRope(l);
            Buffer angles = slidingRope ? slidingCosSin : cosSin;
            // q and k rotated, k and v stored in the layer's KV cache (one pass on a GPU)
            backend.ropeAndStoreKv(q, k, v, angles, n, c.heads(), c.kvHeads(), c.headDim(), c.ropeDimensions(), kv.keys(l),
                    kv.values(l), layout);
            backend.attention(att, q, kv.keys(l), kv.values(l), layout, c.heads(), c.kvHeads(), c.headDim(),
                    slidingRope ? slidingAttentionScale : attentionScale, c.window(l), c.attentionSoftcap());
            backend.matmul(proj, att, layer.wo(), n);
            if (layer.postAttentionNorm() != null) {
                backend.rmsNorm(proj, proj, layer.postAttentionNorm(), n, c.dim(), c.rmsEps());
            }
            backend.addRmsNorm(x, proj, xb, layer.ffnNorm(), n, c.dim(), c.rmsEps()); // x += proj; xb = ffnNorm(x)

            // Feed-forward block (SwiGLU, or GeGLU): x += W2 · (act(W1·xb) * W3·xb)
            backend.matmuls(gateUp, xb, gateUpWeights[l], n);
            backend.gatedActivation(gate, up, (long) n * c.ffnDim(), c.family().activation());
            backend.matmul(proj, gate, layer.down(), n);
            if (layer.postFfnNorm() != null) {
                backend.rmsNorm(proj, proj, layer.postFfnNorm(), n, c.dim(), c.rmsEps());
            }
            if (l + 1 < c.layers()) {
                backend.addRmsNorm(x, proj, xb, w.layers()[l + 1].attentionNorm(), n, c.dim(), c.rmsEps());
                if (pause != null && pause.wanted()) {
                    pauseBetweenLayers(layout, pause);
                }
            } else {
                backend.add(x, proj, (long) n * c.dim()); // the output norm runs on the rows that need logits
            }
        }
    }

    /** Sets the backend up for a step of this layout: what every layer reads besides x and the cache. */
    private void beginStep(BatchLayout layout) {
        backend.beginStep(layout);
        backend.ropeAngles(cosSin, ropeFrequencies, layout);
        if (slidingCosSin != null) {
            backend.ropeAngles(slidingCosSin, slidingRopeFrequencies, layout);
        }
    }

    /**
     * Runs {@code pause} between two layers of the step of {@code layout}: x and xb (what the next
     * layer reads) are kept aside meanwhile, the rest of the scratch is rewritten by each layer
     * anyway, and the angles are the same function of the positions; the KV cache slots of this
     * step belong to its sequences, which the pause must not run.
     */
    private void pauseBetweenLayers(BatchLayout layout, Pause pause) {
        long count = (long) layout.tokenCount * c.dim();
        if (pausedX == null) {
            pausedX = backend.allocate((long) maxTokens * c.dim());
            pausedXb = backend.allocate((long) maxTokens * c.dim());
        }
        backend.copy(pausedX, 0, x, 0, count);
        backend.copy(pausedXb, 0, xb, 0, count);
        pause.run();
        beginStep(layout);
        backend.copy(x, 0, pausedX, 0, count);
        backend.copy(xb, 0, pausedXb, 0, count);
    }

    /**
     * The logits of the wanted rows from {@code start} on, at most {@link #LOGIT_ROWS_PER_CHUNK},
     * into {@link #logits} (before any soft-cap): only those rows go through the final norm and the
     * (large) output projection. Returns how many rows it computed.
     */
    private int projectLogits(BatchLayout layout, int start) {
        int rows = Math.min(LOGIT_ROWS_PER_CHUNK, layout.logitCount - start);
        for (int i = 0; i < rows; i++) {
            int row = layout.logitRows[start + i];
            backend.copy(lastRows, (long) i * c.dim(), x, (long) row * c.dim(), c.dim());
        }
        backend.rmsNorm(lastNormed, lastRows, w.outputNorm(), rows, c.dim(), c.rmsEps());
        backend.matmul(logits, lastNormed, w.output(), rows);
        return rows;
    }

    /** Gemma 2: a logit bounded to (-cap, cap). StrictMath: the same bits whatever the JIT does. */
    private float softcap(float logit) {
        float cap = c.finalSoftcap();
        return cap * (float) StrictMath.tanh(logit / cap);
    }
}
