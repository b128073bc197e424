package dev.peregrine.template;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The Python methods templates call on values: str (strip, split, startswith, format, ...), dict (get,
 * items, keys, values), list and tuple (count, index) and loop (cycle, changed). Methods that would mutate a value are absent,
 * as in Hugging Face's immutable sandbox.
 */
final class Methods {
    private static final Set<String> STRING = Set.of("strip", "lstrip", "rstrip", "startswith", "endswith", "split",
            "rsplit", "replace", "upper", "lower", "title", "capitalize", "find", "rfind", "count", "join",
            "splitlines", "isdigit", "isalpha", "isspace", "format");
    private static final Set<String> DICT = Set.of("get", "items", "keys", "values");
    private static final Set<String> LIST = Set.of("count", "index");
    private static final Set<String> LOOP = Set.of("cycle", "changed");

    private Methods() {
    }

    static boolean has(Object receiver, String name) {
        if (receiver instanceof String) {
            return STRING.contains(name);
        }
        if (receiver instanceof Map) {
            return DICT.contains(name);
        }
        if (receiver instanceof List) {
            return LIST.contains(name);
        }
        return receiver instanceof LoopContext && LOOP.contains(name);
    }

    static Object call(BoundMethod m, Args args) {
        Args a = args.named(m.name());
        return switch (m.receiver()) {
            case String s -> string(s, m.name(), a);
            case Map<?, ?> d -> dict(d, m.name(), a);
            case List<?> l -> {
                Object x = a.bind(1, "value").get(0);
                long count = 0;
                for (int i = 0; i < l.size(); i++) {
                    if (Values.eq(l.get(i), x)) {
                        if (m.name().equals("index")) {
                            yield (long) i;
                        }
                        count++;
                    }
                }
                if (m.name().equals("index")) {
                    throw new EvalError(Values.repr(x) + " is not in list");
                }
                yield count;
            }
            case LoopContext loop -> m.name().equals("cycle") ? loop.cycle(a.positional) : loop.changed(a.positional);
            default -> throw new IllegalStateException(m.name());
        };
    }

    private static Object dict(Map<?, ?> d, String name, Args a) {
        switch (name) {
            case "get" -> {
                a.bind(1, "key", "default");
                Object v = Values.mapGet(d, a.get(0));
                return v == Values.MISSING ? a.get(1) : v;
            }
            case "items" -> {
                a.bind(0);
                List<Object> out = new ArrayList<>();
                d.forEach((k, v) -> out.add(Tuple.of(k, v)));
                return out;
            }
            case "keys" -> {
                a.bind(0);
                return new ArrayList<Object>(d.keySet());
            }
            default -> {
                a.bind(0);
                return new ArrayList<Object>(d.values());
            }
        }
    }

    private static Object string(String s, String name, Args a) {
        switch (name) {
            case "format" -> {
                return StrFormat.format(s, a.positional, a.keywords);
            }
            case "strip", "lstrip", "rstrip" -> {
                a.bind(0, "chars");
                return strip(s, a.string(0, null), !name.equals("rstrip"), !name.equals("lstrip"));
            }
            case "startswith", "endswith" -> {
                a.bind(1, "prefix");
                Object p = a.get(0);
                List<?> options = p instanceof Tuple t ? t : List.of(p);
                for (Object o : options) {
                    if (!(o instanceof String prefix)) {
                        throw new EvalError(name + " first arg must be str or a tuple of str, not " + Values.typeName(o));
                    }
                    if (name.equals("startswith") ? s.startsWith(prefix) : s.endsWith(prefix)) {
                        return true;
                    }
                }
                return false;
            }
            case "split", "rsplit" -> {
                a.bind(0, "sep", "maxsplit");
                String sep = a.string(0, null);
                long max = a.integer(1, -1);
                return name.equals("split") ? split(s, sep, max) : rsplit(s, sep, max);
            }
            case "replace" -> {
                a.bind(2, "old", "new", "count");
                return replace(s, a.string(0, null), a.string(1, null), a.integer(2, -1));
            }
            case "upper" -> {
                a.bind(0);
                return s.toUpperCase(Locale.ROOT);
            }
            case "lower" -> {
                a.bind(0);
                return s.toLowerCase(Locale.ROOT);
            }
            case "title" -> {
                a.bind(0);
                return title(s);
            }
            case "capitalize" -> {
                a.bind(0);
                return capitalize(s);
            }
            case "find", "rfind" -> {
                a.bind(1, "sub");
                String sub = a.string(0, null);
                int at = name.equals("find") ? s.indexOf(sub) : s.lastIndexOf(sub);
                return at < 0 ? -1L : (long) s.codePointCount(0, at);
            }
            case "count" -> {
                a.bind(1, "sub");
                String sub = a.string(0, null);
                if (sub.isEmpty()) {
                    return (long) s.codePointCount(0, s.length()) + 1;
                }
                long n = 0;
                for (int at = s.indexOf(sub); at >= 0; at = s.indexOf(sub, at + sub.length())) {
                    n++;
                }
                return n;
            }
            case "join" -> {
                a.bind(1, "iterable");
                StringBuilder sb = new StringBuilder();
                List<?> items = Values.iterate(a.get(0));
                for (int i = 0; i < items.size(); i++) {
                    if (!(items.get(i) instanceof String item)) {
                        throw new EvalError("sequence item " + i + ": expected str instance, "
                                + Values.typeName(items.get(i)) + " found");
                    }
                    Values.checkedLength((long) sb.length() + s.length() + item.length(), "the joined string");
                    sb.append(i > 0 ? s : "").append(item);
                }
                return sb.toString();
            }
            case "splitlines" -> {
                a.bind(0);
                return splitLines(s);
            }
            default -> {
                a.bind(0);
                if (s.isEmpty()) {
                    return false;
                }
                return s.codePoints().allMatch(switch (name) {
                    case "isdigit" -> Character::isDigit;
                    case "isalpha" -> Character::isLetter;
                    default -> Chars::isWhitespace;
                });
            }
        }
    }

    /** Python's strip family: whitespace, or any of {@code chars}. */
    static String strip(String s, String chars, boolean left, boolean right) {
        int start = 0;
        int end = s.length();
        while (left && start < end && stripped(s.codePointAt(start), chars)) {
            start += Character.charCount(s.codePointAt(start));
        }
        while (right && end > start && stripped(s.codePointBefore(end), chars)) {
            end -= Character.charCount(s.codePointBefore(end));
        }
        return s.substring(start, end);
    }

    private static boolean stripped(int cp, String chars) {
        return chars == null ? Chars.isWhitespace(cp) : chars.indexOf(cp) >= 0;
    }

    /** Python's str.split: on runs of whitespace (dropping empty ends) when sep is null, else on sep exactly. */
    static List<Object> split(String s, String sep, long max) {
        List<Object> out = new ArrayList<>();
        if (sep == null) {
            int i = 0;
            while (true) {
                while (i < s.length() && Chars.isWhitespace(s.charAt(i))) {
                    i++;
                }
                if (i >= s.length()) {
                    break;
                }
                if (max >= 0 && out.size() == max) {
                    out.add(s.substring(i));
                    break;
                }
                int j = i;
                while (j < s.length() && !Chars.isWhitespace(s.charAt(j))) {
                    j++;
                }
                out.add(s.substring(i, j));
                i = j;
            }
            return out;
        }
        if (sep.isEmpty()) {
            throw new EvalError("empty separator");
        }
        int from = 0;
        for (int at = s.indexOf(sep); at >= 0 && (max < 0 || out.size() < max); at = s.indexOf(sep, from)) {
            out.add(s.substring(from, at));
            from = at + sep.length();
        }
        out.add(s.substring(from));
        return out;
    }

    static List<Object> rsplit(String s, String sep, long max) {
        if (max < 0) {
            return split(s, sep, max);
        }
        List<Object> out = new ArrayList<>();
        if (sep == null) {
            int j = s.length();
            while (true) {
                while (j > 0 && Chars.isWhitespace(s.charAt(j - 1))) {
                    j--;
                }
                if (j == 0) {
                    break;
                }
                if (out.size() == max) {
                    out.add(0, s.substring(0, j));
                    break;
                }
                int i = j;
                while (i > 0 && !Chars.isWhitespace(s.charAt(i - 1))) {
                    i--;
                }
                out.add(0, s.substring(i, j));
                j = i;
            }
            return out;
        }
        if (sep.isEmpty()) {
            throw new EvalError("empty separator");
        }
        int to = s.length();
        for (int at = s.lastIndexOf(sep, to - sep.length()); at >= 0 && out.size() < max;
             at = s.lastIndexOf(sep, to - sep.length())) {
            out.add(0, s.substring(at + sep.length(), to));
            to = at;
        }
        out.add(0, s.substring(0, to));
        return out;
    }

    static String replace(String s, String old, String replacement, long count) {
        long occurrences = 0;
        if (old.isEmpty()) {
            // Java's replace (count < 0, below) inserts at every UTF-16 unit, the loop at every code point
            occurrences = count < 0 ? s.length() + 1L : s.codePointCount(0, s.length()) + 1L;
        } else {
            for (int at = s.indexOf(old); at >= 0; at = s.indexOf(old, at + old.length())) {
                occurrences++;
            }
        }
        long replaced = count < 0 ? occurrences : Math.min(count, occurrences);
        Values.checkedLength(s.length() + replaced * (replacement.length() - (long) old.length()), "the replaced string");
        if (count < 0) {
            return s.replace(old, replacement);
        }
        StringBuilder sb = new StringBuilder();
        int from = 0;
        long done = 0;
        if (old.isEmpty()) {
            // Python inserts the replacement before each character (and at the end), up to count times
            int i = 0;
            while (done < count && i <= s.length()) {
                sb.append(replacement);
                done++;
                if (i < s.length()) {
                    int cp = s.codePointAt(i);
                    sb.appendCodePoint(cp);
                    i += Character.charCount(cp);
                } else {
                    i++;
                }
            }
            return i <= s.length() ? sb.append(s, i, s.length()).toString() : sb.toString();
        }
        for (int at = s.indexOf(old); at >= 0 && done < count; at = s.indexOf(old, from)) {
            sb.append(s, from, at).append(replacement);
            from = at + old.length();
            done++;
        }
        return sb.append(s, from, s.length()).toString();
    }

    /** Python's str.title(): a letter after a cased letter is lowered, any other is title-cased. */
    static String title(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        boolean previousCased = false;
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            i += Character.charCount(cp);
            if (previousCased) {
                sb.append(Character.toString(cp).toLowerCase(Locale.ROOT));
            } else {
                sb.appendCodePoint(Character.toTitleCase(cp));
            }
            previousCased = Character.isUpperCase(cp) || Character.isLowerCase(cp) || Character.isTitleCase(cp);
        }
        return sb.toString();
    }

    /** Python's str.capitalize(): the first character title-cased, the rest lowered. */
    static String capitalize(String s) {
        if (s.isEmpty()) {
            return s;
        }
        int first = s.codePointAt(0);
        int n = Character.charCount(first);
        return new StringBuilder().appendCodePoint(Character.toTitleCase(first))
                .append(s.substring(n).toLowerCase(Locale.ROOT)).toString();
    }

    /** Python's str.splitlines() (line ends not kept). */
    static List<Object> splitLines(String s) {
        List<Object> out = new ArrayList<>();
        int start = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            boolean lineEnd = c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c >= 0x1c && c <= 0x1e
                    || c == 0x85 || c == 0x2028 || c == 0x2029;
            if (lineEnd) {
                out.add(s.substring(start, i));
                if (c == '\r' && i + 1 < s.length() && s.charAt(i + 1) == '\n') {
                    i++;
                }
                start = i + 1;
            }
        }
        if (start < s.length()) {
            out.add(s.substring(start));
        }
        return out;
    }
}
