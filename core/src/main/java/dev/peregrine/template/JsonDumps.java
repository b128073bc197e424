package dev.peregrine.template;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Python's json.dumps, which Hugging Face's {@code tojson} filter calls (not Jinja's own filter:
 * no HTML escaping, keys in insertion order unless sort_keys): ", " and ": " between items, or
 * "," and ": " with newlines when indented; non-ASCII kept unless ensure_ascii.
 */
final class JsonDumps {
    private final boolean ensureAscii;
    private final String indent;
    private final String itemSeparator;
    private final String keySeparator;
    private final boolean sortKeys;
    private final StringBuilder out = new StringBuilder();

    private JsonDumps(boolean ensureAscii, String indent, String itemSeparator, String keySeparator, boolean sortKeys) {
        this.ensureAscii = ensureAscii;
        this.indent = indent;
        this.itemSeparator = itemSeparator;
        this.keySeparator = keySeparator;
        this.sortKeys = sortKeys;
    }

    /** @param indent null for one line; separators null for json.dumps' defaults */
    static String dumps(Object value, boolean ensureAscii, String indent, String itemSeparator, String keySeparator,
            boolean sortKeys) {
        String items = itemSeparator != null ? itemSeparator : indent == null ? ", " : ",";
        String keys = keySeparator != null ? keySeparator : ": ";
        JsonDumps json = new JsonDumps(ensureAscii, indent, items, keys, sortKeys);
        json.write(value, 0);
        return json.out.toString();
    }

    private void write(Object v, int level) {
        if (v == null) {
            out.append("null");
        } else if (v instanceof Boolean b) {
            out.append(b ? "true" : "false");
        } else if (Values.isInt(v)) {
            out.append(Values.toLong(v));
        } else if (Values.isFloat(v)) {
            out.append(number(Values.toDouble(v)));
        } else if (v instanceof String s) {
            string(s);
        } else if (v instanceof List<?> l) {
            if (l.isEmpty()) {
                out.append("[]");
                return;
            }
            out.append('[');
            for (int i = 0; i < l.size(); i++) {
                out.append(i > 0 ? itemSeparator : "");
                newline(level + 1);
                write(l.get(i), level + 1);
                Values.checkedLength(out.length(), "the JSON text");
            }
            newline(level);
            out.append(']');
        } else if (v instanceof Map<?, ?> m) {
            if (m.isEmpty()) {
                out.append("{}");
                return;
            }
            List<Map.Entry<?, ?>> entries = new ArrayList<>(m.entrySet());
            if (sortKeys) {
                entries.sort((a, b) -> Values.compare(a.getKey(), b.getKey(), "<"));
            }
            out.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : entries) {
                out.append(first ? "" : itemSeparator);
                first = false;
                newline(level + 1);
                string(key(e.getKey()));
                out.append(keySeparator);
                write(e.getValue(), level + 1);
                Values.checkedLength(out.length(), "the JSON text");
            }
            newline(level);
            out.append('}');
        } else {
            throw new EvalError("Object of type " + Values.typeName(v) + " is not JSON serializable");
        }
    }

    private void newline(int level) {
        if (indent != null) {
            out.append('\n').append(indent.repeat(level));
        }
    }

    private static String number(double d) {
        if (Double.isNaN(d)) {
            return "NaN";
        }
        if (Double.isInfinite(d)) {
            return d > 0 ? "Infinity" : "-Infinity";
        }
        return Values.floatRepr(d);
    }

    /** json.dumps turns int, float, bool and None keys into strings. */
    private static String key(Object k) {
        if (k instanceof String s) {
            return s;
        }
        if (k == null) {
            return "null";
        }
        if (k instanceof Boolean b) {
            return b ? "true" : "false";
        }
        if (Values.isInt(k)) {
            return Long.toString(Values.toLong(k));
        }
        if (Values.isFloat(k)) {
            return number(Values.toDouble(k));
        }
        throw new EvalError("keys must be str, int, float, bool or None, not " + Values.typeName(k));
    }

    private void string(String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20 || ensureAscii && c > 0x7e) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }
}
