package dev.peregrine.format.json;

import static java.nio.charset.StandardCharsets.ISO_8859_1;
import static java.nio.charset.StandardCharsets.UTF_8;

import dev.peregrine.ModelFormatException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A strict JSON parser (RFC 8259) for the JSON files of model directories (tokenizer.json,
 * config.json, ...), into plain Java values: {@code Map<String, Object>} (a {@link LinkedHashMap}
 * that keeps the file's key order; a repeated key keeps its last value), {@code List<Object>},
 * {@code String}, {@code Long} (integers that fit) or {@code Double}, {@code Boolean}, and
 * {@code null}.
 *
 * <p>A hand-written recursive descent over the file's UTF-8 bytes, which are never decoded as a
 * whole: an ASCII string is copied straight from them, any other is checked and decoded on its own,
 * so a 10 MB tokenizer.json costs little more than its own size in memory and parses in tens of
 * milliseconds. Text that is not UTF-8 is an error, as is nesting deeper than {@value #MAX_DEPTH}
 * levels (so that a hostile file cannot overflow the stack).
 */
public final class Json {
    static final int MAX_DEPTH = 512;

    private final byte[] bytes;
    private final Path file;
    private int pos;
    private int depth;
    /** Decoded chars of the string being read, reused from string to string. */
    private char[] chars = new char[64];

    private Json(byte[] bytes, Path file) {
        this.bytes = bytes;
        this.file = file;
    }

    /**
     * Reads and parses a UTF-8 JSON file.
     *
     * @throws ModelFormatException if the file is missing, unreadable, not UTF-8 or not JSON; the
     *                              message names the file and the line and column of the problem
     */
    public static Object read(Path file) {
        if (Files.exists(file) && !Files.isRegularFile(file)) {
            // a directory, a pipe or a device: reading a FIFO would wait for a writer forever
            throw new ModelFormatException(file, -1, "is not a regular file");
        }
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException("file not found: " + file, e);
        } catch (IOException e) {
            throw new ModelFormatException("cannot read " + file + ": " + e.getMessage(), e);
        }
        return parse(bytes, file);
    }

    /**
     * Parses JSON text; {@code file} only names it in error messages.
     *
     * @throws ModelFormatException if the text is not one JSON value
     */
    public static Object parse(String text, Path file) {
        return parse(text.getBytes(UTF_8), file);
    }

    /**
     * Parses UTF-8 JSON; {@code file} only names it in error messages.
     *
     * @throws ModelFormatException if the bytes are not one JSON value in UTF-8
     */
    public static Object parse(byte[] utf8, Path file) {
        Json parser = new Json(utf8, file);
        if (utf8.length >= 3 && (utf8[0] & 0xFF) == 0xEF && (utf8[1] & 0xFF) == 0xBB && (utf8[2] & 0xFF) == 0xBF) {
            parser.pos = 3; // a byte order mark, which some editors write
        }
        Object value = parser.value();
        parser.skipWhitespace();
        if (parser.pos < utf8.length) {
            throw parser.error("unexpected text after the JSON value");
        }
        return value;
    }

    private Object value() {
        skipWhitespace();
        if (pos >= bytes.length) {
            throw error("unexpected end of the text");
        }
        int c = bytes[pos];
        return switch (c) {
            case '{' -> object();
            case '[' -> array();
            case '"' -> string();
            case 't' -> literal("true", Boolean.TRUE);
            case 'f' -> literal("false", Boolean.FALSE);
            case 'n' -> literal("null", null);
            default -> {
                if (c == '-' || (c >= '0' && c <= '9')) {
                    yield number();
                }
                throw error("unexpected character");
            }
        };
    }

    private Map<String, Object> object() {
        enter();
        pos++; // '{'
        Map<String, Object> map = new LinkedHashMap<>();
        skipWhitespace();
        if (peek() == '}') {
            pos++;
            depth--;
            return map;
        }
        while (true) {
            skipWhitespace();
            if (peek() != '"') {
                throw error("expected a string key");
            }
            String key = string();
            skipWhitespace();
            if (peek() != ':') {
                throw error("expected ':'");
            }
            pos++;
            map.put(key, value());
            skipWhitespace();
            int c = peek();
            if (c == '}') {
                pos++;
                depth--;
                return map;
            }
            if (c != ',') {
                throw error(pos >= bytes.length ? "unexpected end of the text" : "expected ',' or '}'");
            }
            pos++;
        }
    }

    private List<Object> array() {
        enter();
        pos++; // '['
        List<Object> list = new ArrayList<>();
        skipWhitespace();
        if (peek() == ']') {
            pos++;
            depth--;
            return list;
        }
        while (true) {
            list.add(value());
            skipWhitespace();
            int c = peek();
            if (c == ']') {
                pos++;
                depth--;
                return list;
            }
            if (c != ',') {
                throw error(pos >= bytes.length ? "unexpected end of the text" : "expected ',' or ']'");
            }
            pos++;
        }
    }

    private void enter() {
        if (++depth > MAX_DEPTH) {
            throw error("nested more than " + MAX_DEPTH + " levels deep");
        }
    }

    private String string() {
        int start = ++pos; // after the opening quote
        boolean ascii = true;
        // Fast path: no escape. UTF-8 never has an ASCII byte inside a multi-byte character, so
        // looking for the quote byte by byte is safe.
        for (int i = start; i < bytes.length; i++) {
            int b = bytes[i];
            if (b == '"') {
                pos = i + 1;
                return ascii ? new String(bytes, start, i - start, ISO_8859_1) : decode(start, i);
            }
            if (b == '\\') {
                return escapedString(start, i);
            }
            if (b >= 0 && b < 0x20) {
                pos = i;
                throw error("control character in a string");
            }
            ascii &= b >= 0;
        }
        throw error("unterminated string");
    }

    /** The string {@code bytes[start, end)}, which has no escapes, decoded from UTF-8. */
    private String decode(int start, int end) {
        int n = 0;
        ensureChars(end - start);
        for (pos = start; pos < end; ) {
            n = appendUtf8(n);
        }
        pos = end + 1;
        return new String(chars, 0, n);
    }

    /** The rest of a string that has an escape at {@code escape}. */
    private String escapedString(int start, int escape) {
        int n = 0;
        pos = start;
        while (pos < bytes.length) {
            int b = bytes[pos];
            if (b == '"') {
                pos++;
                return new String(chars, 0, n);
            }
            ensureChars(n + 2);
            if (b >= 0 && b < 0x20) {
                throw error("control character in a string");
            }
            if (b < 0) {
                n = appendUtf8(n);
                continue;
            }
            pos++;
            if (b != '\\') {
                chars[n++] = (char) b;
                continue;
            }
            int e = peek();
            pos++;
            switch (e) {
                case '"', '\\', '/' -> chars[n++] = (char) e;
                case 'b' -> chars[n++] = '\b';
                case 'f' -> chars[n++] = '\f';
                case 'n' -> chars[n++] = '\n';
                case 'r' -> chars[n++] = '\r';
                case 't' -> chars[n++] = '\t';
                case 'u' -> {
                    int code = 0;
                    for (int i = 0; i < 4; i++) {
                        int digit = pos < bytes.length ? Character.digit(bytes[pos], 16) : -1;
                        if (digit < 0) {
                            throw error("expected four hex digits after \\u");
                        }
                        code = code << 4 | digit;
                        pos++;
                    }
                    chars[n++] = (char) code; // a surrogate pair arrives as two escapes, one char each
                }
                default -> {
                    pos -= 2;
                    throw error("invalid escape");
                }
            }
        }
        throw error("unterminated string");
    }

    /** Decodes the UTF-8 character at {@code pos} into {@code chars[n]}; returns the new length. */
    private int appendUtf8(int n) {
        int b = bytes[pos] & 0xFF;
        int length;
        int cp;
        int lowest = 0x80;
        int highest = 0xBF;
        if (b < 0x80) {
            chars[n] = (char) b;
            pos++;
            return n + 1;
        } else if (b >= 0xC2 && b <= 0xDF) {
            length = 2;
            cp = b & 0x1F;
        } else if (b >= 0xE0 && b <= 0xEF) {
            length = 3;
            cp = b & 0x0F;
            lowest = b == 0xE0 ? 0xA0 : 0x80; // no overlong forms
            highest = b == 0xED ? 0x9F : 0xBF; // no surrogates
        } else if (b >= 0xF0 && b <= 0xF4) {
            length = 4;
            cp = b & 0x07;
            lowest = b == 0xF0 ? 0x90 : 0x80;
            highest = b == 0xF4 ? 0x8F : 0xBF; // nothing above U+10FFFF
        } else {
            throw error("not UTF-8");
        }
        for (int i = 1; i < length; i++) {
            int c = pos + i < bytes.length ? bytes[pos + i] & 0xFF : -1;
            if (c < lowest || c > highest) {
                throw error("not UTF-8");
            }
            cp = cp << 6 | (c & 0x3F);
            lowest = 0x80;
            highest = 0xBF;
        }
        pos += length;
        return n + Character.toChars(cp, chars, n);
    }

    /** Makes room for {@code n} chars, keeping those already decoded. */
    private void ensureChars(int n) {
        if (chars.length < n) {
            chars = Arrays.copyOf(chars, Math.max(n, chars.length * 2));
        }
    }

    private Object number() {
        int start = pos;
        if (peek() == '-') {
            pos++;
        }
        int digitsStart = pos;
        skipDigits();
        if (pos == digitsStart || (bytes[digitsStart] == '0' && pos - digitsStart > 1)) {
            throw error("invalid number");
        }
        boolean integer = true;
        if (peek() == '.') {
            pos++;
            integer = false;
            if (!skipDigits()) {
                throw error("expected digits after '.'");
            }
        }
        if (peek() == 'e' || peek() == 'E') {
            pos++;
            integer = false;
            if (peek() == '+' || peek() == '-') {
                pos++;
            }
            if (!skipDigits()) {
                throw error("expected digits in the exponent");
            }
        }
        if (integer && pos - digitsStart <= 18) { // at most 18 digits always fit a long
            long value = 0;
            for (int i = digitsStart; i < pos; i++) {
                value = value * 10 + (bytes[i] - '0');
            }
            return bytes[start] == '-' ? -value : value;
        }
        String literal = new String(bytes, start, pos - start, ISO_8859_1);
        if (integer) {
            try {
                return Long.parseLong(literal);
            } catch (NumberFormatException tooLarge) {
                // beyond a long: kept as a double, as JavaScript would
            }
        }
        return Double.parseDouble(literal);
    }

    private boolean skipDigits() {
        int start = pos;
        while (pos < bytes.length && bytes[pos] >= '0' && bytes[pos] <= '9') {
            pos++;
        }
        return pos > start;
    }

    private Object literal(String word, Object value) {
        for (int i = 0; i < word.length(); i++) {
            if (pos + i >= bytes.length || bytes[pos + i] != word.charAt(i)) {
                throw error("unexpected character");
            }
        }
        pos += word.length();
        return value;
    }

    /** The byte at the position, or -1 at the end. */
    private int peek() {
        return pos < bytes.length ? bytes[pos] : -1;
    }

    private void skipWhitespace() {
        while (pos < bytes.length) {
            int c = bytes[pos];
            if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
                return;
            }
            pos++;
        }
    }

    /** An error at the current position, by line and column (1-based, in characters). */
    private ModelFormatException error(String reason) {
        int line = 1;
        int column = 1;
        for (int i = 0; i < Math.min(pos, bytes.length); i++) {
            if (bytes[i] == '\n') {
                line++;
                column = 1;
            } else if ((bytes[i] & 0xC0) != 0x80) { // not a UTF-8 continuation byte
                column++;
            }
        }
        return new ModelFormatException(file + ": not valid JSON at line " + line + ", column " + column + ": " + reason);
    }
}
