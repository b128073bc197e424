package dev.peregrine.format.hf;

import dev.peregrine.tensor.DType;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The {@code config.json} of a Hugging Face checkpoint of a Llama-family decoder (and its
 * {@code generation_config.json}): the keys transformers reads to build the model.
 *
 * @param torchDtype   the checkpoint's tensor type: F32, F16 or BF16
 * @param ropeScaling  config.json's rope_scaling object (rope_type and its parameters), or null
 * @param architecture the transformers class, e.g. LlamaForCausalLM
 * @param modelType    config.json's model_type, e.g. "llama"
 * @param familyKeys   the keys of the family beyond Llama's (sliding_window, query_pre_attn_scalar,
 *                     hidden_activation, soft-caps ...), written as given; they override Llama's
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
        String architecture,
        String modelType,
        Map<String, Object> familyKeys) {

    /** LlamaForCausalLM. */
    public HfLlamaConfig(int hiddenSize, int intermediateSize, int numHiddenLayers, int numAttentionHeads,
                         int numKeyValueHeads, int headDim, int maxPositionEmbeddings, float rmsNormEps, float ropeTheta,
                         int vocabSize, boolean tieWordEmbeddings, DType torchDtype, int bosTokenId, int eosTokenId,
                         Map<String, Object> ropeScaling) {
        this(hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, numKeyValueHeads, headDim,
                maxPositionEmbeddings, rmsNormEps, ropeTheta, vocabSize, tieWordEmbeddings, torchDtype, bosTokenId,
                eosTokenId, ropeScaling, "LlamaForCausalLM", "llama", Map.of());
    }

    public HfLlamaConfig {
        torchDtypeName(torchDtype);
        ropeScaling = ropeScaling == null ? null : Map.copyOf(ropeScaling);
        // Values may be null (JSON null: Gemma 3's soft-caps), which Map.copyOf refuses.
        familyKeys = Collections.unmodifiableMap(new TreeMap<>(familyKeys));
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
        c.put("model_type", modelType);
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
        c.putAll(familyKeys);
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
