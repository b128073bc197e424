package dev.peregrine;

/**
 * The model cannot do what was asked of it: embedding with a text generator, generating with an
 * encoder, or applying a chat template the model does not have. The message says what the model
 * lacks and what to do instead.
 */
public class UnsupportedModelOperationException extends PeregrineException {
    public UnsupportedModelOperationException(String message) {
        super(message);
    }
}
