package dev.peregrine;

import java.nio.file.Path;

/**
 * A model file is malformed or uses something Peregrine does not support. The message names the
 * file, the byte offset where the problem was found (when there is one) and the reason.
 */
public class ModelFormatException extends PeregrineException {
    private final long offset;

    public ModelFormatException(String message) {
        super(message);
        this.offset = -1;
    }

    public ModelFormatException(Path file, long offset, String reason) {
        super(file + (offset >= 0 ? " at byte offset " + offset : "") + ": " + reason);
        this.offset = offset;
    }

    public ModelFormatException(String message, Throwable cause) {
        super(message, cause);
        this.offset = -1;
    }

    /** The byte offset in the file where the problem was found, or -1 when it is not tied to one. */
    public long offset() {
        return offset;
    }
}
