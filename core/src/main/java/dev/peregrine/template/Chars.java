package dev.peregrine.template;

/** Character classes as Python defines them (str.isspace, identifiers), which Jinja relies on. */
final class Chars {
    private Chars() {
    }

    /** Python's str.isspace(): Java's whitespace plus the no-break spaces and U+0085. */
    static boolean isWhitespace(int c) {
        return Character.isWhitespace(c) || Character.isSpaceChar(c) || c == 0x85;
    }

    static boolean isAllWhitespace(String s, int from, int to) {
        for (int i = from; i < to; i++) {
            if (!isWhitespace(s.charAt(i))) {
                return false;
            }
        }
        return true;
    }

    static String rstrip(String s) {
        int end = s.length();
        while (end > 0 && isWhitespace(s.charAt(end - 1))) {
            end--;
        }
        return s.substring(0, end);
    }

    static boolean isNameStart(int cp) {
        return cp == '_' || Character.isUnicodeIdentifierStart(cp);
    }

    static boolean isNamePart(int cp) {
        return cp == '_' || Character.isUnicodeIdentifierPart(cp) && !Character.isIdentifierIgnorable(cp);
    }
}
