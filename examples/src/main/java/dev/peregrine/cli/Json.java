package dev.peregrine.cli;

import java.util.List;
import java.util.Locale;

/**
 * Just enough JSON writing for the command line's output: one object built field by field. Keys
 * and values are written in call order; no pretty printing.
 */
final class Json {
    private final StringBuilder sb = new StringBuilder();
    private boolean first = true;

    Json() {
        sb.append('{');
    }

    Json field(String key, String value) {
        key(key);
        quote(sb, value);
        return this;
    }

    Json field(String key, long value) {
        key(key);
        sb.append(value);
        return this;
    }

    /** Doubles with three decimals: timings need no more, and JSON has no NaN or infinity. */
    Json field(String key, double value) {
        key(key);
        sb.append(Double.isFinite(value) ? String.format(Locale.ROOT, "%.3f", value) : "null");
        return this;
    }

    /** A double as Java writes it (the shortest form that reads back the same); infinities and NaN as null. */
    Json precise(String key, double value) {
        key(key);
        sb.append(Double.isFinite(value) ? Double.toString(value) : "null");
        return this;
    }

    Json field(String key, int[] values) {
        key(key);
        sb.append('[');
        for (int i = 0; i < values.length; i++) {
            if (i > 0) {
                sb.append(',');
            }
            sb.append(values[i]);
        }
        sb.append(']');
        return this;
    }

    Json field(String key, Json object) {
        key(key);
        sb.append(object);
        return this;
    }

    Json field(String key, List<Json> objects) {
        key(key);
        sb.append('[');
        for (int i = 0; i < objects.size(); i++) {
            if (i > 0) {
                sb.append(',');
            }
            sb.append(objects.get(i));
        }
        sb.append(']');
        return this;
    }

    private void key(String key) {
        if (!first) {
            sb.append(',');
        }
        first = false;
        quote(sb, key);
        sb.append(':');
    }

    @Override
    public String toString() {
        return sb + "}";
    }

    /**
     * Appends {@code s} as a JSON string. Quotes, backslashes and control characters are escaped;
     * other characters (non-ASCII included) are kept as they are, since the output is UTF-8.
     * Lone surrogates (a token boundary inside a character should not produce them, but a
     * model can emit anything) are escaped too, so the output stays valid UTF-8.
     */
    static void quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    if (c < 0x20 || c == 0x7f || isLoneSurrogate(s, i)) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        sb.append('"');
    }

    static String quote(String s) {
        StringBuilder sb = new StringBuilder();
        quote(sb, s);
        return sb.toString();
    }

    private static boolean isLoneSurrogate(String s, int i) {
        char c = s.charAt(i);
        if (Character.isHighSurrogate(c)) {
            return i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1));
        }
        if (Character.isLowSurrogate(c)) {
            return i == 0 || !Character.isHighSurrogate(s.charAt(i - 1));
        }
        return false;
    }
}
