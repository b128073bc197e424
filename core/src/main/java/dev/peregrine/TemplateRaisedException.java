package dev.peregrine;

/**
 * The template itself refused to render, by calling {@code raise_exception(message)} (as chat
 * templates do for unsupported roles or orderings). {@link #getMessage()} is the template's message,
 * unchanged, so that it can be shown to the user as is.
 */
public final class TemplateRaisedException extends TemplateException {
    public TemplateRaisedException(String message, int line, int column) {
        super(message, line, column, true);
    }
}
