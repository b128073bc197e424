package dev.peregrine.spi;

/** The activation applied to the gate of a gated feed-forward block ({@link Backend#gatedActivation}). */
public enum Activation {
    /** {@code x * sigmoid(x)}: SwiGLU (Llama, Mistral, Qwen, Phi-3). */
    SILU,
    /**
     * GELU with the tanh approximation, {@code 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))}:
     * GeGLU (Gemma; PyTorch's {@code gelu(approximate="tanh")}, ggml's {@code gelu}).
     */
    GELU_TANH
}
