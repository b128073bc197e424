package dev.peregrine.model;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufMetadata;
import dev.peregrine.format.hf.HfConfig;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * Hyper-parameters of a Llama-family decoder.
 *
 * @param ropeDimensions how many leading elements of each head are rotated (usually headDim)
 * @param contextLength  the context the model was trained with, as its file states it
 * @param ropeScaling    how the rotary frequencies are stretched ({@link RopeScaling#NONE} for plain rope)
 * @param qkNorm         whether each head of q and k is RMS-normed (weights of headDim values) after
 *                       the projections and before rope (Qwen3); the family is data, the graph is one
 */
public record LlamaConfig(
        int dim,
        int layers,
        int heads,
        int kvHeads,
        int headDim,
        int ffnDim,
        int vocabularySize,
        int contextLength,
        float rmsEps,
        float ropeTheta,
        int ropeDimensions,
        RopeScaling ropeScaling,
        boolean qkNorm) {

    public LlamaConfig {
        check(dim > 0 && layers > 0 && heads > 0 && kvHeads > 0 && headDim > 0 && ffnDim > 0
                && vocabularySize > 0 && contextLength > 0, "sizes must be positive: " + this);
        check(heads % kvHeads == 0, "head count " + heads + " is not a multiple of the KV head count " + kvHeads);
        check(ropeDimensions > 0 && ropeDimensions % 2 == 0 && ropeDimensions <= headDim,
                "rope dimension count " + ropeDimensions + " must be even and at most the head size " + headDim);
        check(rmsEps > 0 && Float.isFinite(rmsEps), "rms epsilon must be positive, got " + rmsEps);
        check(ropeTheta > 0 && Float.isFinite(ropeTheta), "rope base must be positive, got " + ropeTheta);
        check((long) heads * headDim <= Integer.MAX_VALUE / 4 && (long) dim * ffnDim < (1L << 40),
                "sizes are implausibly large: " + this);
        check(ropeScaling != null, "rope scaling must be given (RopeScaling.NONE for none)");
        // The graph folds YaRN's cos/sin factor into the attention scale, which is exact only when
        // every element of the head is rotated (see LlamaGraph).
        check(ropeScaling.attentionFactor() == 1 || ropeDimensions == headDim,
                "rope scaling with an attention factor needs every element of the head rotated, but "
                        + ropeDimensions + " of " + headDim + " are");
    }

    /** Without q/k norms (Llama, Mistral). */
    public LlamaConfig(int dim, int layers, int heads, int kvHeads, int headDim, int ffnDim, int vocabularySize,
                       int contextLength, float rmsEps, float ropeTheta, int ropeDimensions, RopeScaling ropeScaling) {
        this(dim, layers, heads, kvHeads, headDim, ffnDim, vocabularySize, contextLength, rmsEps, ropeTheta,
                ropeDimensions, ropeScaling, false);
    }

    /** Plain rope, no scaling. */
    public LlamaConfig(int dim, int layers, int heads, int kvHeads, int headDim, int ffnDim, int vocabularySize,
                       int contextLength, float rmsEps, float ropeTheta, int ropeDimensions) {
        this(dim, layers, heads, kvHeads, headDim, ffnDim, vocabularySize, contextLength, rmsEps, ropeTheta,
                ropeDimensions, RopeScaling.NONE, false);
    }

    public int queryDim() {
        return heads * headDim;
    }

    public int kvDim() {
        return kvHeads * headDim;
    }

    /** The GGUF general.architecture values this graph runs. */
    public static final List<String> GGUF_ARCHITECTURES = List.of("llama", "qwen3");

    /**
     * Whether llama.cpp ropes this GGUF architecture NEOX-style ("rotate half": element i with
     * i + ropeDims/2), so that its converter leaves the q/k rows in Hugging Face's order: qwen3
     * (llama_model_rope_type in llama-model.cpp returns LLAMA_ROPE_TYPE_NEOX for QWEN2/QWEN3, and
     * convert_hf_to_gguf.py's Qwen2Model/Qwen3Model do not permute). The loader puts such rows in
     * the adjacent-pair order the rope kernels use ({@code RotateHalfTensors}).
     */
    public static boolean ggufRopeIsRotateHalf(String architecture) {
        return architecture.equals("qwen3");
    }

    /** Reads the {@code <arch>.*} keys llama.cpp writes, for the architectures in {@link #GGUF_ARCHITECTURES}. */
    public static LlamaConfig fromGguf(Path file, GgufMetadata m, int vocabularySize) {
        String arch = m.getString("general.architecture");
        if (!GGUF_ARCHITECTURES.contains(arch)) {
            throw new ModelFormatException(file, -1,
                    "architecture '" + arch + "' is not supported (supported: " + String.join(", ", GGUF_ARCHITECTURES) + ")");
        }
        String k = arch + ".";
        boolean qkNorm = arch.equals("qwen3");
        int dim = m.getInt(k + "embedding_length");
        int heads = m.getInt(k + "attention.head_count");
        Optional<Integer> keyLength = m.optInt(k + "attention.key_length");
        if (heads <= 0 || dim <= 0 || (keyLength.isEmpty() && dim % heads != 0)) {
            throw new ModelFormatException(file, -1, k + "embedding_length " + dim
                    + " is not a positive multiple of " + k + "attention.head_count " + heads + " (and there is no "
                    + k + "attention.key_length)");
        }
        int headDim = keyLength.orElse(dim / heads);
        int valueLength = m.optInt(k + "attention.value_length").orElse(headDim);
        if (valueLength != headDim) {
            throw new ModelFormatException(file, -1, k + "attention.value_length " + valueLength + " differs from "
                    + k + "attention.key_length " + headDim + " (supported: equal)");
        }
        int ropeDims = m.optInt(k + "rope.dimension_count").orElse(headDim);
        if (ggufRopeIsRotateHalf(arch) && ropeDims != headDim) {
            throw new ModelFormatException(file, -1, k + "rope.dimension_count " + ropeDims + " is not the head size "
                    + headDim + "; partial rotate-half rope is not supported");
        }
        int contextLength = m.optInt(k + "context_length").orElse(2048);
        try {
            return new LlamaConfig(
                    dim,
                    m.getInt(k + "block_count"),
                    heads,
                    m.optInt(k + "attention.head_count_kv").orElse(heads),
                    headDim,
                    m.getInt(k + "feed_forward_length"),
                    vocabularySize,
                    contextLength,
                    m.optFloat(k + "attention.layer_norm_rms_epsilon").orElse(1e-5f),
                    m.optFloat(k + "rope.freq_base").orElse(10000f),
                    ropeDims,
                    ropeScalingFromGguf(file, m, arch, contextLength),
                    qkNorm);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(file, -1, "invalid " + arch + " hyper-parameters: " + e.getMessage());
        }
    }

    /**
     * The {@code llama.rope.scaling.*} keys as llama.cpp reads them: without a type, a factor means
     * linear (llama.cpp's default); "none", "linear" and "yarn" are supported. The llama3 scaling
     * is not here: llama.cpp's converter stores it as the rope_freqs.weight tensor, which
     * {@link LlamaWeights} reads.
     */
    static RopeScaling ropeScalingFromGguf(Path file, GgufMetadata m, int contextLength) {
        return ropeScalingFromGguf(file, m, "llama", contextLength);
    }

    static RopeScaling ropeScalingFromGguf(Path file, GgufMetadata m, String arch, int contextLength) {
        String p = arch + ".rope.scaling.";
        // rope.scale_linear is the key's older name, which llama.cpp still reads.
        Optional<Float> factor = m.optFloat(p + "factor").or(() -> m.optFloat(arch + ".rope.scale_linear"));
        String type = m.optString(p + "type").orElse(factor.isPresent() ? "linear" : "none");
        try {
            return switch (type) {
                case "none" -> {
                    if (factor.isPresent() && factor.get() != 1f) {
                        throw new ModelFormatException(file, -1, p + "factor is " + factor.get() + " but " + p + "type is none");
                    }
                    yield RopeScaling.NONE;
                }
                // llama.cpp reads a factor of 0 (or none) as no scaling.
                case "linear" -> factor.isEmpty() || factor.get() == 0f || factor.get() == 1f
                        ? RopeScaling.NONE : new RopeScaling.Linear(factor.get());
                case "yarn" -> {
                    float f = m.getFloat(p + "factor");
                    // Extrapolation factors and DeepSeek's log multiplier change the formula; refuse rather than guess.
                    float ext = m.optFloat(p + "yarn_ext_factor").orElse(1f);
                    float logMul = m.optFloat(p + "yarn_log_multiplier").orElse(0f);
                    if (ext != 1f || logMul != 0f) {
                        throw new ModelFormatException(file, -1, "yarn with " + p + "yarn_ext_factor " + ext + " and "
                                + p + "yarn_log_multiplier " + logMul + " is not supported (supported: 1 and 0)");
                    }
                    yield new RopeScaling.Yarn(f,
                            m.optInt(p + "original_context_length").orElse(contextLength),
                            m.optFloat(p + "yarn_beta_fast").orElse(32f),
                            m.optFloat(p + "yarn_beta_slow").orElse(1f),
                            // The converter copies transformers' attention_factor here when config.json has one.
                            m.optFloat(p + "yarn_attn_factor").map(Float::doubleValue)
                                    .orElse(RopeScaling.Yarn.defaultAttentionFactor(f)),
                            true);
                }
                default -> throw new ModelFormatException(file, -1, p + "type is \"" + type
                        + "\", which is not supported (supported: none, linear, yarn)");
            };
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(file, -1, "invalid rope scaling: " + e.getMessage());
        }
    }

    /** The config.json architectures this graph runs exactly. */
    public static final List<String> HF_ARCHITECTURES = List.of("LlamaForCausalLM", "MistralForCausalLM", "Qwen3ForCausalLM");

    /**
     * Reads a Hugging Face {@code config.json} with transformers' defaults for the keys it may
     * omit. Rejects, naming the key, whatever this graph would compute differently: another
     * architecture, biases, an activation other than SiLU, sliding-window attention, a rope scaling
     * type other than default, linear, llama3 and yarn.
     */
    public static LlamaConfig fromHuggingFace(HfConfig c) {
        List<String> architectures = c.getStrings("architectures");
        String arch = architectures.isEmpty() ? "(none)" : architectures.getFirst();
        if (arch.equals("Qwen2ForCausalLM")) {
            throw c.error("architectures", "is Qwen2ForCausalLM, which is not supported: its attention has q/k/v biases "
                    + "and the Llama graph has none (supported: " + String.join(", ", HF_ARCHITECTURES) + ")");
        }
        if (!HF_ARCHITECTURES.contains(arch)) {
            throw c.error("architectures", "is " + architectures + ", which is not supported (supported: "
                    + String.join(", ", HF_ARCHITECTURES) + ")");
        }
        String act = c.optString("hidden_act").orElse("silu");
        if (!act.equals("silu")) {
            throw c.error("hidden_act", "is \"" + act + "\"; only silu (SwiGLU) is supported");
        }
        for (String bias : List.of("attention_bias", "mlp_bias")) {
            if (c.optBoolean(bias).orElse(false)) {
                throw c.error(bias, "is true; the Llama graph has no biases");
            }
        }
        boolean qwen3 = arch.equals("Qwen3ForCausalLM");
        // Qwen3's config.json states sliding_window with use_sliding_window false, which transformers ignores.
        if (c.has("sliding_window") && !(qwen3 && !c.optBoolean("use_sliding_window").orElse(false))) {
            throw c.error("sliding_window", "is set; sliding-window attention is not supported (the graph attends to the whole context)");
        }
        int dim = c.getInt("hidden_size");
        int heads = c.getInt("num_attention_heads");
        if (heads <= 0 || (!c.has("head_dim") && dim % heads != 0)) {
            throw c.error("num_attention_heads", heads + " does not divide hidden_size " + dim + " (and there is no head_dim)");
        }
        int headDim = c.optInt("head_dim").orElse(dim / heads);
        int maxPositions = c.optInt("max_position_embeddings").orElse(2048);
        // transformers 5 keeps rope_theta and the scaling together in "rope_parameters".
        Optional<HfConfig> ropeParameters = c.optObject("rope_parameters");
        double theta = c.optDouble("rope_theta")
                .or(() -> ropeParameters.flatMap(r -> r.optDouble("rope_theta"))).orElse(10000.0);
        String scalingKey = c.has("rope_scaling") || ropeParameters.isEmpty() ? "rope_scaling" : "rope_parameters";
        RopeScaling scaling = c.optObject(scalingKey).map(s -> ropeScalingFromHuggingFace(c, scalingKey, s, maxPositions))
                .orElse(RopeScaling.NONE);
        try {
            return new LlamaConfig(
                    dim,
                    c.getInt("num_hidden_layers"),
                    heads,
                    c.optInt("num_key_value_heads").orElse(heads),
                    headDim,
                    c.getInt("intermediate_size"),
                    c.getInt("vocab_size"),
                    maxPositions,
                    c.optDouble("rms_norm_eps").orElse(1e-6).floatValue(),
                    (float) theta,
                    headDim,
                    scaling,
                    qwen3);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(c.file(), -1, "invalid Llama hyper-parameters: " + e.getMessage());
        }
    }

    /**
     * config.json's rope_scaling, read as transformers' {@code ROPE_INIT_FUNCTIONS} do: "default",
     * "linear", "llama3" and "yarn"; any other type is refused by name.
     */
    private static RopeScaling ropeScalingFromHuggingFace(HfConfig c, String key, HfConfig s, int maxPositions) {
        // transformers names the type "rope_type" (older files: "type").
        String type = s.optString("rope_type").or(() -> s.optString("type")).orElse("(none)");
        try {
            return switch (type) {
                case "default" -> RopeScaling.NONE;
                case "linear" -> new RopeScaling.Linear(s.getDouble("factor"));
                case "llama3" -> new RopeScaling.Llama3(s.getDouble("factor"), s.getDouble("low_freq_factor"),
                        s.getDouble("high_freq_factor"), s.getInt("original_max_position_embeddings"));
                case "yarn" -> {
                    double factor = s.getDouble("factor");
                    // Explicit attention_factor, else DeepSeek's mscale pair when both are set, else the paper's.
                    Optional<Double> mscale = s.optDouble("mscale").filter(x -> x != 0);
                    Optional<Double> mscaleAllDim = s.optDouble("mscale_all_dim").filter(x -> x != 0);
                    double attention = s.optDouble("attention_factor").orElseGet(() -> mscale.isPresent() && mscaleAllDim.isPresent()
                            ? RopeScaling.Yarn.attentionFactor(factor, mscale.get(), mscaleAllDim.get())
                            : RopeScaling.Yarn.defaultAttentionFactor(factor));
                    // transformers reads beta_fast/beta_slow with `or`: 0 means the default too.
                    yield new RopeScaling.Yarn(factor,
                            s.optInt("original_max_position_embeddings").orElse(maxPositions),
                            s.optDouble("beta_fast").filter(x -> x != 0).orElse(32.0),
                            s.optDouble("beta_slow").filter(x -> x != 0).orElse(1.0),
                            attention,
                            s.optBoolean("truncate").orElse(true));
                }
                default -> throw c.error(key, "has type \"" + type
                        + "\", which is not supported (supported: null, default, linear, llama3, yarn)");
            };
        } catch (IllegalArgumentException e) {
            throw c.error(key, "is invalid: " + e.getMessage());
        }
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }
}
