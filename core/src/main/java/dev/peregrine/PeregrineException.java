package dev.peregrine;

/** Base of every exception Peregrine throws on purpose. Unchecked, like {@link java.io.UncheckedIOException}. */
public class PeregrineException extends RuntimeException {
    public PeregrineException(String message) {
        super(message);
    }

    public PeregrineException(String message, Throwable cause) {
        super(message, cause);
    }
}
