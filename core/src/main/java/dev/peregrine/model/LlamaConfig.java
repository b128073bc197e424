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
        int ropeDimensions) {

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
    }

    public int queryDim() {
        return heads * headDim;
    }

    public int kvDim() {
        return kvHeads * headDim;
    }

    /** Reads the {@code llama.*} keys llama.cpp writes. */
    public static LlamaConfig fromGguf(Path file, GgufMetadata m, int vocabularySize) {
        String arch = m.getString("general.architecture");
        if (!arch.equals("llama")) {
            throw new ModelFormatException(file, -1,
                    "architecture '" + arch + "' is not supported (supported: llama)");
        }
        int dim = m.getInt("llama.embedding_length");
        int heads = m.getInt("llama.attention.head_count");
        if (heads <= 0 || dim <= 0 || dim % heads != 0) {
            throw new ModelFormatException(file, -1, "llama.embedding_length " + dim
                    + " is not a positive multiple of llama.attention.head_count " + heads);
        }
        int headDim = m.optInt("llama.attention.key_length").orElse(dim / heads);
        int ropeDims = m.optInt("llama.rope.dimension_count").orElse(headDim);
        try {
            return new LlamaConfig(
                    dim,
                    m.getInt("llama.block_count"),
                    heads,
                    m.optInt("llama.attention.head_count_kv").orElse(heads),
                    headDim,
                    m.getInt("llama.feed_forward_length"),
                    vocabularySize,
                    m.optInt("llama.context_length").orElse(2048),
                    m.optFloat("llama.attention.layer_norm_rms_epsilon").orElse(1e-5f),
                    m.optFloat("llama.rope.freq_base").orElse(10000f),
                    ropeDims);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(file, -1, "invalid llama hyper-parameters: " + e.getMessage());
        }
    }

    /** The config.json architectures this graph runs exactly. */
    public static final List<String> HF_ARCHITECTURES = List.of("LlamaForCausalLM", "MistralForCausalLM");

    /**
     * Reads a Hugging Face {@code config.json} with transformers' defaults for the keys it may
     * omit. Rejects, naming the key, whatever this graph would compute differently: another
     * architecture, biases, an activation other than SiLU, sliding-window attention, rope scaling.
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
        if (c.has("sliding_window")) {
            throw c.error("sliding_window", "is set; sliding-window attention is not supported (the graph attends to the whole context)");
        }
        Optional<HfConfig> scaling = c.optObject("rope_scaling");
        if (scaling.isPresent()) {
            // transformers names the type "rope_type" (older files: "type"); "default" is plain rope.
            HfConfig s = scaling.get();
            String type = s.optString("rope_type").or(() -> s.optString("type")).orElse("(none)");
            if (!type.equals("default")) {
                throw c.error("rope_scaling", "has type \"" + type + "\", which is not supported (supported: null, default)");
            }
        }
        int dim = c.getInt("hidden_size");
        int heads = c.getInt("num_attention_heads");
        if (heads <= 0 || (!c.has("head_dim") && dim % heads != 0)) {
            throw c.error("num_attention_heads", heads + " does not divide hidden_size " + dim + " (and there is no head_dim)");
        }
        int headDim = c.optInt("head_dim").orElse(dim / heads);
        try {
            return new LlamaConfig(
                    dim,
                    c.getInt("num_hidden_layers"),
                    heads,
                    c.optInt("num_key_value_heads").orElse(heads),
                    headDim,
                    c.getInt("intermediate_size"),
                    c.getInt("vocab_size"),
                    c.optInt("max_position_embeddings").orElse(2048),
                    c.optDouble("rms_norm_eps").orElse(1e-6).floatValue(),
                    c.optDouble("rope_theta").orElse(10000.0).floatValue(),
                    headDim);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(c.file(), -1, "invalid Llama hyper-parameters: " + e.getMessage());
        }
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }
}
