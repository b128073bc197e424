package dev.peregrine.template;

/**
 * One lexical token. {@code text} is the operator or name spelling, the literal text of a TEXT
 * token, or the decoded value of a STRING; {@code number} holds the value of INT and FLOAT tokens.
 */
record Token(Kind kind, String text, Object number, int line, int column) {

    enum Kind {
        TEXT, VAR_BEGIN, VAR_END, BLOCK_BEGIN, BLOCK_END, NAME, STRING, INT, FLOAT, OP, EOF
    }

    boolean isOp(String s) {
        return kind == Kind.OP && text.equals(s);
    }

    boolean isName(String s) {
        return kind == Kind.NAME && text.equals(s);
    }

    /** How the token reads in an error message. */
    String describe() {
        return switch (kind) {
            case TEXT -> "template data";
            case VAR_BEGIN -> "'{{'";
            case VAR_END -> "end of print statement";
            case BLOCK_BEGIN -> "'{%'";
            case BLOCK_END -> "end of statement block";
            case EOF -> "end of template";
            case STRING -> "string literal";
            default -> "'" + text + "'";
        };
    }
}
