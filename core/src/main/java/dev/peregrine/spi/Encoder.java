package dev.peregrine.spi;

import java.nio.FloatBuffer;
import java.util.function.Consumer;

/**
 * An opened encoder model: token ids in, one hidden state per token out. Thread-safe: runs from
 * several threads may go on at once or one after the other, as the implementation chooses.
 */
public interface Encoder extends AutoCloseable {
    /** Width of one token's hidden state (384 for MiniLM-L6, bge-small, e5-small). */
    int hiddenSize();

    /**
     * The sequence length the model's inputs are fixed to, or 0 when it is dynamic. When fixed,
     * every batch must be padded to exactly this length.
     */
    int fixedLength();

    /**
     * The most texts one run may hold without changing any text's result, or 0 for no limit. A model
     * whose activations are quantised with one scale for the whole batch (ONNX's dynamic int8
     * quantisation) gives a text a vector that depends on the other texts of its batch: it says 1.
     */
    int maxBatchSize();

    /** Whether the model takes token_type_ids. */
    boolean usesTokenTypeIds();

    /** A short description: runtime, device, model file. */
    String description();

    /**
     * Runs one padded batch. {@code output} receives last_hidden_state as floats
     * {@code [batch.size(), batch.length(), hiddenSize()]}, row-major, positioned at 0. The buffer
     * belongs to the encoder and is valid only during the call: read it there, do not keep it.
     */
    void run(EncoderBatch batch, Consumer<FloatBuffer> output);

    /** Frees the runtime session and buffers. Calls after this fail. */
    @Override
    void close();
}
