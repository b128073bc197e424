package dev.peregrine.template;

import dev.peregrine.TemplateException;
import dev.peregrine.TemplateRaisedException;

/**
 * An error while evaluating, thrown by code that does not know where in the template it runs; the
 * interpreter turns it into a {@link TemplateException} at the position of the node being evaluated.
 */
final class EvalError extends RuntimeException {
    private final boolean raised;

    EvalError(String message) {
        this(message, false);
    }

    /** @param raised true for raise_exception(message): the template's own message, kept as is */
    EvalError(String message, boolean raised) {
        super(message, null, false, false);
        this.raised = raised;
    }

    TemplateException at(Pos pos) {
        return raised ? new TemplateRaisedException(getMessage(), pos.line(), pos.column())
                : new TemplateException(getMessage(), pos.line(), pos.column());
    }
}
