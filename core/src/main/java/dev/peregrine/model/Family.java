package dev.peregrine.model;

import dev.peregrine.format.hf.HfLlamaLayout;
import dev.peregrine.spi.Activation;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * The decoder families the one graph ({@link LlamaGraph}) runs, as data: what each adds to or
 * changes in a Llama block. Per-model numbers (window sizes, soft-caps, scales) are in
 * {@link LlamaConfig}; this is what the family's files and equations always have.
 */
public enum Family {
    /** Llama 2/3.x, SmolLM2, TinyLlama, Mistral (with a sliding window when its config states one). */
    LLAMA("llama", List.of("LlamaForCausalLM", "MistralForCausalLM"), false, false, false, false, false),
    /** Qwen2/2.5: q/k/v biases. */
    QWEN2("qwen2", List.of("Qwen2ForCausalLM"), true, true, false, false, false),
    /** Qwen3: per-head q/k RMS norms before rope. */
    QWEN3("qwen3", List.of("Qwen3ForCausalLM"), true, false, true, false, false),
    /**
     * Gemma 2: embedding scaled by sqrt(dim), norms of (1 + w), GeGLU, a norm after attention and
     * after the feed-forward block as well as before, soft-capped attention scores and logits,
     * sliding-window attention on every other layer.
     */
    GEMMA2("gemma2", List.of("Gemma2ForCausalLM"), true, false, false, true, false),
    /** Gemma 3 (text): Gemma 2's block with q/k norms, five sliding layers to one global, two rope bases. */
    GEMMA3("gemma3", List.of("Gemma3ForCausalLM"), true, false, true, true, false),
    /** Phi-3/3.5-mini, Phi-4: fused q/k/v and gate/up projections. */
    PHI3("phi3", List.of("Phi3ForCausalLM"), true, false, false, false, true);

    private final String ggufArchitecture;
    private final List<String> hfArchitectures;
    private final boolean ropeRotateHalf;
    private final boolean qkvBias;
    private final boolean qkNorm;
    private final boolean gemma;
    private final boolean fusedProjections;

    Family(String ggufArchitecture, List<String> hfArchitectures, boolean ropeRotateHalf, boolean qkvBias, boolean qkNorm,
           boolean gemma, boolean fusedProjections) {
        this.ggufArchitecture = ggufArchitecture;
        this.hfArchitectures = hfArchitectures;
        this.ropeRotateHalf = ropeRotateHalf;
        this.qkvBias = qkvBias;
        this.qkNorm = qkNorm;
        this.gemma = gemma;
        this.fusedProjections = fusedProjections;
    }

    /** GGUF {@code general.architecture}, also the prefix of the family's metadata keys. */
    public String ggufArchitecture() {
        return ggufArchitecture;
    }

    /** config.json {@code architectures} values of this family. */
    public List<String> hfArchitectures() {
        return hfArchitectures;
    }

    /**
     * Whether llama.cpp ropes this family NEOX-style ("rotate half": element i with i + ropeDims/2),
     * so that its converter leaves the q/k rows in Hugging Face's order (llama_model_rope_type in
     * llama-model.cpp: LLAMA_ROPE_TYPE_NEOX for qwen2, qwen3, gemma2, gemma3 and phi3). The loader
     * puts such rows in the adjacent-pair order the rope kernels use ({@code RotateHalfTensors}).
     */
    public boolean ropeRotateHalf() {
        return ropeRotateHalf;
    }

    /** Biases on the q, k and v projections ({@code blk.N.attn_q.bias} ...). */
    public boolean qkvBias() {
        return qkvBias;
    }

    /** Per-head RMS norms of q and k after the projections, before rope. */
    public boolean qkNorm() {
        return qkNorm;
    }

    /** Embedding times sqrt(dim), and norms after the attention and feed-forward blocks too. */
    public boolean scaledEmbeddingAndPostNorms() {
        return gemma;
    }

    /**
     * Whether a Hugging Face checkpoint stores norm weights as {@code w} for a norm that multiplies
     * by {@code 1 + w} (Gemma's RMSNorm); llama.cpp's converter stores {@code 1 + w} in GGUF.
     */
    public boolean hfNormsAreOffsetByOne() {
        return gemma;
    }

    /** q/k/v in one tensor ({@code attn_qkv}) and gate/up in one ({@code ffn_up}, gate rows first). */
    public boolean fusedProjections() {
        return fusedProjections;
    }

    /** How the family's Hugging Face checkpoints name their tensors. */
    public HfLlamaLayout.Naming hfNaming() {
        return fusedProjections ? HfLlamaLayout.Naming.FUSED : gemma ? HfLlamaLayout.Naming.GEMMA : HfLlamaLayout.Naming.LLAMA;
    }

    public Activation activation() {
        return gemma ? Activation.GELU_TANH : Activation.SILU;
    }

    /** The family of a GGUF {@code general.architecture}, if the graph runs it. */
    public static Optional<Family> ofGguf(String architecture) {
        return Arrays.stream(values()).filter(f -> f.ggufArchitecture.equals(architecture)).findFirst();
    }

    /** The family of a config.json {@code architectures} entry, if the graph runs it. */
    public static Optional<Family> ofHuggingFace(String architecture) {
        return Arrays.stream(values()).filter(f -> f.hfArchitectures.contains(architecture)).findFirst();
    }

    /** Every GGUF architecture the graph runs, for messages. */
    public static List<String> ggufArchitectures() {
        return Arrays.stream(values()).map(Family::ggufArchitecture).toList();
    }

    /** Every config.json architecture the graph runs, for messages. */
    public static List<String> hfArchitectureNames() {
        return Arrays.stream(values()).flatMap(f -> f.hfArchitectures.stream()).toList();
    }
}
