package dev.peregrine.tokenizer;

/**
 * The character classes pre-tokenizers split on, by Unicode code point: the same sets as the
 * regular expressions' {@code \p{L}}, {@code \p{N}} and {@code \s} in Hugging Face's tokenizers
 * and llama.cpp, whose {@code \s} is the Unicode White_Space property (Java's own {@code \s} and
 * {@link Character#isWhitespace} are different sets).
 */
final class CharClasses {
    static final int LETTER = 1;
    static final int NUMBER = 2;
    static final int SPACE = 3;
    /** Anything else: punctuation, symbols, marks, controls, unassigned. */
    static final int OTHER = 4;

    private static final byte[] ASCII = new byte[128];

    static {
        for (int c = 0; c < 128; c++) {
            ASCII[c] = (byte) classify(c);
        }
    }

    private CharClasses() {
    }

    /** {@link #LETTER}, {@link #NUMBER}, {@link #SPACE} or {@link #OTHER}. */
    static int of(int codePoint) {
        return codePoint < 128 ? ASCII[codePoint] : classify(codePoint);
    }

    /** The Unicode White_Space property. */
    static boolean isWhiteSpace(int c) {
        return c == ' ' || (c >= '\t' && c <= '\r') || c == 0x85 || c == 0xA0 || c == 0x1680
                || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F
                || c == 0x205F || c == 0x3000;
    }

    private static int classify(int codePoint) {
        if (isWhiteSpace(codePoint)) {
            return SPACE;
        }
        return switch (Character.getType(codePoint)) {
            case Character.UPPERCASE_LETTER, Character.LOWERCASE_LETTER, Character.TITLECASE_LETTER,
                 Character.MODIFIER_LETTER, Character.OTHER_LETTER -> LETTER;
            case Character.DECIMAL_DIGIT_NUMBER, Character.LETTER_NUMBER, Character.OTHER_NUMBER -> NUMBER;
            default -> OTHER;
        };
    }
}
