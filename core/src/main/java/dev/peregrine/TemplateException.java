package dev.peregrine;

/**
 * A chat template (a Jinja template) that cannot be compiled or rendered: a syntax error, an
 * unknown filter, an operation on the wrong types, or a {@code raise_exception(...)} call (see
 * {@link TemplateRaisedException}). The message starts with the line and column in the template.
 */
public class TemplateException extends PeregrineException {
    private final int line;
    private final int column;

    public TemplateException(String message, int line, int column) {
        super("line " + line + ", column " + column + ": " + message);
        this.line = line;
        this.column = column;
    }

    /** For subclasses whose message is exactly what the template said. */
    protected TemplateException(String message, int line, int column, boolean plainMessage) {
        super(plainMessage ? message : "line " + line + ", column " + column + ": " + message);
        this.line = line;
        this.column = column;
    }

    /** 1-based line of the template where the error was found. */
    public int line() {
        return line;
    }

    /** 1-based column (in UTF-16 chars) of the template where the error was found. */
    public int column() {
        return column;
    }
}
