package dev.peregrine.it;

import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.gguf.GgufMetadata;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Collections;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.Optional;
import java.util.Set;

/**
 * A deliberately naive, test-only decoder forward pass in double precision, used as the ground
 * truth for Peregrine's real forward pass. It shares no code with the real path beyond reading the
 * GGUF file: it reads the hyper-parameters from the metadata itself, dequantises every tensor itself
 * (ggml's definitions of F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL and
 * IQ4_XS) and computes everything with plain
 * loops over {@code double}s. One token at a time, with its own full-precision KV cache.
 *
 * <p>Files are read as llama.cpp's convert_hf_to_gguf.py writes them and as llama.cpp's
 * src/llama-model.cpp and src/models/*.cpp evaluate them, checked against Hugging Face transformers'
 * modeling_*.py; where the two disagree the comment at that place says so.
 *
 * <p>Conventions (ggml): a tensor of shape {@code [in, out]} holds {@code out} rows of {@code in}
 * values; {@code y[o] = sum_i W[o*in + i] * x[i]}. Rotary embedding uses ggml's "normal" layout for
 * llama: adjacent pairs {@code (2i, 2i+1)} of each head are rotated by {@code pos * freq[i]}, where
 * {@code freq[i] = theta^(-2i/ropeDims)} changed by the model's rope scaling ({@link Rope}), and cos
 * and sin are multiplied by the scaling's attention factor (YaRN), as transformers does. Every other
 * family here uses llama.cpp's NEOX layout (llama_model_rope_type), as the file holds it: element
 * {@code i} of a head rotated with element {@code i + ropeDims/2}, computed on the rows as written
 * (the converter permutes q/k rows for llama only; the real path may permute rows instead).
 *
 * <p>The families (GGUF general.architecture; keys are {@code <arch>.*}):
 * <ul>
 *   <li>llama: pre-norm RMSNorm blocks, SwiGLU, attention to every earlier position: llama.cpp's
 *       LLM_ARCH_LLAMA reads no sliding-window key. {@link #withTransformersWindows} reads {@code
 *       llama.attention.sliding_window} W as transformers' MistralModel does: every layer attends
 *       only to the last W positions.</li>
 *   <li>qwen2: llama plus the biases {@code attn_q.bias, attn_k.bias, attn_v.bias}, added after the
 *       projections and before rope (src/models/qwen2.cpp), NEOX rope.</li>
 *   <li>qwen3: llama with each head of q and k RMS-normed by its own weight after the projections
 *       and before rope, an explicit head size, NEOX rope.</li>
 *   <li>gemma2: embeddings times sqrt(dim); norms stored as (1 + w) by the converter, so multiplied
 *       as stored; {@code x + post_attention_norm(attn(attn_norm(x)))}, then
 *       {@code h + post_ffw_norm(down(gelu_tanh(gate(ffn_norm(h))) * up(ffn_norm(h))))}; attention
 *       and final logits soft-capped ({@code cap * tanh(v / cap)}); the even layers slide; tied
 *       output; NEOX rope.</li>
 *   <li>gemma3: gemma2 plus per-head q/k norms before rope; sliding layers {@code il % 6 < 5} with
 *       rope base 10000 and no scaling, the others with the file's base and scaling; soft-capping
 *       only where the keys are present.</li>
 *   <li>phi3: llama with fused {@code attn_qkv} (q rows, k rows, v rows) and fused {@code ffn_up}
 *       (gate rows, then up rows), NEOX rope, no sliding window (llama.cpp disables Phi-3's;
 *       {@link #withTransformersWindows}: every layer slides, as transformers' Phi3 does, see
 *       {@link #slidingWindows}).</li>
 * </ul>
 *
 * <p>Every tensor of the file must be used: a tensor the reference does not know (a bias, LongRoPE
 * factors, ...) is refused rather than silently ignored, as llama.cpp refuses a file with more
 * tensors than its architecture loads.
 */
final class ReferenceLlama {
    /**
     * Weight types whose products Peregrine's CPU backend (its Vector API kernels) computes on
     * activations quantised to 8 bits per block of 32, as llama.cpp's CPU backend does for every
     * quantised type: the reference rounds the input of a product with such a matrix the same way.
     */
    static final Set<DType> QUANTISED_ACTIVATIONS = EnumSet.of(DType.Q4_0, DType.Q4_1, DType.Q5_1, DType.Q2_K, DType.Q3_K,
            DType.Q4_K, DType.Q5_K, DType.Q6_K);
    /** The matrices (by identity) whose products take their input quantised, see {@link #QUANTISED_ACTIVATIONS}. */
    private final Set<double[]> quantisedInputs = Collections.newSetFromMap(new IdentityHashMap<>());
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    // ggml type ids
    private static final int GGML_F32 = 0;
    private static final int GGML_F16 = 1;
    private static final int GGML_Q4_0 = 2;
    private static final int GGML_Q4_1 = 3;
    private static final int GGML_Q5_0 = 6;
    private static final int GGML_Q5_1 = 7;
    private static final int GGML_Q8_0 = 8;
    private static final int GGML_Q2_K = 10;
    private static final int GGML_Q3_K = 11;
    private static final int GGML_Q4_K = 12;
    private static final int GGML_Q5_K = 13;
    private static final int GGML_Q6_K = 14;
    private static final int GGML_IQ4_NL = 20;
    private static final int GGML_IQ4_XS = 23;
    private static final int[] KVALUES_IQ4NL = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    private static final int GGML_BF16 = 30;

    /** The GGUF architectures the reference evaluates. */
    enum Family {
        LLAMA, QWEN2, QWEN3, GEMMA2, GEMMA3, PHI3;

        static Family of(String architecture) {
            return switch (architecture) {
                case "llama" -> LLAMA;
                case "qwen2" -> QWEN2;
                case "qwen3" -> QWEN3;
                case "gemma2" -> GEMMA2;
                case "gemma3" -> GEMMA3;
                case "phi3" -> PHI3;
                default -> throw new IllegalArgumentException("reference does not support architecture " + architecture);
            };
        }

        boolean gemma() {
            return this == GEMMA2 || this == GEMMA3;
        }
    }

    final Family family;
    final int dim;
    final int layers;
    final int heads;
    final int kvHeads;
    final int headDim;
    final int ffnDim;
    final int vocab;
    final double eps;
    final double theta;
    final int ropeDims;
    final boolean tiedOutput;
    /** The rope of the layers that use the file's base and scaling (all but Gemma 3's sliding ones). */
    final Rope rope;
    final boolean qwen3;
    /** Rope layout: pairs (i, i + ropeDims/2) instead of (2i, 2i+1). */
    final boolean neox;
    /** Multiplies the embedding row (Gemma: sqrt(dim)). */
    final double embeddingScale;
    /** Multiplies q.k (see {@link #attentionScale(Family, GgufMetadata, String)}). */
    final double attentionScale;
    /** Attention score soft-cap, 0 for none. */
    final double attentionSoftCap;
    /** Final logit soft-cap, 0 for none. */
    final double finalSoftCap;
    /** Per layer: the sliding window W (a key at p0 is masked for the query at p1 when p1 - p0 >= W), 0 for none. */
    int[] window;
    /** The windows as transformers reads the same configuration ({@link #withTransformersWindows}). */
    private final int[] transformersWindow;
    /** Per layer: its rotary frequencies. */
    final Rope[] layerRope;

    private final double[] tokenEmbedding; // [vocab][dim]
    private final double[][] attnNorm;     // [layer][dim]
    private final double[][] wq;           // [layer][heads*headDim][dim]
    private final double[][] wk;           // [layer][kvHeads*headDim][dim]
    private final double[][] wv;           // [layer][kvHeads*headDim][dim]
    private final double[][] bq;           // [layer][heads*headDim], Qwen2 only
    private final double[][] bk;           // [layer][kvHeads*headDim], Qwen2 only
    private final double[][] bv;           // [layer][kvHeads*headDim], Qwen2 only
    private final double[][] wo;           // [layer][dim][heads*headDim]
    private final double[][] postAttnNorm; // [layer][dim], Gemma only
    private final double[][] ffnNorm;      // [layer][dim]
    private final double[][] wGate;        // [layer][ffn][dim]
    private final double[][] wUp;          // [layer][ffn][dim]
    private final double[][] wDown;        // [layer][dim][ffn]
    private final double[][] postFfnNorm;  // [layer][dim], Gemma only
    private final double[][] qNorm;        // [layer][headDim], Qwen3 and Gemma 3 only
    private final double[][] kNorm;        // [layer][headDim], Qwen3 and Gemma 3 only
    private final double[] outputNorm;     // [dim]
    private final double[] output;         // [vocab][dim]

    /** Keys and values of every position so far: [layer][position * kvDim + i]. */
    private double[][] keyCache;
    private double[][] valueCache;
    private int length;
    /** Whether keys and values are stored rounded to the nearest half, as an F16 KV cache holds them. */
    private boolean halfKv;

    /**
     * The sliding windows a Hugging Face directory of this model has: transformers slides every
     * layer of Mistral and Phi-3 where llama.cpp, reading the GGUF file, slides none.
     */
    ReferenceLlama withTransformersWindows() {
        window = transformersWindow;
        return this;
    }

    /** From now on keys and values are kept as the nearest halves (an F16 KV cache), not as doubles. */
    ReferenceLlama withHalfPrecisionKv() {
        halfKv = true;
        return this;
    }

    /** The half nearest to x (via the float nearest to x, as the real path holds it before storing). */
    private static double nearestHalf(double x) {
        return Float.float16ToFloat(Float.floatToFloat16((float) x));
    }

    /** The model as the GGUF file describes it, rope scaling (keys and rope_freqs.weight) included. */
    ReferenceLlama(GgufFile file) {
        this(file, null);
    }

    /**
     * The GGUF file's weights with the given rope (null: the one the file describes) on every layer
     * that uses the file's rope (all but Gemma 3's sliding layers, which keep base 10000).
     */
    ReferenceLlama(GgufFile file, Rope rope) {
        GgufMetadata m = file.metadata();
        String arch = m.getString("general.architecture");
        family = Family.of(arch);
        qwen3 = family == Family.QWEN3;
        neox = family != Family.LLAMA;
        String k = arch + ".";
        dim = m.getInt(k + "embedding_length");
        layers = m.getInt(k + "block_count");
        heads = m.getInt(k + "attention.head_count");
        kvHeads = m.optInt(k + "attention.head_count_kv").orElse(heads);
        headDim = m.optInt(k + "attention.key_length").orElse(dim / heads);
        int valueDim = m.optInt(k + "attention.value_length").orElse(dim / heads);
        if (m.contains(k + "attention.value_length") && valueDim != headDim) {
            throw new IllegalArgumentException("reference needs key_length == value_length, got " + headDim + " and " + valueDim);
        }
        ffnDim = m.getInt(k + "feed_forward_length");
        eps = m.optFloat(k + "attention.layer_norm_rms_epsilon").orElse(1e-5f);
        theta = m.optFloat(k + "rope.freq_base").orElse(10000f);
        ropeDims = m.optInt(k + "rope.dimension_count").orElse(headDim);
        if (ropeDims > headDim || ropeDims % 2 != 0) {
            throw new IllegalArgumentException("rope dimension count " + ropeDims + " does not fit head size " + headDim);
        }
        this.rope = rope != null ? rope : Rope.fromGguf(file, arch, theta, ropeDims, family);
        embeddingScale = family.gemma() ? Math.sqrt(dim) : 1;
        attentionScale = attentionScale(family, m, k);
        attentionSoftCap = switch (family) {
            // llama.cpp (LLM_ARCH_GEMMA2 hparams) always caps, 50 unless the key says otherwise, as
            // transformers' Gemma2Config defaults; Gemma 3 caps only when the key is present
            // (transformers; llama.cpp never soft-caps Gemma 3's attention, attn_soft_cap stays false,
            // and its converter asserts the config has no attention cap).
            case GEMMA2 -> positive(m.optFloat(k + "attn_logit_softcapping").orElse(50f), "attention soft-cap");
            case GEMMA3 -> m.optFloat(k + "attn_logit_softcapping").orElse(0f);
            default -> 0;
        };
        finalSoftCap = switch (family) {
            case GEMMA2 -> positive(m.optFloat(k + "final_logit_softcapping").orElse(30f), "final soft-cap");
            case GEMMA3 -> m.optFloat(k + "final_logit_softcapping").orElse(0f);
            default -> 0;
        };
        window = slidingWindows(family, m, k, layers, false);
        transformersWindow = slidingWindows(family, m, k, layers, true);
        layerRope = new Rope[layers];
        // Every architecture's sliding layers rope with rope.freq_base_swa when the file states it
        // (llama_model::load_hparams: rope_freq_base_train_swa, scaled as the other layers by
        // default); Gemma 3's with base 10000 unless stated and rope_freq_scale_train_swa = 1 (no
        // scaling; transformers: rope_local_base_freq with default rope).
        Optional<Float> baseSwa = m.optFloat(k + "rope.freq_base_swa");
        Rope sliding = family == Family.GEMMA3 ? Rope.plain(baseSwa.orElse(10000f), ropeDims)
                : baseSwa.isPresent() && rope == null ? Rope.fromGguf(file, arch, baseSwa.get(), ropeDims, family) : this.rope;
        for (int l = 0; l < layers; l++) {
            layerRope[l] = window[l] > 0 ? sliding : this.rope;
        }

        Set<String> used = new HashSet<>();
        Tensor embd = file.tensor("token_embd.weight");
        vocab = (int) embd.shape()[1];
        tokenEmbedding = weights(file, used, "token_embd.weight", dim, vocab);
        int qDim = heads * headDim;
        int kvDim = kvHeads * headDim;
        attnNorm = new double[layers][];
        wq = new double[layers][];
        wk = new double[layers][];
        wv = new double[layers][];
        bq = new double[layers][];
        bk = new double[layers][];
        bv = new double[layers][];
        wo = new double[layers][];
        postAttnNorm = new double[layers][];
        ffnNorm = new double[layers][];
        wGate = new double[layers][];
        wUp = new double[layers][];
        wDown = new double[layers][];
        postFfnNorm = new double[layers][];
        qNorm = new double[layers][];
        kNorm = new double[layers][];
        for (int l = 0; l < layers; l++) {
            String p = "blk." + l + ".";
            attnNorm[l] = matrix(file, used, p + "attn_norm.weight", dim);
            if (family == Family.PHI3 && file.findTensor(p + "attn_qkv.weight").isPresent()) {
                // One matrix of q, k and v rows, in that order (transformers' Phi3Attention slices
                // qkv_proj's output [:q], [q:q+kv], [q+kv:]; llama.cpp's build_qkv views it the same way).
                double[] qkv = weights(file, used, p + "attn_qkv.weight", dim, qDim + 2 * kvDim);
                wq[l] = Arrays.copyOfRange(qkv, 0, qDim * dim);
                wk[l] = Arrays.copyOfRange(qkv, qDim * dim, (qDim + kvDim) * dim);
                wv[l] = Arrays.copyOfRange(qkv, (qDim + kvDim) * dim, (qDim + 2 * kvDim) * dim);
                inheritQuantisedInput(qkv, wq[l], wk[l], wv[l]);
            } else {
                wq[l] = weights(file, used, p + "attn_q.weight", dim, qDim);
                wk[l] = weights(file, used, p + "attn_k.weight", dim, kvDim);
                wv[l] = weights(file, used, p + "attn_v.weight", dim, kvDim);
            }
            if (family == Family.QWEN2) {
                bq[l] = matrix(file, used, p + "attn_q.bias", qDim);
                bk[l] = matrix(file, used, p + "attn_k.bias", kvDim);
                bv[l] = matrix(file, used, p + "attn_v.bias", kvDim);
            }
            if (family == Family.QWEN3 || family == Family.GEMMA3) {
                qNorm[l] = matrix(file, used, p + "attn_q_norm.weight", headDim);
                kNorm[l] = matrix(file, used, p + "attn_k_norm.weight", headDim);
            }
            wo[l] = weights(file, used, p + "attn_output.weight", qDim, dim);
            ffnNorm[l] = matrix(file, used, p + "ffn_norm.weight", dim);
            if (family == Family.PHI3) {
                // gate_up_proj: the first ffn rows are the gate, the next ffn rows the up projection
                // (transformers' Phi3MLP chunks gate first; llama.cpp's LLM_FFN_SWIGLU on the fused
                // output applies silu to the first half, ggml_compute_forward_swiglu_f32 unswapped).
                double[] gateUp = weights(file, used, p + "ffn_up.weight", dim, 2 * ffnDim);
                wGate[l] = Arrays.copyOfRange(gateUp, 0, ffnDim * dim);
                wUp[l] = Arrays.copyOfRange(gateUp, ffnDim * dim, 2 * ffnDim * dim);
                inheritQuantisedInput(gateUp, wGate[l], wUp[l]);
            } else {
                wGate[l] = weights(file, used, p + "ffn_gate.weight", dim, ffnDim);
                wUp[l] = weights(file, used, p + "ffn_up.weight", dim, ffnDim);
            }
            wDown[l] = weights(file, used, p + "ffn_down.weight", ffnDim, dim);
            if (family.gemma()) {
                postAttnNorm[l] = matrix(file, used, p + "post_attention_norm.weight", dim);
                postFfnNorm[l] = matrix(file, used, p + "post_ffw_norm.weight", dim);
            }
        }
        outputNorm = matrix(file, used, "output_norm.weight", dim);
        tiedOutput = file.findTensor("output.weight").isEmpty();
        output = tiedOutput ? tokenEmbedding : weights(file, used, "output.weight", dim, vocab);
        if (family == Family.LLAMA && file.findTensor("rope_freqs.weight").isPresent()) {
            used.add("rope_freqs.weight"); // read by Rope.fromGguf (replaced by an explicit rope)
        }
        for (var info : file.tensorInfos()) {
            if (!used.contains(info.name())) {
                throw new IllegalArgumentException("reference does not use tensor " + info.name() + " of a " + arch + " file");
            }
        }

        keyCache = new double[layers][16 * kvDim];
        valueCache = new double[layers][16 * kvDim];
    }

    private static double positive(double v, String what) {
        if (!(v > 0)) {
            throw new IllegalArgumentException(what + " must be positive, got " + v);
        }
        return v;
    }

    /**
     * The factor on q.k. 1/sqrt(headDim), except for Gemma's 27B models, where llama.cpp uses
     * 1/sqrt(n_embd / n_head) (integer division), recognising the 27B size by its layer count: 46 for
     * gemma2, 62 for gemma3 (llama-model.cpp, LLM_ARCH_GEMMA2 and LLM_ARCH_GEMMA3 hparams,
     * f_attention_scale, after gemma_pytorch's config). transformers uses query_pre_attn_scalar^-0.5
     * from the config instead (144 = 4608/32 for gemma-2-27b, 168 = 5376/32 for gemma-3-27b, head_dim
     * for the other sizes), which agrees for the published models; the GGUF file does not carry it.
     */
    static double attentionScale(Family family, GgufMetadata m, String k) {
        int dim = m.getInt(k + "embedding_length");
        int heads = m.getInt(k + "attention.head_count");
        int layers = m.getInt(k + "block_count");
        int headDim = m.optInt(k + "attention.key_length").orElse(dim / heads);
        boolean size27b = (family == Family.GEMMA2 && layers == 46) || (family == Family.GEMMA3 && layers == 62);
        return 1.0 / Math.sqrt(size27b ? dim / heads : headDim);
    }

    /**
     * Per layer, the sliding window (0 for none):
     * <ul>
     *   <li>llama: none, as llama.cpp reads no window for LLM_ARCH_LLAMA; with {@code transformers},
     *       {@code llama.attention.sliding_window} on every layer when present and positive
     *       (transformers' Mistral).</li>
     *   <li>gemma2: {@code gemma2.attention.sliding_window}, 4096 when absent (llama.cpp's default and
     *       Gemma2Config's), on the layers with {@code il % 2 == 0}: llama.cpp's set_swa_pattern(2)
     *       marks {@code il % n < n - 1}; transformers' layer_types are "sliding_attention" for
     *       {@code (i + 1) % 2 != 0}.</li>
     *   <li>gemma3: {@code gemma3.attention.sliding_window} on the layers with {@code il % 6 < 5}
     *       (set_swa_pattern(6); transformers: {@code (i + 1) % sliding_window_pattern != 0} with
     *       pattern 6). Without the key (or with 0) every layer is global: the current llama.cpp then
     *       sets swa_type NONE, and the converter writes no key when sliding_window_pattern is 1,
     *       which makes every transformers layer global.</li>
     *   <li>phi3: none: llama.cpp (llama_model_phi3::load_arch_hparams, since PR 13676) warns "Phi
     *       SWA is currently disabled" and sets swa_type NONE, attending to everything; with {@code
     *       transformers}, {@code phi3.attention.sliding_window} on every layer when positive, as
     *       transformers' Phi3 (a Mistral model: sliding_window on every layer; the converter
     *       writes 0 for "none", Phi-4).</li>
     *   <li>qwen2, qwen3: none (llama.cpp reads no window for them).</li>
     * </ul>
     */
    static int[] slidingWindows(Family family, GgufMetadata m, String k, int layers, boolean transformers) {
        int[] w = new int[layers];
        String key = k + "attention.sliding_window";
        int size = switch (family) {
            case LLAMA, PHI3 -> transformers ? m.optInt(key).orElse(0) : 0;
            case GEMMA3 -> m.optInt(key).orElse(0);
            case GEMMA2 -> m.optInt(key).orElse(4096);
            case QWEN2, QWEN3 -> 0;
        };
        if (size < 0) {
            throw new IllegalArgumentException("negative sliding window " + size);
        }
        for (int l = 0; l < layers; l++) {
            boolean sliding = switch (family) {
                case GEMMA2 -> l % 2 < 1;
                case GEMMA3 -> l % 6 < 5;
                default -> true;
            };
            w[l] = sliding ? size : 0;
        }
        return w;
    }

    /** Positions held in the KV cache. */
    int length() {
        return length;
    }

    /** Forgets every cached position. */
    void reset() {
        length = 0;
    }

    /**
     * Runs {@code token} at {@code position} (which must be the next position: the cache holds
     * exactly {@code position} earlier tokens) and returns the logits that follow it.
     */
    double[] forward(int token, int position) {
        if (position != length) {
            throw new IllegalArgumentException("next position is " + length + ", got " + position);
        }
        if (token < 0 || token >= vocab) {
            throw new IllegalArgumentException("token " + token + " outside vocabulary " + vocab);
        }
        int qDim = heads * headDim;
        int kvDim = kvHeads * headDim;
        ensureCapacity(position + 1);

        double[] x = new double[dim];
        for (int i = 0; i < dim; i++) {
            x[i] = tokenEmbedding[token * dim + i] * embeddingScale;
        }

        for (int l = 0; l < layers; l++) {
            // Attention
            double[] xb = rmsNorm(x, attnNorm[l]);
            double[] q = matVec(wq[l], xb, qDim, dim);
            double[] k = matVec(wk[l], xb, kvDim, dim);
            double[] v = matVec(wv[l], xb, kvDim, dim);
            if (bq[l] != null) {
                addInPlace(q, bq[l]);
                addInPlace(k, bk[l]);
                addInPlace(v, bv[l]);
            }
            if (qNorm[l] != null) {
                headNorm(q, heads, qNorm[l]);
                headNorm(k, kvHeads, kNorm[l]);
            }
            rope(q, heads, position, layerRope[l]);
            rope(k, kvHeads, position, layerRope[l]);
            for (int i = 0; i < kvDim; i++) {
                keyCache[l][position * kvDim + i] = halfKv ? nearestHalf(k[i]) : k[i];
                valueCache[l][position * kvDim + i] = halfKv ? nearestHalf(v[i]) : v[i];
            }

            double[] att = new double[qDim];
            int group = heads / kvHeads;
            // The first position this layer may see (llama.cpp's is_masked_swa, standard type:
            // p0 is masked for p1 when p1 - p0 >= W; transformers' sliding_window_overlay keeps
            // kv_idx > q_idx - W: the same W positions, the query's own included).
            int first = window[l] > 0 ? Math.max(0, position - window[l] + 1) : 0;
            double[] scores = new double[position + 1];
            for (int h = 0; h < heads; h++) {
                int kvh = h / group;
                double max = Double.NEGATIVE_INFINITY;
                for (int p = first; p <= position; p++) {
                    double dot = 0;
                    for (int i = 0; i < headDim; i++) {
                        dot += q[h * headDim + i] * keyCache[l][p * kvDim + kvh * headDim + i];
                    }
                    double s = dot * attentionScale;
                    if (attentionSoftCap > 0) {
                        s = attentionSoftCap * Math.tanh(s / attentionSoftCap); // after scaling, before softmax
                    }
                    scores[p] = s;
                    max = Math.max(max, s);
                }
                double sum = 0;
                for (int p = first; p <= position; p++) {
                    scores[p] = Math.exp(scores[p] - max);
                    sum += scores[p];
                }
                for (int p = first; p <= position; p++) {
                    double a = scores[p] / sum;
                    for (int i = 0; i < headDim; i++) {
                        att[h * headDim + i] += a * valueCache[l][p * kvDim + kvh * headDim + i];
                    }
                }
            }
            double[] proj = matVec(wo[l], att, dim, qDim);
            if (postAttnNorm[l] != null) {
                proj = rmsNorm(proj, postAttnNorm[l]);
            }
            addInPlace(x, proj);

            // Feed-forward: act(gate) * up, SiLU (SwiGLU) or, for Gemma, tanh-approximated GELU
            // (transformers' gelu_pytorch_tanh; llama.cpp's LLM_FFN_GELU with LLM_FFN_PAR).
            xb = rmsNorm(x, ffnNorm[l]);
            double[] gate = matVec(wGate[l], xb, ffnDim, dim);
            double[] up = matVec(wUp[l], xb, ffnDim, dim);
            for (int i = 0; i < ffnDim; i++) {
                gate[i] = (family.gemma() ? geluTanh(gate[i]) : silu(gate[i])) * up[i];
            }
            double[] down = matVec(wDown[l], gate, dim, ffnDim);
            if (postFfnNorm[l] != null) {
                down = rmsNorm(down, postFfnNorm[l]);
            }
            addInPlace(x, down);
        }

        double[] xn = rmsNorm(x, outputNorm);
        length = position + 1;
        double[] logits = matVec(output, xn, vocab, dim);
        if (finalSoftCap > 0) {
            for (int i = 0; i < vocab; i++) {
                logits[i] = finalSoftCap * Math.tanh(logits[i] / finalSoftCap);
            }
        }
        return logits;
    }

    static double silu(double x) {
        return x / (1.0 + Math.exp(-x));
    }

    /** 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
    static double geluTanh(double x) {
        return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
    }

    private static void addInPlace(double[] x, double[] y) {
        for (int i = 0; i < x.length; i++) {
            x[i] += y[i];
        }
    }

    private double[] rmsNorm(double[] x, double[] w) {
        double ss = 0;
        for (double v : x) {
            ss += v * v;
        }
        double inv = 1.0 / Math.sqrt(ss / x.length + eps);
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = x[i] * inv * w[i];
        }
        return out;
    }

    /**
     * {@code y[o] = sum_i W[o*in + i] * x[i]} for a matrix of {@code out} rows of {@code in} values,
     * x first quantised to 8 bits per block of 32 where the matrix's type says so.
     */
    private double[] matVec(double[] w, double[] x, int out, int in) {
        if (quantisedInputs.contains(w)) {
            x = quantisedBlocks(x);
        }
        double[] y = new double[out];
        for (int o = 0; o < out; o++) {
            double acc = 0;
            int base = o * in;
            for (int i = 0; i < in; i++) {
                acc += w[base + i] * x[i];
            }
            y[o] = acc;
        }
        return y;
    }

    /**
     * x as a product with a matrix of {@link #QUANTISED_ACTIVATIONS}' types sees it: per block of
     * 32, d = max |x| / 127 and each value
     * replaced by d times the integer nearest to x / d (ggml's quantize_row_q8_0).
     */
    private static double[] quantisedBlocks(double[] x) {
        double[] y = new double[x.length];
        for (int b = 0; b < x.length; b += 32) {
            double max = 0;
            for (int i = b; i < b + 32; i++) {
                max = Math.max(max, Math.abs(x[i]));
            }
            double d = max / 127;
            for (int i = b; i < b + 32; i++) {
                y[i] = d == 0 ? 0 : Math.rint(x[i] / d) * d;
            }
        }
        return y;
    }

    /** Whether some product of this model takes its input quantised (see {@link #QUANTISED_ACTIVATIONS}). */
    boolean quantisesActivations() {
        return !quantisedInputs.isEmpty();
    }

    /** A matrix whose products read their input as the matrix's type makes the CPU backend read it. */
    private double[] weights(GgufFile file, Set<String> used, String name, long... expectedShape) {
        double[] w = matrix(file, used, name, expectedShape);
        if (QUANTISED_ACTIVATIONS.contains(file.tensor(name).type())) {
            quantisedInputs.add(w);
        }
        return w;
    }

    /** The parts of a fused matrix read their input as the fused matrix does. */
    private void inheritQuantisedInput(double[] fused, double[]... parts) {
        if (quantisedInputs.contains(fused)) {
            quantisedInputs.addAll(Arrays.asList(parts));
        }
    }

    /** RMS-norms each head of {@code v} on its own, with the weight {@code w} of headDim values. */
    private void headNorm(double[] v, int headCount, double[] w) {
        for (int h = 0; h < headCount; h++) {
            double[] head = Arrays.copyOfRange(v, h * headDim, (h + 1) * headDim);
            System.arraycopy(rmsNorm(head, w), 0, v, h * headDim, headDim);
        }
    }

    /**
     * Rotates adjacent pairs (2i, 2i+1) of the first ropeDims elements of each head; in the NEOX
     * layout, pairs (i, i + ropeDims/2) instead, with the same frequency per pair index. Elements
     * past ropeDims are left as they are (partial rotary: transformers rotates q[..., :rotary_dim]).
     */
    private void rope(double[] v, int headCount, int position, Rope r) {
        for (int h = 0; h < headCount; h++) {
            for (int i = 0; i < ropeDims / 2; i++) {
                double angle = position * r.frequencies[i];
                double c = Math.cos(angle) * r.cosSinFactor;
                double s = Math.sin(angle) * r.cosSinFactor;
                int a = neox ? h * headDim + i : h * headDim + 2 * i;
                int b = neox ? a + ropeDims / 2 : a + 1;
                double x0 = v[a];
                double x1 = v[b];
                v[a] = x0 * c - x1 * s;
                v[b] = x0 * s + x1 * c;
            }
        }
    }

    private void ensureCapacity(int positions) {
        int kvDim = kvHeads * headDim;
        if (keyCache[0].length < positions * kvDim) {
            int n = Math.max(positions, keyCache[0].length / kvDim * 2) * kvDim;
            for (int l = 0; l < layers; l++) {
                keyCache[l] = Arrays.copyOf(keyCache[l], n);
                valueCache[l] = Arrays.copyOf(valueCache[l], n);
            }
        }
    }

    /** A tensor as one flat run of doubles, after checking its shape (trailing 1s ignored). */
    private static double[] matrix(GgufFile file, Set<String> used, String name, long... expectedShape) {
        Tensor t = file.tensor(name);
        used.add(name);
        long[] shape = t.shape();
        long elements = 1;
        for (long d : shape) {
            elements *= d;
        }
        long expectedElements = 1;
        for (long d : expectedShape) {
            expectedElements *= d;
        }
        for (int i = 0; i < Math.max(shape.length, expectedShape.length); i++) {
            long got = i < shape.length ? shape[i] : 1;
            long want = i < expectedShape.length ? expectedShape[i] : 1;
            if (got != want) {
                throw new IllegalArgumentException(name + " has shape " + Arrays.toString(shape)
                        + ", expected " + Arrays.toString(expectedShape));
            }
        }
        if (elements != expectedElements || elements > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(name + ": bad element count " + elements);
        }
        return dequantize(t.type().ggmlId(), t.data(), (int) elements);
    }

    /**
     * Dequantises {@code n} values stored from the start of {@code data} as one flat run (blocks are
     * consecutive regardless of rows, which also reads old files whose rows cross block boundaries).
     */
    static double[] dequantize(int ggmlType, MemorySegment data, int n) {
        double[] out = new double[n];
        switch (ggmlType) {
            case GGML_F32 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = data.get(F32, 4L * i);
                }
            }
            case GGML_F16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = halfToDouble(data.get(I16, 2L * i));
                }
            }
            case GGML_BF16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Float.intBitsToFloat((data.get(I16, 2L * i) & 0xFFFF) << 16);
                }
            }
            case GGML_Q8_0 -> {
                requireBlocks(n, 32);
                for (int b = 0; b < n / 32; b++) {
                    long off = 34L * b;
                    double d = halfToDouble(data.get(I16, off));
                    for (int j = 0; j < 32; j++) {
                        out[b * 32 + j] = d * data.get(ValueLayout.JAVA_BYTE, off + 2 + j);
                    }
                }
            }
            case GGML_Q4_0 -> {
                requireBlocks(n, 32);
                for (int b = 0; b < n / 32; b++) {
                    long off = 18L * b;
                    double d = halfToDouble(data.get(I16, off));
                    for (int j = 0; j < 16; j++) {
                        int q = data.get(ValueLayout.JAVA_BYTE, off + 2 + j) & 0xFF;
                        out[b * 32 + j] = d * ((q & 0x0F) - 8);
                        out[b * 32 + j + 16] = d * ((q >> 4) - 8);
                    }
                }
            }
            case GGML_Q4_1, GGML_Q5_0, GGML_Q5_1 -> {
                // ggml's dequantize_row_q4_1 / _q5_0 / _q5_1: blocks of d (and m for the _1 types),
                // a 32-bit qh for the 5-bit types, 16 bytes of nibbles; the fifth bits as ggml takes
                // them, xh_0 = ((qh >> j) << 4) & 0x10 and xh_1 = (qh >> (j + 12)) & 0x10.
                requireBlocks(n, 32);
                boolean hasMin = ggmlType != GGML_Q5_0;
                boolean fiveBits = ggmlType != GGML_Q4_1;
                int blockBytes = 18 + (hasMin ? 2 : 0) + (fiveBits ? 4 : 0);
                for (int b = 0; b < n / 32; b++) {
                    long off = (long) blockBytes * b;
                    double d = halfToDouble(data.get(I16, off));
                    double m = hasMin ? halfToDouble(data.get(I16, off + 2)) : 0;
                    long qhAt = off + (hasMin ? 4 : 2);
                    int qh = fiveBits ? data.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), qhAt) : 0;
                    long qs = fiveBits ? qhAt + 4 : qhAt;
                    for (int j = 0; j < 16; j++) {
                        int q = data.get(ValueLayout.JAVA_BYTE, qs + j) & 0xFF;
                        int x0 = (q & 0x0F) | (((qh >>> j) << 4) & 0x10);
                        int x1 = (q >> 4) | ((qh >>> (j + 12)) & 0x10);
                        if (hasMin) {
                            out[b * 32 + j] = x0 * d + m;
                            out[b * 32 + j + 16] = x1 * d + m;
                        } else {
                            out[b * 32 + j] = (x0 - 16) * d;
                            out[b * 32 + j + 16] = (x1 - 16) * d;
                        }
                    }
                }
            }
            case GGML_Q4_K, GGML_Q5_K -> {
                // ggml's dequantize_row_q4_K / _q5_K: 4 chunks of 64 values, each from 32 bytes of
                // nibbles (low nibbles the first 32 values, high nibbles the next 32), with the 6-bit
                // scales and mins unpacked as get_scale_min_k4 does; Q5_K adds 16 where bit u1 = 1 << 2c
                // (low nibbles) or u2 = 2 << 2c (high ones) of qh[l] is set.
                requireBlocks(n, 256);
                boolean fiveBits = ggmlType == GGML_Q5_K;
                for (int b = 0; b < n / 256; b++) {
                    long off = (fiveBits ? 176L : 144L) * b;
                    double d = halfToDouble(data.get(I16, off));
                    double dmin = halfToDouble(data.get(I16, off + 2));
                    int[] s = new int[12];
                    for (int i = 0; i < 12; i++) {
                        s[i] = data.get(ValueLayout.JAVA_BYTE, off + 4 + i) & 0xFF;
                    }
                    int[] sc = new int[8];
                    int[] m = new int[8];
                    for (int j = 0; j < 8; j++) {
                        if (j < 4) {
                            sc[j] = s[j] & 63;
                            m[j] = s[j + 4] & 63;
                        } else {
                            sc[j] = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
                            m[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
                        }
                    }
                    for (int c = 0; c < 4; c++) {
                        for (int l = 0; l < 32; l++) {
                            int q = data.get(ValueLayout.JAVA_BYTE, off + (fiveBits ? 48 : 16) + 32 * c + l) & 0xFF;
                            int hi = fiveBits ? data.get(ValueLayout.JAVA_BYTE, off + 16 + l) & 0xFF : 0;
                            int q1 = (q & 0xF) + ((hi & (1 << 2 * c)) != 0 ? 16 : 0);
                            int q2 = (q >> 4) + ((hi & (2 << 2 * c)) != 0 ? 16 : 0);
                            out[b * 256 + 64 * c + l] = d * sc[2 * c] * q1 - dmin * m[2 * c];
                            out[b * 256 + 64 * c + 32 + l] = d * sc[2 * c + 1] * q2 - dmin * m[2 * c + 1];
                        }
                    }
                }
            }
            case GGML_Q6_K -> {
                // ggml's dequantize_row_q6_K: two halves of 128 values, each reading 64 bytes of ql,
                // 32 of qh and 8 scales; four values per l from ql[l], ql[l + 32] and qh[l].
                requireBlocks(n, 256);
                for (int b = 0; b < n / 256; b++) {
                    long off = 210L * b;
                    double d = halfToDouble(data.get(I16, off + 208));
                    for (int half = 0; half < 2; half++) {
                        long ql = off + 64 * half;
                        long qh = off + 128 + 32 * half;
                        long sc = off + 192 + 8 * half;
                        int y = b * 256 + 128 * half;
                        for (int l = 0; l < 32; l++) {
                            int is = l / 16;
                            int lo1 = data.get(ValueLayout.JAVA_BYTE, ql + l) & 0xFF;
                            int lo2 = data.get(ValueLayout.JAVA_BYTE, ql + l + 32) & 0xFF;
                            int hi = data.get(ValueLayout.JAVA_BYTE, qh + l) & 0xFF;
                            int q1 = ((lo1 & 0xF) | ((hi & 3) << 4)) - 32;
                            int q2 = ((lo2 & 0xF) | (((hi >> 2) & 3) << 4)) - 32;
                            int q3 = ((lo1 >> 4) | (((hi >> 4) & 3) << 4)) - 32;
                            int q4 = ((lo2 >> 4) | (((hi >> 6) & 3) << 4)) - 32;
                            out[y + l] = d * data.get(ValueLayout.JAVA_BYTE, sc + is) * q1;
                            out[y + l + 32] = d * data.get(ValueLayout.JAVA_BYTE, sc + is + 2) * q2;
                            out[y + l + 64] = d * data.get(ValueLayout.JAVA_BYTE, sc + is + 4) * q3;
                            out[y + l + 96] = d * data.get(ValueLayout.JAVA_BYTE, sc + is + 6) * q4;
                        }
                    }
                }
            }
            case GGML_Q2_K -> {
                // ggml's dequantize_row_q2_K: two halves of 128 values over 32 bytes of qs each; per
                // shift (0, 2, 4, 6) 16 values from q[l] then 16 from q[l + 16], each 16 with the next
                // scale byte (scale: low nibble, min: high nibble).
                requireBlocks(n, 256);
                for (int b = 0; b < n / 256; b++) {
                    long off = 84L * b;
                    double d = halfToDouble(data.get(I16, off + 80));
                    double dmin = halfToDouble(data.get(I16, off + 82));
                    int y = b * 256;
                    int is = 0;
                    for (int half = 0; half < 2; half++) {
                        long q = off + 16 + 32 * half;
                        for (int shift = 0; shift < 8; shift += 2) {
                            for (int part = 0; part < 2; part++) {
                                int sc = data.get(ValueLayout.JAVA_BYTE, off + is++) & 0xFF;
                                for (int l = 0; l < 16; l++) {
                                    int v = (data.get(ValueLayout.JAVA_BYTE, q + 16 * part + l) & 0xFF) >> shift & 3;
                                    out[y++] = d * (sc & 0xF) * v - dmin * (sc >> 4);
                                }
                            }
                        }
                    }
                }
            }
            case GGML_Q3_K -> {
                // ggml's dequantize_row_q3_K: the 12 scale bytes unpacked through four 32-bit words
                // (kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f), then as Q2_K with the hmask bit m
                // (1, 2, 4, ... across both halves) deciding whether 4 is subtracted.
                requireBlocks(n, 256);
                ValueLayout.OfInt i32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
                for (int b = 0; b < n / 256; b++) {
                    long off = 110L * b;
                    double d = halfToDouble(data.get(I16, off + 108));
                    int a0 = data.get(i32, off + 96);
                    int a1 = data.get(i32, off + 100);
                    int tmp = data.get(i32, off + 104);
                    int[] aux = {
                        (a0 & 0x0f0f0f0f) | (((tmp) & 0x03030303) << 4),
                        (a1 & 0x0f0f0f0f) | (((tmp >>> 2) & 0x03030303) << 4),
                        ((a0 >>> 4) & 0x0f0f0f0f) | (((tmp >>> 4) & 0x03030303) << 4),
                        ((a1 >>> 4) & 0x0f0f0f0f) | (((tmp >>> 6) & 0x03030303) << 4)};
                    int y = b * 256;
                    int is = 0;
                    int m = 1;
                    for (int half = 0; half < 2; half++) {
                        long q = off + 32 + 32 * half;
                        for (int shift = 0; shift < 8; shift += 2) {
                            for (int part = 0; part < 2; part++) {
                                int scale = (byte) (aux[is / 4] >>> 8 * (is % 4)) - 32;
                                is++;
                                for (int l = 0; l < 16; l++) {
                                    int low = (data.get(ValueLayout.JAVA_BYTE, q + 16 * part + l) & 0xFF) >> shift & 3;
                                    int hm = data.get(ValueLayout.JAVA_BYTE, off + 16 * part + l) & 0xFF;
                                    out[y++] = d * scale * (low - ((hm & m) != 0 ? 0 : 4));
                                }
                            }
                            m <<= 1;
                        }
                    }
                }
            }
            case GGML_IQ4_NL -> {
                requireBlocks(n, 32);
                for (int b = 0; b < n / 32; b++) {
                    long off = 18L * b;
                    double d = halfToDouble(data.get(I16, off));
                    for (int j = 0; j < 16; j++) {
                        int q = data.get(ValueLayout.JAVA_BYTE, off + 2 + j) & 0xFF;
                        out[b * 32 + j] = d * KVALUES_IQ4NL[q & 0xF];
                        out[b * 32 + j + 16] = d * KVALUES_IQ4NL[q >> 4];
                    }
                }
            }
            case GGML_IQ4_XS -> {
                // ggml's dequantize_row_iq4_xs: 8 runs of 32, scale ls = low nibble of scales_l[ib / 2]
                // (by ib % 2) | 2 bits of scales_h << 4, value (d * (ls - 32)) * kvalues_iq4nl[nibble].
                requireBlocks(n, 256);
                for (int b = 0; b < n / 256; b++) {
                    long off = 136L * b;
                    double d = halfToDouble(data.get(I16, off));
                    int scalesH = data.get(I16, off + 2) & 0xFFFF;
                    for (int ib = 0; ib < 8; ib++) {
                        int ls = (((data.get(ValueLayout.JAVA_BYTE, off + 4 + ib / 2) & 0xFF) >> 4 * (ib % 2)) & 0xF)
                                | (((scalesH >> 2 * ib) & 3) << 4);
                        double dl = d * (ls - 32);
                        for (int j = 0; j < 16; j++) {
                            int q = data.get(ValueLayout.JAVA_BYTE, off + 8 + 16 * ib + j) & 0xFF;
                            out[b * 256 + 32 * ib + j] = dl * KVALUES_IQ4NL[q & 0xF];
                            out[b * 256 + 32 * ib + 16 + j] = dl * KVALUES_IQ4NL[q >> 4];
                        }
                    }
                }
            }
            default -> throw new IllegalArgumentException("reference does not support ggml type " + ggmlType);
        }
        return out;
    }

    private static void requireBlocks(int n, int blockSize) {
        if (n % blockSize != 0) {
            throw new IllegalArgumentException(n + " values are not a whole number of " + blockSize + "-value blocks");
        }
    }

    /** IEEE 754 binary16 to double, decoded by hand (sign, 5-bit exponent, 10-bit mantissa). */
    static double halfToDouble(short bits) {
        int h = bits & 0xFFFF;
        int sign = (h >>> 15) != 0 ? -1 : 1;
        int exp = (h >>> 10) & 0x1F;
        int mant = h & 0x3FF;
        if (exp == 0) {
            return sign * Math.scalb((double) mant, -24); // subnormal (or zero)
        }
        if (exp == 31) {
            return mant == 0 ? sign * Double.POSITIVE_INFINITY : Double.NaN;
        }
        return sign * Math.scalb(1024.0 + mant, exp - 25);
    }

    /**
     * Rotary frequencies per pair and the factor on cos and sin, written straight from the formulas
     * of transformers' modeling_rope_utils (and llama.cpp's rope_freqs divisors), independently of
     * Peregrine's RopeScaling.
     */
    record Rope(double[] frequencies, double cosSinFactor) {
        static double[] plainFrequencies(double theta, int dims) {
            double[] f = new double[dims / 2];
            for (int i = 0; i < f.length; i++) {
                f[i] = 1 / Math.pow(theta, 2.0 * i / dims);
            }
            return f;
        }

        static Rope plain(double theta, int dims) {
            return new Rope(plainFrequencies(theta, dims), 1);
        }

        static Rope linear(double theta, int dims, double factor) {
            double[] f = plainFrequencies(theta, dims);
            for (int i = 0; i < f.length; i++) {
                f[i] = f[i] / factor;
            }
            return new Rope(f, 1);
        }

        /** transformers' _compute_llama3_parameters. */
        static Rope llama3(double theta, int dims, double factor, double lowFreqFactor, double highFreqFactor,
                           double originalContext) {
            double[] f = plainFrequencies(theta, dims);
            for (int i = 0; i < f.length; i++) {
                double wavelen = 2 * Math.PI / f[i];
                if (wavelen > originalContext / lowFreqFactor) {
                    f[i] = f[i] / factor;
                } else if (!(wavelen < originalContext / highFreqFactor)) {
                    double smooth = (originalContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                    f[i] = (1 - smooth) * f[i] / factor + smooth * f[i];
                }
            }
            return new Rope(f, 1);
        }

        /** transformers' _compute_yarn_parameters (with truncation), attention factor on cos and sin. */
        static Rope yarn(double theta, int dims, double factor, double originalContext, double betaFast, double betaSlow,
                         double attentionFactor) {
            // The dimension at which a pair turns `rotations` times over the original context.
            java.util.function.DoubleUnaryOperator correction =
                    rotations -> dims * Math.log(originalContext / (rotations * 2 * Math.PI)) / (2 * Math.log(theta));
            double low = Math.max(Math.floor(correction.applyAsDouble(betaFast)), 0);
            double high = Math.min(Math.ceil(correction.applyAsDouble(betaSlow)), dims - 1);
            if (low == high) {
                high += 0.001;
            }
            double[] f = new double[dims / 2];
            for (int i = 0; i < f.length; i++) {
                double posFreq = Math.pow(theta, 2.0 * i / dims);
                double extrapolation = 1 / posFreq;
                double interpolation = 1 / (factor * posFreq);
                double ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
                double extrapolationWeight = 1 - ramp;
                f[i] = interpolation * (1 - extrapolationWeight) + extrapolation * extrapolationWeight;
            }
            return new Rope(f, attentionFactor);
        }

        /**
         * From the GGUF file as llama.cpp reads it (llama_model::load_hparams): {@code
         * <arch>.rope.scaling.type} (linear when only a factor is given), factor,
         * original_context_length, yarn betas and attention factor; and, for llama only,
         * rope_freqs.weight, which divides every frequency (the llama graph passes the layer's
         * rope_freqs to ggml_rope_ext; qwen2, qwen3, gemma2 and gemma3 pass none; phi3 passes its
         * LongRoPE rope_factors_long/short, which this reference does not support).
         */
        static Rope fromGguf(GgufFile file, String arch, double theta, int dims, Family family) {
            GgufMetadata m = file.metadata();
            String p = arch + ".rope.scaling.";
            double factor = m.optFloat(p + "factor").orElse(1f);
            String type = m.optString(p + "type").orElse(m.optFloat(p + "factor").isPresent() ? "linear" : "none");
            Rope r = switch (type) {
                case "none" -> plain(theta, dims);
                case "linear" -> linear(theta, dims, factor);
                case "yarn" -> yarn(theta, dims, factor,
                        m.optInt(p + "original_context_length").orElse(m.getInt(arch + ".context_length")),
                        m.optFloat(p + "yarn_beta_fast").orElse(32f), m.optFloat(p + "yarn_beta_slow").orElse(1f),
                        m.optFloat(p + "yarn_attn_factor").map(Float::doubleValue).orElse(0.1 * Math.log(factor) + 1));
                default -> throw new IllegalArgumentException("reference does not support rope scaling " + type);
            };
            if (family == Family.LLAMA && file.findTensor("rope_freqs.weight").isPresent()) {
                double[] divisors = matrix(file, new HashSet<>(), "rope_freqs.weight", dims / 2);
                for (int i = 0; i < divisors.length; i++) {
                    r.frequencies[i] /= divisors[i];
                }
            }
            return r;
        }
    }
}
