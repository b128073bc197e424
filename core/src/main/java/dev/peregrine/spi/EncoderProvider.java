package dev.peregrine.spi;

import java.nio.file.Path;

/**
 * Opens encoder models (BERT-family sentence embedders) in some runtime, e.g. ONNX Runtime.
 * Implementations are registered with {@link java.util.ServiceLoader}; {@code Model.load} asks
 * each one whether it {@link #accepts} the model file and opens it with the first that does.
 */
public interface EncoderProvider {
    /** Short name for messages, e.g. "onnx". */
    String name();

    /** Whether this provider reads this kind of file (judged by its name; cheap, never throws). */
    boolean accepts(Path modelFile);

    /**
     * Opens the model. The file is checked to be an encoder here, so that a wrong file fails at
     * load rather than at the first call.
     *
     * @throws dev.peregrine.ModelFormatException if the file is malformed or is not an encoder
     */
    Encoder open(Path modelFile, EncoderConfig config);
}
