package dev.peregrine.template;

import dev.peregrine.TemplateException;
import dev.peregrine.template.Token.Kind;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;

/**
 * Splits a template into text and tag tokens, with the whitespace rules of the environment Hugging
 * Face renders chat templates with: trim_blocks (the newline after a block or comment tag is
 * dropped), lstrip_blocks (spaces and tabs before a block or comment tag on its own line are
 * dropped), '-' inside a tag delimiter strips all whitespace on that side, '+' disables
 * lstrip_blocks / trim_blocks for that tag, and one trailing newline of the template is dropped.
 */
final class Lexer {
    private static final String[] TWO_CHAR_OPS = {"//", "**", "==", "!=", ">=", "<="};
    private static final String ONE_CHAR_OPS = "+-/*%~[](){}><=.:|,;";

    private final String src;
    private final int[] lineStarts;
    private final List<Token> tokens = new ArrayList<>();
    private int pos;
    /** Whether the last thing consumed ended a line: lstrip_blocks then applies at the start of the next text. */
    private boolean lineStarting = true;

    private Lexer(String source) {
        this.src = normalizeNewlines(source);
        int[] starts = new int[16];
        int n = 0;
        starts[n++] = 0;
        for (int i = 0; i < src.length(); i++) {
            if (src.charAt(i) == '\n') {
                if (n == starts.length) {
                    starts = Arrays.copyOf(starts, n * 2);
                }
                starts[n++] = i + 1;
            }
        }
        this.lineStarts = Arrays.copyOf(starts, n);
    }

    static List<Token> tokenize(String source) {
        Lexer lexer = new Lexer(source);
        lexer.run();
        return lexer.tokens;
    }

    /** Jinja treats \r\n, \r and \n alike and writes \n; a single final newline is not part of the template. */
    private static String normalizeNewlines(String s) {
        String n = s.indexOf('\r') < 0 ? s : s.replace("\r\n", "\n").replace('\r', '\n');
        return n.endsWith("\n") ? n.substring(0, n.length() - 1) : n;
    }

    private void run() {
        while (pos < src.length()) {
            int start = nextTagStart(pos);
            if (start < 0) {
                text(src.substring(pos), pos);
                pos = src.length();
                break;
            }
            char type = src.charAt(start + 1);
            char sign = start + 2 < src.length() ? src.charAt(start + 2) : 0;
            if (sign != '-' && sign != '+') {
                sign = 0;
            }
            text(controlWhitespace(src.substring(pos, start), sign, type != '{'), pos);
            pos = start + 2 + (sign != 0 ? 1 : 0);
            switch (type) {
                case '#' -> comment(start);
                case '%' -> {
                    if (!raw(start)) {
                        tag(start, Kind.BLOCK_BEGIN, Kind.BLOCK_END);
                    }
                }
                default -> tag(start, Kind.VAR_BEGIN, Kind.VAR_END);
            }
        }
        Pos end = position(src.length());
        tokens.add(new Token(Kind.EOF, "", null, end.line(), end.column()));
    }

    private int nextTagStart(int from) {
        for (int i = src.indexOf('{', from); i >= 0 && i + 1 < src.length(); i = src.indexOf('{', i + 1)) {
            char c = src.charAt(i + 1);
            if (c == '{' || c == '%' || c == '#') {
                return i;
            }
        }
        return -1;
    }

    /** The text before a tag, after '-' (strip all whitespace) or lstrip_blocks (strip the indentation of a tag on its own line). */
    private String controlWhitespace(String text, char sign, boolean lstripApplies) {
        if (sign == '-') {
            return Chars.rstrip(text);
        }
        if (sign == '+' || !lstripApplies) {
            return text;
        }
        int lineStart = text.lastIndexOf('\n') + 1;
        if ((lineStart > 0 || lineStarting) && lineStart < text.length()
                && Chars.isAllWhitespace(text, lineStart, text.length())) {
            return text.substring(0, lineStart);
        }
        return text;
    }

    private void text(String text, int offset) {
        if (!text.isEmpty()) {
            Pos p = position(offset);
            tokens.add(new Token(Kind.TEXT, text, null, p.line(), p.column()));
        }
    }

    private void comment(int start) {
        for (int i = pos; i < src.length(); i++) {
            int end = tagEnd(i, "#}");
            if (end >= 0) {
                finish(end);
                return;
            }
        }
        throw error("missing end of comment tag '#}'", start);
    }

    /**
     * If the tag at {@code pos} is {@code raw}, emits its content as text and returns true. The
     * opening raw tag does not trim the newline after it (as in Jinja).
     */
    private boolean raw(int start) {
        int i = skipWhitespace(pos);
        if (!src.startsWith("raw", i) || i + 3 < src.length() && Chars.isNamePart(src.codePointAt(i + 3))) {
            return false;
        }
        i = skipWhitespace(i + 3);
        if (src.startsWith("-%}", i)) {
            i = skipWhitespace(i + 3);
        } else if (src.startsWith("%}", i)) {
            i += 2;
        } else {
            throw error("expected '%}' after 'raw'", i);
        }
        pos = i;
        lineStarting = src.charAt(i - 1) == '\n';
        for (int j = src.indexOf("{%", i); j >= 0; j = src.indexOf("{%", j + 1)) {
            char sign = j + 2 < src.length() ? src.charAt(j + 2) : 0;
            int k = skipWhitespace(j + 2 + (sign == '-' || sign == '+' ? 1 : 0));
            if (!src.startsWith("endraw", k)) {
                continue;
            }
            int end = tagEnd(skipWhitespace(k + 6), "%}");
            if (end < 0) {
                continue;
            }
            text(controlWhitespace(src.substring(i, j), sign == '-' || sign == '+' ? sign : 0, true), i);
            finish(end);
            return true;
        }
        throw error("missing '{% endraw %}'", start);
    }

    /**
     * If a tag closes at {@code i} (with '+', '-' or plain {@code close}), the offset after it and
     * the whitespace it eats; else -1.
     */
    private int tagEnd(int i, String close) {
        if (src.startsWith("+" + close, i) && !close.equals("}}")) {
            return i + 3;
        }
        if (src.startsWith("-" + close, i)) {
            return skipWhitespace(i + 3);
        }
        if (src.startsWith(close, i)) {
            int end = i + 2;
            // trim_blocks: the newline right after a block or comment tag is not output
            return !close.equals("}}") && end < src.length() && src.charAt(end) == '\n' ? end + 1 : end;
        }
        return -1;
    }

    private void finish(int end) {
        pos = end;
        lineStarting = src.charAt(end - 1) == '\n';
    }

    private void tag(int start, Kind begin, Kind endKind) {
        String close = begin == Kind.BLOCK_BEGIN ? "%}" : "}}";
        add(begin, close.equals("%}") ? "{%" : "{{", null, start);
        Deque<Character> brackets = new ArrayDeque<>();
        while (true) {
            if (pos >= src.length()) {
                throw error("unexpected end of template: missing '" + close + "'", start);
            }
            if (brackets.isEmpty()) {
                int end = tagEnd(pos, close);
                if (end >= 0) {
                    add(endKind, close, null, pos);
                    finish(end);
                    return;
                }
            }
            char c = src.charAt(pos);
            if (Chars.isWhitespace(c)) {
                pos = skipWhitespace(pos);
            } else if (c >= '0' && c <= '9') {
                number();
            } else if (Chars.isNameStart(src.codePointAt(pos))) {
                int s = pos;
                pos += Character.charCount(src.codePointAt(pos));
                while (pos < src.length() && Chars.isNamePart(src.codePointAt(pos))) {
                    pos += Character.charCount(src.codePointAt(pos));
                }
                add(Kind.NAME, src.substring(s, pos), null, s);
            } else if (c == '\'' || c == '"') {
                string(c);
            } else {
                operator(brackets);
            }
        }
    }

    private void operator(Deque<Character> brackets) {
        for (String op : TWO_CHAR_OPS) {
            if (src.startsWith(op, pos)) {
                add(Kind.OP, op, null, pos);
                pos += 2;
                return;
            }
        }
        char c = src.charAt(pos);
        if (ONE_CHAR_OPS.indexOf(c) < 0) {
            throw error("unexpected character '" + c + "'", pos);
        }
        switch (c) {
            case '(' -> brackets.push(')');
            case '[' -> brackets.push(']');
            case '{' -> brackets.push('}');
            case ')', ']', '}' -> {
                if (brackets.isEmpty()) {
                    throw error("unexpected '" + c + "'", pos);
                }
                char expected = brackets.pop();
                if (expected != c) {
                    throw error("unexpected '" + c + "', expected '" + expected + "'", pos);
                }
            }
            default -> {
            }
        }
        add(Kind.OP, String.valueOf(c), null, pos);
        pos++;
    }

    /** Python's number literals as Jinja reads them: digits may be grouped with '_'; 0b/0o/0x prefixes. */
    private void number() {
        int s = pos;
        int end = floatEnd(s);
        if (end > 0 && (s == 0 || src.charAt(s - 1) != '.')) {
            add(Kind.FLOAT, src.substring(s, end), Double.parseDouble(src.substring(s, end).replace("_", "")), s);
            pos = end;
            return;
        }
        int radix = 10;
        int i = s;
        if (src.charAt(s) == '0' && s + 1 < src.length()) {
            char p = Character.toLowerCase(src.charAt(s + 1));
            radix = p == 'b' ? 2 : p == 'o' ? 8 : p == 'x' ? 16 : 10;
        }
        StringBuilder digits = new StringBuilder();
        if (radix != 10) {
            i = s + 2;
            while (i < src.length()) {
                char c = src.charAt(i);
                if (c == '_' && i + 1 < src.length() && Character.digit(src.charAt(i + 1), radix) >= 0) {
                    i++;
                } else if (Character.digit(c, radix) >= 0 && c < 128) {
                    digits.append(c);
                    i++;
                } else {
                    break;
                }
            }
            if (digits.isEmpty()) {
                radix = 10;
                i = s;
            }
        }
        if (radix == 10) {
            boolean zero = src.charAt(s) == '0';
            i = s;
            while (i < src.length()) {
                char c = src.charAt(i);
                if (c == '_' && i > s && i + 1 < src.length() && isDigit(src.charAt(i + 1))) {
                    i++;
                } else if (isDigit(c) && (!zero || c == '0')) {
                    digits.append(c);
                    i++;
                } else {
                    break;
                }
            }
        }
        try {
            add(Kind.INT, src.substring(s, i), Long.parseLong(digits.toString(), radix), s);
        } catch (NumberFormatException e) {
            throw error("integer literal too large: " + src.substring(s, i), s);
        }
        pos = i;
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9';
    }

    /** End of a digit run with single '_' separators starting at i, or -1 if no digit is there. */
    private int digitsEnd(int i) {
        if (i >= src.length() || !isDigit(src.charAt(i))) {
            return -1;
        }
        while (i < src.length()) {
            if (isDigit(src.charAt(i))) {
                i++;
            } else if (src.charAt(i) == '_' && i + 1 < src.length() && isDigit(src.charAt(i + 1))) {
                i++;
            } else {
                break;
            }
        }
        return i;
    }

    /** End of a float literal at i (needs a fraction or an exponent), or -1. */
    private int floatEnd(int i) {
        int intEnd = digitsEnd(i);
        int fracEnd = intEnd < src.length() && src.charAt(intEnd) == '.' ? digitsEnd(intEnd + 1) : -1;
        int exp = exponentEnd(fracEnd > 0 ? fracEnd : intEnd);
        if (exp < 0 && fracEnd > 0) {
            exp = exponentEnd(intEnd);
        }
        if (exp > 0) {
            return exp;
        }
        return fracEnd;
    }

    private int exponentEnd(int i) {
        if (i >= src.length() || Character.toLowerCase(src.charAt(i)) != 'e') {
            return -1;
        }
        i++;
        if (i < src.length() && (src.charAt(i) == '+' || src.charAt(i) == '-')) {
            i++;
        }
        return digitsEnd(i);
    }

    /** A string literal, decoded with Python's escapes (Jinja decodes with 'unicode-escape'). */
    private void string(char quote) {
        int s = pos;
        StringBuilder out = new StringBuilder();
        int i = s + 1;
        while (true) {
            if (i >= src.length()) {
                throw error("unterminated string literal", s);
            }
            char c = src.charAt(i);
            if (c == quote) {
                break;
            }
            if (c != '\\') {
                out.append(c);
                i++;
                continue;
            }
            if (i + 1 >= src.length()) {
                throw error("unterminated string literal", s);
            }
            char e = src.charAt(i + 1);
            i += 2;
            switch (e) {
                case '\n' -> {
                    // a backslash-newline continues the line
                }
                case '\\', '\'', '"' -> out.append(e);
                case 'a' -> out.append('\u0007');
                case 'b' -> out.append('\b');
                case 'f' -> out.append('\f');
                case 'n' -> out.append('\n');
                case 'r' -> out.append('\r');
                case 't' -> out.append('\t');
                case 'v' -> out.append('\u000b');
                case 'x', 'u', 'U' -> {
                    int len = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                    if (i + len > src.length() || !isHex(src, i, i + len)) {
                        throw error("truncated \\" + e + " escape in string literal", i - 2);
                    }
                    int cp = Integer.parseUnsignedInt(src.substring(i, i + len), 16);
                    if (cp > Character.MAX_CODE_POINT) {
                        throw error("illegal Unicode character in string literal", i - 2);
                    }
                    out.appendCodePoint(cp);
                    i += len;
                }
                case 'N' -> throw error("\\N{...} escapes are not supported", i - 2);
                default -> {
                    if (e >= '0' && e <= '7') {
                        int v = e - '0';
                        for (int k = 0; k < 2 && i < src.length() && src.charAt(i) >= '0' && src.charAt(i) <= '7'; k++) {
                            v = v * 8 + src.charAt(i++) - '0';
                        }
                        out.append((char) v);
                    } else {
                        // Python keeps unknown escapes as they are
                        out.append('\\').append(e);
                    }
                }
            }
        }
        add(Kind.STRING, out.toString(), null, s);
        pos = i + 1;
    }

    private static boolean isHex(String s, int from, int to) {
        for (int i = from; i < to; i++) {
            if (Character.digit(s.charAt(i), 16) < 0 || s.charAt(i) > 127) {
                return false;
            }
        }
        return true;
    }

    private int skipWhitespace(int i) {
        while (i < src.length() && Chars.isWhitespace(src.charAt(i))) {
            i++;
        }
        return i;
    }

    private void add(Kind kind, String text, Object number, int offset) {
        Pos p = position(offset);
        tokens.add(new Token(kind, text, number, p.line(), p.column()));
    }

    private Pos position(int offset) {
        int line = Arrays.binarySearch(lineStarts, offset);
        if (line < 0) {
            line = -line - 2;
        }
        return new Pos(line + 1, offset - lineStarts[line] + 1);
    }

    private TemplateException error(String message, int offset) {
        Pos p = position(offset);
        return new TemplateException(message, p.line(), p.column());
    }
}
