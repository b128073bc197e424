package dev.peregrine;

/** Why a generation ended. */
public enum FinishReason {
    /** The model generated an end-of-generation token (EOS, end of turn). */
    END_OF_SEQUENCE,
    /** One of the config's stop tokens was generated. */
    STOP_TOKEN,
    /** The generated text reached one of the config's stop strings. */
    STOP_STRING,
    /** {@link GenerationConfig#maxTokens()} tokens were generated. */
    MAX_TOKENS,
    /**
     * The sequence filled the model's context length, or grew to fill the whole KV cache
     * ({@link ModelOptions#kvCacheTokens()}), which bounds a sequence as a context does.
     */
    CONTEXT_FULL,
    /** The request was cancelled (a closed stream, a cancelled future, an interrupted caller). */
    CANCELLED,
    /** The request's timeout ({@link GenerationConfig#timeout()}) passed before it finished. */
    TIMEOUT
}
