package dev.peregrine.model;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufMetadata;
import dev.peregrine.format.hf.HfConfig;
import dev.peregrine.spi.Activation;
import java.nio.file.Path;
import java.util.Collections;
import java.util.List;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Hyper-parameters of a decoder the Llama graph runs: a Llama block with the options its
 * {@link Family} and its files add.
 *
 * @param ropeDimensions   how many leading elements of each head are rotated (usually headDim)
 * @param contextLength    the context the model was trained with, as its file states it
 * @param ropeScaling      how the rotary frequencies are stretched ({@link RopeScaling#NONE} for plain rope)
 * @param family           what the block adds to Llama's (biases, q/k norms, Gemma's norms and GeGLU, fused tensors)
 * @param queryScale       a score is {@code queryScale * q.k} (before YaRN's attention factor):
 *                         {@code 1/sqrt(headDim)}, or Gemma's {@code 1/sqrt(query_pre_attn_scalar)}
 * @param layerWindows     per layer, 0 for attention to the whole context, or the sliding window:
 *                         a token at position p attends to positions p - window + 1 .. p
 * @param attentionSoftcap 0, or Gemma 2's bound c on attention scores: s becomes c tanh(s / c)
 * @param finalSoftcap     0, or Gemma 2's bound on the logits, applied the same way
 * @param slidingRopeTheta 0 when every layer has the same rope; else the rope base of the
 *                         sliding-window layers: Gemma 3's local layers, which are not rope-scaled,
 *                         or another family's stated {@code rope.freq_base_swa}, scaled as the others
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
        Family family,
        float queryScale,
        List<Integer> layerWindows,
        float attentionSoftcap,
        float finalSoftcap,
        float slidingRopeTheta) {

    public LlamaConfig {
        check(layers <= MAX_LAYERS, "at most " + MAX_LAYERS + " layers, got " + layers);
        // Named from the parameters: in a compact constructor the fields (and toString) are not yet set.
        String notPositive = notPositive("dim", dim) + notPositive("layers", layers) + notPositive("heads", heads)
                + notPositive("KV heads", kvHeads) + notPositive("head size", headDim) + notPositive("FFN size", ffnDim)
                + notPositive("vocabulary size", vocabularySize) + notPositive("context length", contextLength);
        check(notPositive.isEmpty(), "sizes must be positive, got " + notPositive.replaceFirst("^, ", ""));
        check(heads % kvHeads == 0, "head count " + heads + " is not a multiple of the KV head count " + kvHeads);
        check(ropeDimensions > 0 && ropeDimensions % 2 == 0 && ropeDimensions <= headDim,
                "rope dimension count " + ropeDimensions + " must be even and at most the head size " + headDim);
        check(rmsEps > 0 && Float.isFinite(rmsEps), "rms epsilon must be positive, got " + rmsEps);
        check(ropeTheta > 0 && Float.isFinite(ropeTheta), "rope base must be positive, got " + ropeTheta);
        check((long) heads * headDim <= Integer.MAX_VALUE / 4 && (long) dim * ffnDim < (1L << 40),
                "sizes are implausibly large: dim " + dim + ", FFN size " + ffnDim + ", " + heads + " heads of " + headDim);
        check(ropeScaling != null, "rope scaling must be given (RopeScaling.NONE for none)");
        check(family != null, "the family must be given");
        // The graph folds YaRN's cos/sin factor into the attention scale, which is exact only when
        // every element of the head is rotated (see LlamaGraph).
        check(ropeScaling.attentionFactor() == 1 || ropeDimensions == headDim,
                "rope scaling with an attention factor needs every element of the head rotated, but "
                        + ropeDimensions + " of " + headDim + " are");
        check(queryScale > 0 && Float.isFinite(queryScale), "the attention scale must be positive, got " + queryScale);
        layerWindows = layerWindows == null ? List.of() : List.copyOf(layerWindows);
        check(layerWindows.size() == layers, layerWindows.size() + " layer windows for " + layers + " layers");
        for (int window : layerWindows) {
            check(window >= 0, "a sliding window must be positive (or 0 for none), got " + window);
        }
        check(attentionSoftcap >= 0 && Float.isFinite(attentionSoftcap), "attention soft-cap must be >= 0, got " + attentionSoftcap);
        check(finalSoftcap >= 0 && Float.isFinite(finalSoftcap), "final soft-cap must be >= 0, got " + finalSoftcap);
        check(slidingRopeTheta >= 0 && Float.isFinite(slidingRopeTheta), "sliding rope base must be >= 0, got " + slidingRopeTheta);
    }

    /** A Llama without sliding windows or soft-caps. */
    public LlamaConfig(int dim, int layers, int heads, int kvHeads, int headDim, int ffnDim, int vocabularySize,
                       int contextLength, float rmsEps, float ropeTheta, int ropeDimensions, RopeScaling ropeScaling) {
        this(dim, layers, heads, kvHeads, headDim, ffnDim, vocabularySize, contextLength, rmsEps, ropeTheta,
                ropeDimensions, ropeScaling, Family.LLAMA, defaultQueryScale(headDim), noWindows(layers), 0, 0, 0);
    }

    /** Plain rope, no scaling. */
    public LlamaConfig(int dim, int layers, int heads, int kvHeads, int headDim, int ffnDim, int vocabularySize,
                       int contextLength, float rmsEps, float ropeTheta, int ropeDimensions) {
        this(dim, layers, heads, kvHeads, headDim, ffnDim, vocabularySize, contextLength, rmsEps, ropeTheta,
                ropeDimensions, RopeScaling.NONE);
    }

    public int queryDim() {
        return heads * headDim;
    }

    public int kvDim() {
        return kvHeads * headDim;
    }

    /** Per-head q/k RMS norms (Qwen3, Gemma 3). */
    public boolean qkNorm() {
        return family.qkNorm();
    }

    /** The sliding window of layer {@code layer}, 0 for none. */
    public int window(int layer) {
        return layerWindows.get(layer);
    }

    /** Whether the layer ropes with {@link #slidingRopeTheta} instead of the model's rope. */
    public boolean usesSlidingRope(int layer) {
        return slidingRopeTheta > 0 && window(layer) > 0;
    }

    /** 1/sqrt(headDim), the transformer's usual score scale. */
    public static float defaultQueryScale(int headDim) {
        return (float) (1 / Math.sqrt(headDim));
    }

    static List<Integer> noWindows(int layers) {
        return Collections.nCopies(Math.max(layers, 0), 0);
    }

    /**
     * Which layers slide, as the families define it: Mistral and Phi-3 every layer; Gemma 2 every
     * other layer starting with the first (transformers: sliding when (i + 1) % 2 != 0; llama.cpp:
     * swa pattern 2); Gemma 3 five of every six (sliding when (i + 1) % 6 != 0; llama.cpp: pattern 6).
     */
    static List<Integer> slidingLayers(int layers, int window, int pattern) {
        Integer[] w = new Integer[layers];
        for (int i = 0; i < layers; i++) {
            w[i] = window > 0 && (pattern <= 1 || (i + 1) % pattern != 0) ? window : 0;
        }
        return List.of(w);
    }

    /** How many layers form one period of sliding and global layers, by family: 0 or 1 for all sliding. */
    static int slidingPattern(Family family) {
        return switch (family) {
            case GEMMA2 -> 2;
            case GEMMA3 -> 6;
            default -> 1;
        };
    }

    /**
     * Most layers a model may state: llama.cpp's LLAMA_MAX_LAYERS. The files' counts are checked
     * against it before any per-layer table is sized by them (a corrupted count of 2^31 - 1 ran
     * the JVM out of memory).
     */
    public static final int MAX_LAYERS = 512;

    private static final Logger LOG = LoggerFactory.getLogger(LlamaConfig.class);

    /** The GGUF general.architecture values this graph runs. */
    public static final List<String> GGUF_ARCHITECTURES = Family.ggufArchitectures();

    /** Gemma 3's rope base of its sliding layers when the file states none (llama.cpp and transformers: 10000). */
    static final float GEMMA3_SLIDING_ROPE_THETA = 10000f;

    /** Reads the {@code <arch>.*} keys llama.cpp writes, for the architectures in {@link #GGUF_ARCHITECTURES}. */
    public static LlamaConfig fromGguf(Path file, GgufMetadata m, int vocabularySize) {
        String arch = m.getString("general.architecture");
        Family family = Family.ofGguf(arch).orElseThrow(() -> new ModelFormatException(file, -1,
                "architecture '" + arch + "' is not supported (supported: " + String.join(", ", GGUF_ARCHITECTURES) + ")"));
        String k = arch + ".";
        // Mixtral-style files are arch llama with experts: their feed-forward blocks are not a plain FFN.
        int experts = m.optInt(k + "expert_count").orElse(0);
        if (experts > 0) {
            throw new ModelFormatException(file, -1, k + "expert_count is " + experts
                    + ": mixture-of-experts models are not supported");
        }
        int dim = m.getInt(k + "embedding_length");
        int heads = m.getInt(k + "attention.head_count");
        int layers = m.getInt(k + "block_count");
        if (layers < 1 || layers > MAX_LAYERS) {
            throw new ModelFormatException(file, -1, k + "block_count is " + layers + "; it must be 1 to " + MAX_LAYERS);
        }
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
        int contextLength = m.optInt(k + "context_length").orElse(2048);
        // llama.cpp's defaults where the file is silent: Gemma 2 slides 4096 and caps at 50 / 30
        // (llama-hparams.h); the others have no window (a Gemma 3 file without one is all global).
        boolean gemma2 = family == Family.GEMMA2;
        int window = m.optInt(k + "attention.sliding_window").orElse(gemma2 ? 4096 : 0);
        if (window < 0) {
            throw new ModelFormatException(file, -1, k + "attention.sliding_window is " + window + "; it must be positive");
        }
        if (window > 0 && family != Family.GEMMA2 && family != Family.GEMMA3) {
            // A GGUF file runs as llama.cpp runs it: llama.cpp reads no window for llama, qwen2 and
            // qwen3, and has disabled Phi-3's (PR 13676), so those layers see the whole context. (A
            // Hugging Face directory is read as transformers reads it, windows included.)
            LOG.info("{}: {}attention.sliding_window {} is ignored, as llama.cpp ignores it: every layer attends to "
                    + "the whole context", file, k, window);
            window = 0;
        }
        // Gemma's score scale: llama.cpp (llama-model.cpp, LLM_ARCH_GEMMA2/GEMMA3) uses 1/sqrt(headDim),
        // except for the 27B sizes (46 and 62 layers), whose query_pre_attn_scalar is dim / heads.
        float queryScale = defaultQueryScale(headDim);
        if ((family == Family.GEMMA2 && layers == 46) || (family == Family.GEMMA3 && layers == 62)) {
            queryScale = defaultQueryScale(dim / heads);
        }
        // The sliding layers' rope base: Gemma 3's 10000 unless stated; any other family's only when
        // stated (llama.cpp reads rope.freq_base_swa for every architecture's sliding layers).
        float slidingTheta = family == Family.GEMMA3
                ? m.optFloat(k + "rope.freq_base_swa").orElse(GEMMA3_SLIDING_ROPE_THETA)
                : window > 0 ? m.optFloat(k + "rope.freq_base_swa").orElse(0f) : 0f;
        try {
            return new LlamaConfig(
                    dim,
                    layers,
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
                    family,
                    queryScale,
                    slidingLayers(layers, window, slidingPattern(family)),
                    m.optFloat(k + "attn_logit_softcapping").orElse(gemma2 ? 50f : 0f),
                    m.optFloat(k + "final_logit_softcapping").orElse(gemma2 ? 30f : 0f),
                    slidingTheta);
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
        float attnFactor = m.optFloat(p + "attn_factor").orElse(1f);
        if (attnFactor != 1f) {
            // llama.cpp multiplies cos and sin by it; only LongRoPE files (Phi-3 128k) carry it.
            throw new ModelFormatException(file, -1, p + "attn_factor " + attnFactor + " is not supported (1 only)");
        }
        try {
            return switch (type) {
                case "none" -> {
                    if (factor.isPresent() && factor.get() != 1f) {
                        // llama.cpp runs such a file unscaled too
                        LOG.warn("{}: {}factor is {} but {}type is none: no rope scaling", file, p, factor.get(), p);
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
    public static final List<String> HF_ARCHITECTURES = Family.hfArchitectureNames();

    /**
     * Reads a Hugging Face {@code config.json} with transformers' defaults for the keys it may
     * omit. Rejects, naming the key, whatever this graph would compute differently: another
     * architecture, biases where the family has none, another activation, a rope scaling type other
     * than default, linear, llama3 and yarn.
     */
    public static LlamaConfig fromHuggingFace(HfConfig c) {
        List<String> architectures = c.getStrings("architectures");
        String arch = architectures.isEmpty() ? "(none)" : architectures.getFirst();
        Family family = Family.ofHuggingFace(arch).orElseThrow(() -> c.error("architectures", "is " + architectures
                + ", which is not supported (supported: " + String.join(", ", HF_ARCHITECTURES) + ")"));
        // Gemma names it hidden_activation (hidden_act is an older spelling of the same).
        String actKey = c.has("hidden_activation") ? "hidden_activation" : "hidden_act";
        String act = c.optString(actKey).orElse(family.activation() == Activation.SILU ? "silu" : "gelu_pytorch_tanh");
        boolean actMatches = switch (family.activation()) {
            case SILU -> act.equals("silu");
            case GELU_TANH -> act.equals("gelu_pytorch_tanh") || act.equals("gelu_tanh");
        };
        if (!actMatches) {
            throw c.error(actKey, "is \"" + act + "\"; " + arch + " is supported with "
                    + (family.activation() == Activation.SILU ? "silu (SwiGLU)" : "gelu_pytorch_tanh (GeGLU)"));
        }
        for (String bias : List.of("attention_bias", "mlp_bias")) {
            if (!family.qkvBias() && c.optBoolean(bias).orElse(false)) {
                throw c.error(bias, "is true; " + arch + " is supported without biases");
            }
        }
        int dim = c.getInt("hidden_size");
        int heads = c.getInt("num_attention_heads");
        int layers = c.getInt("num_hidden_layers");
        if (layers < 1 || layers > MAX_LAYERS) {
            throw c.error("num_hidden_layers", "is " + layers + "; it must be 1 to " + MAX_LAYERS);
        }
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
        double rotary = c.optDouble("partial_rotary_factor").orElse(1.0);
        int ropeDims = (int) (headDim * rotary);
        boolean gemma = family.scaledEmbeddingAndPostNorms();
        float queryScale = gemma
                ? (float) (1 / Math.sqrt(c.optDouble("query_pre_attn_scalar").orElse((double) headDim)))
                : defaultQueryScale(headDim);
        try {
            return new LlamaConfig(
                    dim,
                    layers,
                    heads,
                    c.optInt("num_key_value_heads").orElse(heads),
                    headDim,
                    c.getInt("intermediate_size"),
                    c.getInt("vocab_size"),
                    maxPositions,
                    c.optDouble("rms_norm_eps").orElse(1e-6).floatValue(),
                    (float) theta,
                    ropeDims,
                    scaling,
                    family,
                    queryScale,
                    hfLayerWindows(c, family, arch, layers),
                    // transformers' Gemma2Config defaults are 50 and 30; null (or absent for Gemma 3) is none.
                    family == Family.GEMMA2 && !c.states("attn_logit_softcapping") ? 50f
                            : c.optDouble("attn_logit_softcapping").orElse(0.0).floatValue(),
                    family == Family.GEMMA2 && !c.states("final_logit_softcapping") ? 30f
                            : c.optDouble("final_logit_softcapping").orElse(0.0).floatValue(),
                    family == Family.GEMMA3
                            ? c.optDouble("rope_local_base_freq").orElse((double) GEMMA3_SLIDING_ROPE_THETA).floatValue() : 0f);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(c.file(), -1, "invalid " + arch + " hyper-parameters: " + e.getMessage());
        }
    }

    /**
     * Each layer's sliding window as transformers builds it: none without {@code sliding_window};
     * Qwen2/Qwen3 only with {@code use_sliding_window} (their configs state a window they do not
     * use); {@code layer_types} ("sliding_attention" / "full_attention") when the config lists
     * them; else Mistral and Phi-3 slide every layer, Qwen the layers from {@code max_window_layers}
     * on, Gemma by its pattern ({@code sliding_window_pattern} for Gemma 3, default 6).
     */
    private static List<Integer> hfLayerWindows(HfConfig c, Family family, String arch, int layers) {
        int window = c.optInt("sliding_window").orElse(0);
        boolean qwen = family == Family.QWEN2 || family == Family.QWEN3;
        if (window <= 0 || (qwen && !c.optBoolean("use_sliding_window").orElse(false))) {
            return noWindows(layers);
        }
        if (arch.equals("LlamaForCausalLM")) {
            throw c.error("sliding_window", "is set, but LlamaForCausalLM has no sliding-window attention");
        }
        List<String> types = c.has("layer_types") ? c.getStrings("layer_types") : null;
        if (types != null) {
            if (types.size() != layers) {
                throw c.error("layer_types", "lists " + types.size() + " layers, but num_hidden_layers is " + layers);
            }
            Integer[] w = new Integer[layers];
            for (int i = 0; i < layers; i++) {
                w[i] = switch (types.get(i)) {
                    case "sliding_attention" -> window;
                    case "full_attention" -> 0;
                    default -> throw c.error("layer_types", "has \"" + types.get(i)
                            + "\" (supported: sliding_attention, full_attention)");
                };
            }
            return List.of(w);
        }
        if (qwen) {
            int from = c.optInt("max_window_layers").orElse(layers);
            Integer[] w = new Integer[layers];
            for (int i = 0; i < layers; i++) {
                w[i] = i >= from ? window : 0;
            }
            return List.of(w);
        }
        int pattern = family == Family.GEMMA3 ? c.optInt("sliding_window_pattern").orElse(6) : slidingPattern(family);
        return slidingLayers(layers, window, pattern);
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

    /** ", name value" (for a message listing sizes) when {@code value} is not positive, else "". */
    private static String notPositive(String name, long value) {
        return value > 0 ? "" : ", " + name + " " + value;
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }
}
