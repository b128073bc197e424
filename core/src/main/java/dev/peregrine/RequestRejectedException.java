package dev.peregrine;

/** A request was refused at once because the generator's waiting queue is full. */
public final class RequestRejectedException extends PeregrineException {
    public RequestRejectedException(String message) {
        super(message);
    }
}
