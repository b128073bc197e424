package dev.peregrine.model;

import dev.peregrine.kv.KvCache;
import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BatchLayout;
import dev.peregrine.spi.Buffer;
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
 * thread-safe: the engine runs one step at a time.
 */
public final class LlamaGraph {
    /** Rows of logits computed per output projection, to bound the logits buffer for big vocabularies. */
    static final int LOGIT_ROWS_PER_CHUNK = 16;

    private final LlamaConfig c;
    private final LlamaWeights w;
    private final Backend backend;
    private final KvCache kv;
    private final int maxTokens;
    private final float[] ropeFrequencies;
    /** Gemma 3's sliding layers' rope (another base, no scaling), or null when every layer ropes alike. */
    private final float[] slidingRopeFrequencies;
    private final float attentionScale;
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
        this.slidingRopeFrequencies = c.slidingRopeTheta() > 0
                ? RopeScaling.frequencies(c.slidingRopeTheta(), c.ropeDimensions(), RopeScaling.NONE, null) : null;
        // YaRN multiplies cos and sin by m, so every rotated q and k by m, and each score q.k by m^2.
        // With the whole head rotated (LlamaConfig checks it) that is the same as m^2 in the
        // attention scale, and the rope kernels stay as they are.
        double m = c.ropeScaling().attentionFactor();
        this.attentionScale = (float) (m * m * c.queryScale());
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
        int n = layout.tokenCount;
        if (n <= 0 || n > maxTokens) {
            throw new IllegalArgumentException("a step holds 1.." + maxTokens + " tokens, got " + n);
        }
        if (out.length < layout.logitCount * c.vocabularySize()) {
            throw new IllegalArgumentException("logits array too small for " + layout.logitCount + " rows");
        }
        backend.beginStep(layout);
        backend.embed(x, w.tokenEmbedding(), layout);
        if (c.family().scaledEmbeddingAndPostNorms()) {
            backend.scale(x, (long) n * c.dim(), embeddingScale);
        }
        backend.ropeAngles(cosSin, ropeFrequencies, layout);
        if (slidingCosSin != null) {
            backend.ropeAngles(slidingCosSin, slidingRopeFrequencies, layout);
        }

        for (int l = 0; l < c.layers(); l++) {
            LlamaWeights.Layer layer = w.layers()[l];

            // Attention block: x += Wo · attention(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x))
            backend.rmsNorm(xb, x, layer.attentionNorm(), n, c.dim(), c.rmsEps());
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
            Buffer angles = c.usesSlidingRope(l) ? slidingCosSin : cosSin;
            backend.rope(q, angles, n, c.heads(), c.headDim(), c.ropeDimensions());
            backend.rope(k, angles, n, c.kvHeads(), c.headDim(), c.ropeDimensions());
            backend.storeKv(kv.keys(l), kv.values(l), k, v, c.kvDim(), layout);
            backend.attention(att, q, kv.keys(l), kv.values(l), layout, c.heads(), c.kvHeads(), c.headDim(), attentionScale,
                    c.window(l), c.attentionSoftcap());
            backend.matmul(proj, att, layer.wo(), n);
            if (layer.postAttentionNorm() != null) {
                backend.rmsNorm(proj, proj, layer.postAttentionNorm(), n, c.dim(), c.rmsEps());
            }
            backend.add(x, proj, (long) n * c.dim());

            // Feed-forward block (SwiGLU, or GeGLU): x += W2 · (act(W1·norm(x)) * W3·norm(x))
            backend.rmsNorm(xb, x, layer.ffnNorm(), n, c.dim(), c.rmsEps());
            backend.matmuls(gateUp, xb, gateUpWeights[l], n);
            backend.gatedActivation(gate, up, (long) n * c.ffnDim(), c.family().activation());
            backend.matmul(proj, gate, layer.down(), n);
            if (layer.postFfnNorm() != null) {
                backend.rmsNorm(proj, proj, layer.postFfnNorm(), n, c.dim(), c.rmsEps());
            }
            backend.add(x, proj, (long) n * c.dim());
        }

        // Only the wanted rows go through the final norm and the (large) output projection.
        int total = layout.logitCount;
        for (int start = 0; start < total; start += LOGIT_ROWS_PER_CHUNK) {
            int rows = Math.min(LOGIT_ROWS_PER_CHUNK, total - start);
            gatherRows(layout, start, rows);
            backend.rmsNorm(lastNormed, lastRows, w.outputNorm(), rows, c.dim(), c.rmsEps());
            backend.matmul(logits, lastNormed, w.output(), rows);
            backend.read(logits, 0, out, start * c.vocabularySize(), rows * c.vocabularySize());
        }
        float cap = c.finalSoftcap();
        if (cap > 0) {
            // Gemma 2: logits bounded to (-cap, cap). StrictMath: the same bits whatever the JIT does.
            for (int i = 0, end = total * c.vocabularySize(); i < end; i++) {
                out[i] = cap * (float) StrictMath.tanh(out[i] / cap);
            }
        }
    }

    private void gatherRows(BatchLayout layout, int start, int rows) {
        for (int i = 0; i < rows; i++) {
            int row = layout.logitRows[start + i];
            backend.copy(lastRows, (long) i * c.dim(), x, (long) row * c.dim(), c.dim());
        }
    }
}
