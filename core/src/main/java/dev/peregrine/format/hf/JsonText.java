package dev.peregrine.format.hf;

import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.IntConsumer;

/**
 * Writes the small JSON documents of a Hugging Face directory (headers, configs, indexes). Maps
 * keep their iteration order (pass a {@code TreeMap} where HF sorts keys); values may be
 * null, {@code String}, {@code Boolean}, {@code Integer}/{@code Long}, {@code Float}/{@code Double}
 * (finite), {@code List}, {@code long[]} or {@code Map}.
 */
public final class JsonText {
    private JsonText() {
    }

    /** Compact, with no spaces: as the safetensors header is written. */
    static String compact(Map<String, ?> object) {
        StringBuilder b = new StringBuilder();
        value(b, object, -1, 0);
        return b.toString();
    }

    /** Indented by two spaces, ending with a newline: as HF writes config and index files. */
    static String pretty(Map<String, ?> object) {
        StringBuilder b = new StringBuilder();
        value(b, object, 2, 0);
        return b.append('\n').toString();
    }

    private static void value(StringBuilder b, Object v, int indent, int depth) {
        switch (v) {
            case null -> b.append("null");
            case String s -> quote(b, s);
            case Boolean x -> b.append(x);
            case Integer x -> b.append(x);
            case Long x -> b.append(x);
            case Float x -> b.append(finite(x));
            case Double x -> b.append(finite(x));
            case long[] a -> {
                b.append('[');
                for (int i = 0; i < a.length; i++) {
                    b.append(i > 0 ? "," : "").append(a[i]);
                }
                b.append(']');
            }
            case List<?> list -> container(b, '[', ']', list.size(), indent, depth, i -> value(b, list.get(i), indent, depth + 1));
            case Map<?, ?> map -> {
                List<? extends Map.Entry<?, ?>> entries = List.copyOf(map.entrySet());
                container(b, '{', '}', entries.size(), indent, depth, i -> {
                    quote(b, (String) entries.get(i).getKey());
                    b.append(indent < 0 ? ":" : ": ");
                    value(b, entries.get(i).getValue(), indent, depth + 1);
                });
            }
            default -> throw new IllegalArgumentException("cannot write " + v.getClass().getSimpleName() + " as JSON");
        }
    }

    private static void container(StringBuilder b, char open, char close, int size, int indent, int depth,
                                  IntConsumer item) {
        b.append(open);
        for (int i = 0; i < size; i++) {
            b.append(i > 0 ? "," : "");
            newline(b, indent, depth + 1);
            item.accept(i);
        }
        if (size > 0) {
            newline(b, indent, depth);
        }
        b.append(close);
    }

    private static void newline(StringBuilder b, int indent, int depth) {
        if (indent >= 0) {
            b.append('\n').repeat(' ', indent * depth);
        }
    }

    private static <T extends Number> T finite(T x) {
        if (!Double.isFinite(x.doubleValue())) {
            throw new IllegalArgumentException("JSON has no " + x);
        }
        return x;
    }

    /** Appends {@code s} as a JSON string (quotes, backslashes and control characters escaped); returns {@code b}. */
    public static StringBuilder quote(StringBuilder b, String s) {
        b.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"');
    }
}
