package dev.peregrine;

/**
 * The model cannot do what was asked of it: embedding with a text generator, or generating with an
 * encoder. The message says what kind of model it is and what it can do instead.
 */
public class UnsupportedModelOperationException extends PeregrineException {
    public UnsupportedModelOperationException(String message) {
        super(message);
    }
}
