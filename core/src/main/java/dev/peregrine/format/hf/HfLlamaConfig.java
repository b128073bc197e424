package dev.peregrine.format.hf;

import dev.peregrine.tensor.DType;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The {@code config.json} of a Hugging Face {@code LlamaForCausalLM} (or {@code Qwen3ForCausalLM}) checkpoint (and its
 * {@code generation_config.json}): the keys transformers reads to build the model.
 *
 * @param torchDtype  the checkpoint's tensor type: F32, F16 or BF16
 * @param ropeScaling config.json's rope_scaling object (rope_type and its parameters), or null
 */
public record HfLlamaConfig(
        int hiddenSize,
        int intermediateSize,
        int numHiddenLayers,
        int numAttentionHeads,
        int numKeyValueHeads,
        int headDim,
        int maxPositionEmbeddings,
        float rmsNormEps,
        float ropeTheta,
        int vocabSize,
        boolean tieWordEmbeddings,
        DType torchDtype,
        int bosTokenId,
        int eosTokenId,
        Map<String, Object> ropeScaling,
        String architecture) {

    /** LlamaForCausalLM. */
    public HfLlamaConfig(int hiddenSize, int intermediateSize, int numHiddenLayers, int numAttentionHeads,
                         int numKeyValueHeads, int headDim, int maxPositionEmbeddings, float rmsNormEps, float ropeTheta,
                         int vocabSize, boolean tieWordEmbeddings, DType torchDtype, int bosTokenId, int eosTokenId,
                         Map<String, Object> ropeScaling) {
        this(hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, numKeyValueHeads, headDim,
                maxPositionEmbeddings, rmsNormEps, ropeTheta, vocabSize, tieWordEmbeddings, torchDtype, bosTokenId,
                eosTokenId, ropeScaling, "LlamaForCausalLM");
    }

    public HfLlamaConfig {
        if (!architecture.equals("LlamaForCausalLM") && !architecture.equals("Qwen3ForCausalLM")) {
            throw new IllegalArgumentException("architecture " + architecture + " (supported: LlamaForCausalLM, Qwen3ForCausalLM)");
        }
        torchDtypeName(torchDtype);
        ropeScaling = ropeScaling == null ? null : Map.copyOf(ropeScaling);
    }

    /** Without rope scaling. */
    public HfLlamaConfig(int hiddenSize, int intermediateSize, int numHiddenLayers, int numAttentionHeads,
                         int numKeyValueHeads, int headDim, int maxPositionEmbeddings, float rmsNormEps, float ropeTheta,
                         int vocabSize, boolean tieWordEmbeddings, DType torchDtype, int bosTokenId, int eosTokenId) {
        this(hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, numKeyValueHeads, headDim,
                maxPositionEmbeddings, rmsNormEps, ropeTheta, vocabSize, tieWordEmbeddings, torchDtype, bosTokenId,
                eosTokenId, null);
    }

    /** config.json, keys sorted as transformers writes them. */
    public String configJson() {
        Map<String, Object> c = new TreeMap<>();
        c.put("architectures", List.of(architecture));
        c.put("model_type", architecture.equals("Qwen3ForCausalLM") ? "qwen3" : "llama");
        c.put("hidden_act", "silu");
        c.put("hidden_size", hiddenSize);
        c.put("intermediate_size", intermediateSize);
        c.put("num_hidden_layers", numHiddenLayers);
        c.put("num_attention_heads", numAttentionHeads);
        c.put("num_key_value_heads", numKeyValueHeads);
        c.put("head_dim", headDim);
        c.put("max_position_embeddings", maxPositionEmbeddings);
        c.put("rms_norm_eps", rmsNormEps);
        c.put("rope_theta", ropeTheta);
        if (ropeScaling != null) {
            c.put("rope_scaling", new TreeMap<>(ropeScaling));
        }
        c.put("vocab_size", vocabSize);
        c.put("tie_word_embeddings", tieWordEmbeddings);
        c.put("attention_bias", false);
        c.put("mlp_bias", false);
        c.put("torch_dtype", torchDtypeName(torchDtype));
        c.put("bos_token_id", bosTokenId);
        c.put("eos_token_id", eosTokenId);
        return JsonText.pretty(c);
    }

    public String generationConfigJson() {
        Map<String, Object> c = new TreeMap<>();
        c.put("bos_token_id", bosTokenId);
        c.put("eos_token_id", eosTokenId);
        return JsonText.pretty(c);
    }

    /** PyTorch's name for a dtype, as config.json states it. */
    public static String torchDtypeName(DType type) {
        return switch (type) {
            case F32 -> "float32";
            case F16 -> "float16";
            case BF16 -> "bfloat16";
            default -> throw new IllegalArgumentException("Hugging Face checkpoints hold float32, float16 or bfloat16 here, not " + type);
        };
    }
}
