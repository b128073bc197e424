package dev.peregrine.synth;

import dev.peregrine.model.Family;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SequencedMap;

/**
 * The hyper-parameters of a Llama-family decoder, enough to lay out its weights: what a synthetic
 * model is made from. The named shapes are those of real models, so that synthetic files cost
 * exactly what the real ones cost to run.
 *
 * @param name           a label ("llama3.2-1b", or "custom")
 * @param dim            embedding width (hidden_size)
 * @param layers         transformer blocks
 * @param heads          query heads; {@code dim / heads} is the head size
 * @param kvHeads        key/value heads (grouped-query attention); must divide {@code heads}
 * @param ffn            feed-forward width (intermediate_size)
 * @param vocab          vocabulary size (rows of the embedding table)
 * @param contextLength  trained context length, as the file states it
 * @param ropeTheta      rope frequency base
 * @param rmsEps         RMS-norm epsilon
 * @param tiedEmbeddings whether the output projection reuses the token embedding (no output.weight)
 * @param headDim        the size of a head; {@code dim / heads} unless the family states its own (Qwen3, Gemma)
 * @param family         which family's tensors, keys and equations (biases, q/k norms, Gemma's
 *                       norms, fused projections): written under its GGUF architecture and HF class
 * @param slidingWindow  0, or the sliding window of the layers the family slides (Mistral and
 *                       Phi-3 all, Gemma 2 every other, Gemma 3 five of six); a GGUF file of a
 *                       Mistral or Phi-3 shape attends to everything, as llama.cpp runs it
 * @param attentionSoftcap 0, or Gemma 2's attention score soft-cap
 * @param finalSoftcap   0, or Gemma 2's logit soft-cap
 */
public record ModelShape(
        String name,
        int dim,
        int layers,
        int heads,
        int kvHeads,
        int ffn,
        int vocab,
        int contextLength,
        float ropeTheta,
        float rmsEps,
        boolean tiedEmbeddings,
        int headDim,
        Family family,
        int slidingWindow,
        float attentionSoftcap,
        float finalSoftcap) {

    /** The shapes of real models, by name, in the order they are listed to users. */
    private static final SequencedMap<String, ModelShape> NAMED = new LinkedHashMap<>();

    static {
        add(new ModelShape("llama3.2-1b", 2048, 16, 32, 8, 8192, 128256, 131072, 500000f, 1e-5f, true, false));
        add(new ModelShape("smollm2-135m", 576, 30, 9, 3, 1536, 49152, 8192, 100000f, 1e-5f, true, false));
        add(new ModelShape("qwen2.5-0.5b", 896, 24, 14, 2, 4864, 151936, 32768, 1000000f, 1e-6f, true, true));
        add(new ModelShape("llama3.1-8b", 4096, 32, 32, 8, 14336, 128256, 131072, 500000f, 1e-5f, false, false));
        add(new ModelShape("qwen3-0.6b", 1024, 28, 16, 8, 3072, 151936, 40960, 1000000f, 1e-6f, true, 128, Family.QWEN3, 0, 0, 0));
        add(new ModelShape("gemma2-2b", 2304, 26, 8, 4, 9216, 256000, 8192, 10000f, 1e-6f, true, 256, Family.GEMMA2, 4096, 50, 30));
        add(new ModelShape("gemma3-1b", 1152, 26, 4, 1, 6912, 262144, 32768, 1000000f, 1e-6f, true, 256, Family.GEMMA3, 512, 0, 0));
        add(new ModelShape("phi3-mini", 3072, 32, 32, 32, 8192, 32064, 4096, 10000f, 1e-5f, false, -1, Family.PHI3, 2047, 0, 0));
        // Small enough to write and run in milliseconds; untied, so the output.weight path is tested too.
        add(new ModelShape("tiny", 64, 3, 4, 2, 160, 512, 2048, 10000f, 1e-5f, false, false));
        // Each family in miniature, with sliding windows shorter than a test's prompt and soft-caps
        // small enough to bend scores and logits of order 1, so that each option changes the result.
        // Qwen3: heads * headDim (128) != dim (64), q/k norms.
        add(new ModelShape("qwen3-tiny", 64, 2, 4, 2, 160, 512, 2048, 1000000f, 1e-6f, false, 32, Family.QWEN3, 0, 0, 0));
        add(new ModelShape("qwen2-tiny", 64, 2, 4, 2, 160, 512, 2048, 1000000f, 1e-6f, false, -1, Family.QWEN2, 0, 0, 0));
        add(new ModelShape("mistral-tiny", 64, 2, 4, 2, 160, 512, 2048, 10000f, 1e-5f, false, -1, Family.LLAMA, 4, 0, 0));
        add(new ModelShape("gemma2-tiny", 64, 3, 4, 2, 160, 512, 2048, 10000f, 1e-6f, true, 32, Family.GEMMA2, 4, 2f, 1.5f));
        // Seven layers: five sliding (rope base 10000), one global (the model's base, scaled), one sliding.
        add(new ModelShape("gemma3-tiny", 64, 7, 4, 2, 160, 512, 2048, 1000000f, 1e-6f, true, 32, Family.GEMMA3, 4, 0, 0));
        add(new ModelShape("phi3-tiny", 64, 2, 4, 4, 160, 512, 2048, 10000f, 1e-5f, false, -1, Family.PHI3, 5, 0, 0));
    }

    private static void add(ModelShape shape) {
        NAMED.put(shape.name(), shape);
    }

    /** A Llama (or, with {@code qkvBias}, Qwen2) shape whose head size is {@code dim / heads}. */
    public ModelShape(String name, int dim, int layers, int heads, int kvHeads, int ffn, int vocab, int contextLength,
                      float ropeTheta, float rmsEps, boolean tiedEmbeddings, boolean qkvBias) {
        this(name, dim, layers, heads, kvHeads, ffn, vocab, contextLength, ropeTheta, rmsEps, tiedEmbeddings, -1,
                qkvBias ? Family.QWEN2 : Family.LLAMA, 0, 0, 0);
    }

    /** @throws IllegalArgumentException naming the first size that does not make a valid decoder */
    public ModelShape {
        check(name != null && !name.isBlank(), "a shape needs a name");
        check(dim > 0, "dim must be positive, got " + dim);
        check(layers > 0, "layers must be positive, got " + layers);
        check(heads > 0, "heads must be positive, got " + heads);
        check(kvHeads > 0, "kv-heads must be positive, got " + kvHeads);
        check(ffn > 0, "ffn must be positive, got " + ffn);
        check(vocab > 0, "vocab must be positive, got " + vocab);
        check(contextLength > 0, "context length must be positive, got " + contextLength);
        if (headDim == -1) { // dim / heads
            check(dim % heads == 0, "heads (" + heads + ") must divide dim (" + dim + ")");
            headDim = dim / heads;
        }
        check(headDim > 0, "the head size must be positive, got " + headDim);
        check(heads % kvHeads == 0, "kv-heads (" + kvHeads + ") must divide heads (" + heads + ")");
        // Rope rotates pairs of elements, so a head has an even size.
        check(headDim % 2 == 0, "the head size " + headDim + " must be even");
        check(ropeTheta > 0 && Float.isFinite(ropeTheta), "rope theta must be positive, got " + ropeTheta);
        check(rmsEps > 0 && Float.isFinite(rmsEps), "rms epsilon must be positive, got " + rmsEps);
        check(family != null, "a shape needs a family");
        check(slidingWindow >= 0, "the sliding window must be positive (or 0 for none), got " + slidingWindow);
        check(attentionSoftcap >= 0 && finalSoftcap >= 0, "soft-caps must be positive (or 0 for none)");
    }

    /** Per-head q/k norms (Qwen3, Gemma 3). */
    public boolean qkNorm() {
        return family.qkNorm();
    }

    /** q/k/v biases (Qwen2). */
    public boolean qkvBias() {
        return family.qkvBias();
    }

    /** The named shape {@code name}. */
    public static ModelShape named(String name) {
        ModelShape shape = NAMED.get(name);
        if (shape == null) {
            throw new IllegalArgumentException("unknown shape '" + name + "' (known: " + String.join(", ", NAMED.keySet()) + ")");
        }
        return shape;
    }

    /** The named shapes, in listing order. */
    public static Map<String, ModelShape> namedShapes() {
        return Collections.unmodifiableMap(NAMED);
    }

    public int queryDim() {
        return heads * headDim;
    }

    public int kvDim() {
        return kvHeads * headDim();
    }

    /** Parameters of the tensors a synthetic model holds. */
    public long parameterCount() {
        long perLayer = 2L * dim                          // attention and FFN norms
                + (family.scaledEmbeddingAndPostNorms() ? 2L * dim : 0) // Gemma's post-norms
                + (qkNorm() ? 2L * headDim : 0)           // q and k norms
                + (qkvBias() ? queryDim() + 2L * kvDim() : 0) // q, k and v biases
                + (long) dim * queryDim() * 2             // q and output projections
                + (long) dim * kvDim() * 2                // k and v projections
                + (long) dim * ffn * 3;                   // gate, up, down
        long embeddings = (long) vocab * dim * (tiedEmbeddings ? 1 : 2);
        return embeddings + layers * perLayer + dim;       // + the output norm
    }

    public ModelShape withVocab(int newVocab) {
        return new ModelShape(name, dim, layers, heads, kvHeads, ffn, newVocab, contextLength, ropeTheta, rmsEps,
                tiedEmbeddings, headDim, family, slidingWindow, attentionSoftcap, finalSoftcap);
    }

    /** One line for people: "llama3.2-1b: dim 2048, 16 layers, 32 heads (8 KV), FFN 8192, vocab 128256, tied". */
    public String describe() {
        return name + ": " + family.ggufArchitecture() + ", dim " + dim + ", " + layers + " layers, " + heads + " heads ("
                + kvHeads + " KV)" + (headDim * heads != dim ? " of " + headDim : "") + (qkNorm() ? ", q/k norms" : "")
                + (qkvBias() ? ", q/k/v biases" : "") + (slidingWindow > 0 ? ", sliding window " + slidingWindow : "")
                + ", FFN " + ffn
                + ", vocab " + vocab + ", context " + contextLength + (tiedEmbeddings ? ", tied embeddings" : "");
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }
}
