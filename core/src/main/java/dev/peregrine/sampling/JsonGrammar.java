package dev.peregrine.sampling;

/**
 * A byte-at-a-time recogniser of one JSON object (RFC 8259), the kind of output OpenAI's JSON mode
 * and llama.cpp's json grammar produce: objects, arrays, strings (escapes checked, other bytes as
 * well-formed UTF-8, RFC 3629), numbers, true, false and null. It accepts exactly the byte strings
 * that are a prefix of some such object; {@link #isComplete} says when the object has closed. Where
 * RFC 8259 leaves room for a generation to run away, it is narrower, as llama.cpp's json grammar:
 * the object starts at the first byte and nothing follows it; whitespace between tokens is one space, or a newline
 * followed by at most {@value #MAX_INDENT} spaces or tabs; at most {@value #MAX_DEPTH} containers nest.
 *
 * <p>A state is a few ints and a stack of container kinds; {@link #copyFrom} makes snapshots cheap,
 * and {@link #accepts} tries a byte string against a state without changing it or allocating.
 */
final class JsonGrammar {
    static final int MAX_DEPTH = 64;
    static final int MAX_INDENT = 20;

    // What the next byte may be.
    private static final int ROOT = 0;               // before the top-level object: '{'
    private static final int VALUE = 1;              // a value (after ':' or ',' in an array)
    private static final int KEY_OR_END = 2;         // after '{': a key or '}'
    private static final int KEY = 3;                // after ',' in an object: a key
    private static final int COLON = 4;              // after a key
    private static final int AFTER_VALUE = 5;        // ',' or the container's closing bracket
    private static final int VALUE_OR_END = 6;       // after '[': a value or ']'
    private static final int STRING = 7;             // inside a string
    private static final int ESCAPE = 8;             // after a backslash
    private static final int UNICODE = 9;            // inside \\uXXXX (count hex digits in aux)
    private static final int MINUS = 10;             // after '-': a digit
    private static final int ZERO = 11;              // a number's integer part is 0
    private static final int INTEGER = 12;           // in the integer part after 1-9
    private static final int DOT = 13;               // after '.': a digit
    private static final int FRACTION = 14;          // in the fraction
    private static final int E = 15;                 // after 'e'/'E': sign or digit
    private static final int E_SIGN = 16;            // after the exponent's sign: a digit
    private static final int EXPONENT = 17;          // in the exponent
    private static final int LITERAL = 18;           // inside true / false / null (which in aux, position in aux2)
    private static final int DONE = 19;              // the object has closed
    private static final int DEAD = 20;              // a byte did not fit

    private static final byte[][] LITERALS = {"true".getBytes(), "false".getBytes(), "null".getBytes()};
    private static final byte OBJECT = 'o';
    private static final byte ARRAY = 'a';

    private int mode = ROOT;
    private boolean inKey;       // the string being read is an object key
    private int aux;             // UNICODE: hex digits read; LITERAL: which literal
    private int aux2;            // LITERAL: bytes matched
    private int utf8Left;        // STRING: continuation bytes still due
    private int utf8Low;         // STRING: the smallest and largest the next continuation byte may be
    private int utf8High;
    private int whitespace;      // the run of whitespace so far: 0 none, -1 one space, n > 0 a newline and n - 1 indent bytes
    private int depth;
    private final byte[] stack = new byte[MAX_DEPTH];

    /** Whether the top-level object has closed. */
    boolean isComplete() {
        return mode == DONE;
    }

    /** Whether a byte has been fed that no JSON object could contain there. */
    boolean isDead() {
        return mode == DEAD;
    }

    void copyFrom(JsonGrammar other) {
        mode = other.mode;
        inKey = other.inKey;
        aux = other.aux;
        aux2 = other.aux2;
        utf8Left = other.utf8Left;
        utf8Low = other.utf8Low;
        utf8High = other.utf8High;
        whitespace = other.whitespace;
        depth = other.depth;
        System.arraycopy(other.stack, 0, stack, 0, depth);
    }

    /** Feeds {@code bytes}; afterwards {@link #isDead} tells whether they fitted. */
    void feed(byte[] bytes) {
        for (int i = 0; i < bytes.length && mode != DEAD; i++) {
            step(bytes[i] & 0xFF);
        }
    }

    /**
     * Whether {@code bytes} could follow this state, using {@code scratch} (a state of its own) to try
     * them: a non-empty string of bytes that leaves the object open or closes it exactly at its end.
     */
    boolean accepts(byte[] bytes, JsonGrammar scratch) {
        if (bytes.length == 0 || mode == DONE || mode == DEAD) {
            return false;
        }
        // Most tokens fail on their first byte, and most inside strings are plain text: try those without a copy.
        if (mode == STRING && utf8Left == 0 && plainText(bytes)) {
            return true;
        }
        scratch.copyFrom(this);
        for (int i = 0; i < bytes.length; i++) {
            if (scratch.mode == DONE) {
                return false; // bytes after the object closed
            }
            scratch.step(bytes[i] & 0xFF);
            if (scratch.mode == DEAD) {
                return false;
            }
        }
        return true;
    }

    /** Bytes that are string content as they stand: no quote, backslash or control byte, whole UTF-8 characters. */
    static boolean plainText(byte[] bytes) {
        int left = 0;
        int low = 0;
        int high = 0;
        for (byte x : bytes) {
            int b = x & 0xFF;
            if (left > 0) {
                if (b < low || b > high) {
                    return false;
                }
                left--;
                low = 0x80;
                high = 0xBF;
            } else if (b < 0x20 || b == '"' || b == '\\') {
                return false;
            } else if (b >= 0x80) {
                left = utf8Continuations(b);
                if (left < 0) {
                    return false;
                }
                low = firstContinuationLow(b);
                high = firstContinuationHigh(b);
            }
        }
        return left == 0;
    }

    /**
     * The range of the byte after a lead byte in well-formed UTF-8 (RFC 3629): narrower than 80-BF
     * after E0 and F0 (no overlong forms), ED (no surrogates) and F4 (nothing past U+10FFFF). A
     * decoder turns the excluded sequences into U+FFFD, so the text would no longer be the model's.
     */
    private static int firstContinuationLow(int lead) {
        return lead == 0xE0 ? 0xA0 : lead == 0xF0 ? 0x90 : 0x80;
    }

    private static int firstContinuationHigh(int lead) {
        return lead == 0xED ? 0x9F : lead == 0xF4 ? 0x8F : 0xBF;
    }

    private static int utf8Continuations(int lead) {
        if (lead >= 0xC2 && lead <= 0xDF) {
            return 1;
        }
        if (lead >= 0xE0 && lead <= 0xEF) {
            return 2;
        }
        if (lead >= 0xF0 && lead <= 0xF4) {
            return 3;
        }
        return -1;
    }

    private static boolean isWhitespace(int b) {
        return b == ' ' || b == '\n' || b == '\r' || b == '\t';
    }

    private void step(int b) {
        switch (mode) {
            case STRING -> string(b);
            case ESCAPE -> {
                if (b == 'u') {
                    mode = UNICODE;
                    aux = 0;
                } else if (b == '"' || b == '\\' || b == '/' || b == 'b' || b == 'f' || b == 'n' || b == 'r' || b == 't') {
                    mode = STRING;
                } else {
                    mode = DEAD;
                }
            }
            case UNICODE -> {
                if (Character.digit(b, 16) < 0) {
                    mode = DEAD;
                } else if (++aux == 4) {
                    mode = STRING;
                }
            }
            case MINUS -> mode = b == '0' ? ZERO : b >= '1' && b <= '9' ? INTEGER : DEAD;
            case ZERO -> numberGoesOn(b, false, true, true);
            case INTEGER -> numberGoesOn(b, true, true, true);
            case DOT -> mode = isDigit(b) ? FRACTION : DEAD;
            case FRACTION -> numberGoesOn(b, true, false, true);
            case E -> mode = isDigit(b) ? EXPONENT : (b == '+' || b == '-') ? E_SIGN : DEAD;
            case E_SIGN -> mode = isDigit(b) ? EXPONENT : DEAD;
            case EXPONENT -> numberGoesOn(b, true, false, false);
            case LITERAL -> {
                byte[] literal = LITERALS[aux];
                if (b != literal[aux2]) {
                    mode = DEAD;
                } else if (++aux2 == literal.length) {
                    valueEnded();
                }
            }
            case DONE, DEAD -> mode = DEAD;
            default -> structural(b);
        }
    }

    private static boolean isDigit(int b) {
        return b >= '0' && b <= '9';
    }

    /** A byte after part of a number: more of it, or the number ends and the byte is read after the value. */
    private void numberGoesOn(int b, boolean digits, boolean dot, boolean exponent) {
        if (digits && isDigit(b)) {
            return;
        }
        if (dot && b == '.') {
            mode = DOT;
        } else if (exponent && (b == 'e' || b == 'E')) {
            mode = E;
        } else {
            valueEnded();
            structural(b);
        }
    }

    private void string(int b) {
        if (utf8Left > 0) {
            if (b < utf8Low || b > utf8High) {
                mode = DEAD;
            } else {
                utf8Left--;
                utf8Low = 0x80;
                utf8High = 0xBF;
            }
        } else if (b == '"') {
            if (inKey) {
                inKey = false;
                mode = COLON;
                whitespace = 0;
            } else {
                valueEnded();
            }
        } else if (b == '\\') {
            mode = ESCAPE;
        } else if (b < 0x20) {
            mode = DEAD;
        } else if (b >= 0x80) {
            utf8Left = utf8Continuations(b);
            if (utf8Left < 0) {
                mode = DEAD;
            }
            utf8Low = firstContinuationLow(b);
            utf8High = firstContinuationHigh(b);
        }
    }

    /** The bytes between values: whitespace, brackets, commas, colons, and the first byte of a value. */
    private void structural(int b) {
        if (isWhitespace(b)) {
            if (mode == ROOT) {
                mode = DEAD;
            } else if (whitespace == 0 && (b == ' ' || b == '\n')) {
                whitespace = b == ' ' ? -1 : 1;
            } else if (whitespace > 0 && whitespace <= MAX_INDENT && (b == ' ' || b == '\t')) {
                whitespace++;
            } else {
                mode = DEAD;
            }
            return;
        }
        whitespace = 0;
        switch (mode) {
            case ROOT -> {
                if (b == '{') {
                    open(OBJECT, KEY_OR_END);
                } else {
                    mode = DEAD;
                }
            }
            case KEY_OR_END, KEY -> {
                if (b == '"') {
                    inKey = true;
                    mode = STRING;
                } else if (b == '}' && mode == KEY_OR_END) {
                    close();
                } else {
                    mode = DEAD;
                }
            }
            case COLON -> mode = b == ':' ? VALUE : DEAD;
            case AFTER_VALUE -> {
                byte top = stack[depth - 1];
                if (b == ',') {
                    mode = top == OBJECT ? KEY : VALUE;
                } else if ((b == '}' && top == OBJECT) || (b == ']' && top == ARRAY)) {
                    close();
                } else {
                    mode = DEAD;
                }
            }
            case VALUE, VALUE_OR_END -> {
                if (b == ']' && mode == VALUE_OR_END) {
                    close();
                } else {
                    startValue(b);
                }
            }
            default -> mode = DEAD;
        }
    }

    private void startValue(int b) {
        switch (b) {
            case '{' -> open(OBJECT, KEY_OR_END);
            case '[' -> open(ARRAY, VALUE_OR_END);
            case '"' -> {
                inKey = false;
                mode = STRING;
            }
            case '-' -> mode = MINUS;
            case '0' -> mode = ZERO;
            case 't', 'f', 'n' -> {
                mode = LITERAL;
                aux = b == 't' ? 0 : b == 'f' ? 1 : 2;
                aux2 = 1;
            }
            default -> mode = b >= '1' && b <= '9' ? INTEGER : DEAD;
        }
    }

    private void open(byte kind, int next) {
        if (depth == MAX_DEPTH) {
            mode = DEAD;
            return;
        }
        stack[depth++] = kind;
        mode = next;
    }

    private void close() {
        depth--;
        valueEnded();
    }

    private void valueEnded() {
        mode = depth == 0 ? DONE : AFTER_VALUE;
        whitespace = 0;
    }
}
