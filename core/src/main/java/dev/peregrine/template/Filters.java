package dev.peregrine.template;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Jinja's built-in filters that chat templates use, with Jinja's arguments and results; {@code
 * tojson} is Hugging Face's replacement (json.dumps with ensure_ascii=False, no HTML escaping).
 * Filters that return generators in Jinja (map, select, ...) return lists here.
 */
final class Filters {
    /** Jinja's title filter starts a new word after these. */
    private static final Pattern WORD_BEGINNING = Pattern.compile("([-\\s(\\{\\[<]+)", Pattern.UNICODE_CHARACTER_CLASS);

    private static final Set<String> NAMES = Set.of("abs", "attr", "capitalize", "count", "length", "default", "d",
            "dictsort", "escape", "e", "first", "format", "last", "float", "int", "indent", "items", "join", "list", "lower",
            "max", "min",
            "upper", "map", "select", "reject", "selectattr", "rejectattr", "replace", "reverse", "round", "safe",
            "sort", "string", "sum", "title", "tojson", "trim", "unique");

    private Filters() {
    }

    static boolean exists(String name) {
        return NAMES.contains(name);
    }

    static Object apply(String name, Object v, Args args) {
        Args a = args.named(name);
        return switch (name) {
            case "abs" -> {
                a.bind(0);
                yield Values.isFloat(v) ? (Object) Math.abs(Values.toDouble(v)) : (Object) Math.abs(Values.toLong(number(v)));
            }
            // attr reads only attributes (methods, namespace or loop fields), never dict items: Jinja's do_attr
            case "attr" -> Values.attributeOnly(v, Values.str(a.bind(1, "name").get(0)));
            case "capitalize" -> Methods.capitalize(text(v, a));
            case "count", "length" -> {
                a.bind(0);
                yield Values.length(v);
            }
            case "default", "d" -> {
                a.bind(0, "default_value", "boolean");
                boolean useDefault = v instanceof Undefined || a.bool(1, false) && !Values.truthy(v);
                yield useDefault ? a.get(0, "") : v;
            }
            case "dictsort" -> dictsort(v, a);
            case "escape", "e" -> escape(text(v, a));
            case "first", "last" -> {
                a.bind(0);
                if (name.equals("last") && v instanceof Generator g) {
                    throw new EvalError("'" + g.typeName() + "' object is not reversible");
                }
                List<?> items = Values.iterate(v);
                if (items.isEmpty()) {
                    yield new Undefined("No " + name + " item, sequence was empty.");
                }
                yield name.equals("first") ? items.getFirst() : items.getLast();
            }
            case "float" -> toFloat(v, a.bind(0, "default").get(0, 0.0));
            case "max", "min" -> extreme(v, a, name.equals("max"));
            case "format" -> {
                if (!a.positional.isEmpty() && !a.keywords.isEmpty()) {
                    throw new EvalError("can't handle positional and keyword arguments at the same time");
                }
                yield Printf.format(Values.str(v), a.keywords.isEmpty() ? new Tuple(a.positional)
                        : new java.util.LinkedHashMap<Object, Object>(a.keywords));
            }
            case "int" -> toInt(v, a.bind(0, "default", "base").get(0, 0L), a.integer(1, 10));
            case "indent" -> indent(v, a);
            case "items" -> new Generator("generator", () -> {
                a.bind(0);
                if (v instanceof Undefined) {
                    return List.of();
                }
                if (!(v instanceof Map<?, ?> m)) {
                    throw new EvalError("can only get item pairs from a mapping");
                }
                List<Object> out = new ArrayList<>();
                m.forEach((k, x) -> out.add(Tuple.of(k, x)));
                return out;
            });
            case "join" -> join(v, a);
            case "list" -> {
                a.bind(0);
                yield new ArrayList<Object>(Values.iterate(v));
            }
            case "lower" -> text(v, a).toLowerCase(Locale.ROOT);
            case "upper" -> text(v, a).toUpperCase(Locale.ROOT);
            // Jinja's "if value:" before iterating: a false value (0, none, undefined) gives nothing
            case "map" -> new Generator("generator", () -> Values.truthy(v) ? map(v, a) : List.of());
            case "select" -> new Generator("generator", () -> Values.truthy(v) ? select(v, a, false, false) : List.of());
            case "reject" -> new Generator("generator", () -> Values.truthy(v) ? select(v, a, true, false) : List.of());
            case "selectattr" -> new Generator("generator", () -> Values.truthy(v) ? select(v, a, false, true) : List.of());
            case "rejectattr" -> new Generator("generator", () -> Values.truthy(v) ? select(v, a, true, true) : List.of());
            case "replace" -> {
                a.bind(2, "old", "new", "count");
                yield Methods.replace(Values.str(v), Values.str(a.get(0)), Values.str(a.get(1)),
                        a.get(2) == null ? -1 : a.integer(2, -1));
            }
            case "reverse" -> reverse(v, a);
            case "round" -> round(v, a);
            // Markup(value): the value as text
            case "safe" -> text(v, a);
            case "sort" -> sort(v, a);
            case "string" -> text(v, a);
            case "sum" -> {
                a.bind(0, "attribute", "start");
                Object total = a.get(1, 0L);
                for (Object item : Values.iterate(v)) {
                    total = Values.binary("+", total, a.get(0) == null ? item : attribute(item, a.get(0)));
                }
                yield total;
            }
            case "title" -> title(text(v, a));
            case "tojson" -> tojson(v, a);
            case "trim" -> {
                a.bind(0, "chars");
                yield Methods.strip(Values.str(v), a.string(0, null), true, true);
            }
            case "unique" -> new Generator("generator", () -> unique(v, a));
            default -> throw new EvalError("no filter named '" + name + "'");
        };
    }

    private static String join(Object v, Args a) {
        a.bind(0, "d", "attribute");
        String sep = Values.str(a.get(0, ""));
        Object attribute = a.get(1);
        StringBuilder sb = new StringBuilder();
        List<?> items = Values.iterate(v);
        for (int i = 0; i < items.size(); i++) {
            Object item = attribute == null ? items.get(i) : attribute(items.get(i), attribute);
            String text = Values.str(item);
            Values.checkedLength((long) sb.length() + sep.length() + text.length(), "the joined string");
            sb.append(i > 0 ? sep : "").append(text);
        }
        return sb.toString();
    }

    /** Jinja's title: split keeping the separators, then upper the first letter of each part. */
    private static String title(String s) {
        StringBuilder sb = new StringBuilder();
        for (String part : splitKeeping(s)) {
            if (!part.isEmpty()) {
                int first = part.codePointAt(0);
                sb.append(Character.toString(first).toUpperCase(Locale.ROOT))
                        .append(part.substring(Character.charCount(first)).toLowerCase(Locale.ROOT));
            }
        }
        return sb.toString();
    }

    /** Hugging Face's tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False). */
    private static String tojson(Object v, Args a) {
        a.bind(0, "ensure_ascii", "indent", "separators", "sort_keys");
        Object indent = a.get(1);
        String indentText = indent == null ? null
                : indent instanceof String s ? s : " ".repeat(Values.checkedField(a.integer(1, 0), "tojson's indent"));
        Object separators = a.get(2);
        String items = null;
        String keys = null;
        if (separators != null) {
            if (!(separators instanceof List<?> l) || l.size() != 2 || !(l.get(0) instanceof String)
                    || !(l.get(1) instanceof String)) {
                throw new EvalError("tojson: separators must be a pair of strings");
            }
            items = (String) l.get(0);
            keys = (String) l.get(1);
        }
        return JsonDumps.dumps(v, a.bool(0, false), indentText, items, keys, a.bool(3, false));
    }

    /** A string reversed; a list, tuple or dict as a reverse iterator; anything else iterable as a reversed list. */
    private static Object reverse(Object v, Args a) {
        a.bind(0);
        if (v instanceof String s) {
            return new StringBuilder(s).reverse().toString();
        }
        if (v instanceof List<?> || v instanceof Map<?, ?> || v instanceof Undefined) {
            String kind = v instanceof Tuple ? "tuple_reverseiterator" : v instanceof Map ? "dict_reversekeyiterator"
                    : v instanceof Undefined ? "reversed" : "list_reverseiterator";
            return new Generator(kind, () -> new ArrayList<Object>(Values.iterate(v)).reversed());
        }
        return new ArrayList<Object>(Values.iterate(v)).reversed();
    }

    private static List<Object> unique(Object v, Args a) {
        a.bind(0, "case_sensitive", "attribute");
        List<Object> out = new ArrayList<>();
        List<Object> seen = new ArrayList<>();
        for (Object item : Values.iterate(v)) {
            Object key = sortKey(a.get(1) == null ? item : attribute(item, a.get(1)), a.bool(0, false));
            if (!Values.isHashable(key)) {
                throw new EvalError("unhashable type: '" + Values.typeName(key) + "'");
            }
            if (!Values.contains(seen, key)) {
                seen.add(key);
                out.add(item);
            }
        }
        return out;
    }

    private static List<Object> dictsort(Object v, Args a) {
        a.bind(0, "case_sensitive", "by", "reverse");
        if (!(v instanceof Map<?, ?> m)) {
            throw new EvalError("dictsort: expected a mapping, got " + Values.typeName(v));
        }
        int pos = switch (a.string(1, "key")) {
            case "key" -> 0;
            case "value" -> 1;
            default -> throw new EvalError("You can only sort by either \"key\" or \"value\"");
        };
        boolean caseSensitive = a.bool(0, false);
        List<Object> out = new ArrayList<>();
        m.forEach((k, x) -> out.add(Tuple.of(k, x)));
        out.sort((x, y) -> Values.compare(sortKey(((Tuple) x).get(pos), caseSensitive),
                sortKey(((Tuple) y).get(pos), caseSensitive), "<"));
        return a.bool(2, false) ? out.reversed() : out;
    }

    /** A filter whose only input is the value as text (Jinja's soft_str: Undefined is ""). */
    private static String text(Object v, Args a) {
        a.bind(0);
        return Values.str(v);
    }

    private static Object number(Object v) {
        if (v instanceof Undefined u) {
            throw u.fail();
        }
        if (!Values.isNumeric(v)) {
            throw new EvalError("bad operand type for abs(): '" + Values.typeName(v) + "'");
        }
        return v;
    }

    /** markupsafe's escape of &lt; &gt; &amp; " and '. */
    private static String escape(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '&' -> sb.append("&amp;");
                case '<' -> sb.append("&lt;");
                case '>' -> sb.append("&gt;");
                case '"' -> sb.append("&#34;");
                case '\'' -> sb.append("&#39;");
                default -> sb.append(c);
            }
        }
        return sb.toString();
    }

    /** Jinja's int filter: int(value) (strings in the given base), else int(float(value)), else the default. */
    private static Object toInt(Object v, Object dflt, long base) {
        if (v instanceof Undefined u) {
            throw u.fail();
        }
        if (v instanceof Boolean || Values.isInt(v)) {
            return Values.toLong(v);
        }
        if (Values.isFloat(v)) {
            double d = Values.toDouble(v);
            return Double.isFinite(d) ? (Object) (long) d : dflt;
        }
        if (v instanceof String s) {
            String t = Methods.strip(s, null, true, true).replace("_", "");
            try {
                if (base == 16 && t.toLowerCase(Locale.ROOT).matches("[+-]?0x.*")) {
                    t = t.replaceFirst("(?i)0x", "");
                }
                return Long.parseLong(t.startsWith("+") ? t.substring(1) : t, (int) base);
            } catch (NumberFormatException e) {
                Object f = toFloat(s, null);
                return f instanceof Double d && Double.isFinite(d) ? (Object) (long) (double) d : dflt;
            }
        }
        return dflt;
    }

    private static Object toFloat(Object v, Object dflt) {
        if (v instanceof Undefined u) {
            throw u.fail();
        }
        if (Values.isNumeric(v)) {
            return Values.toDouble(v);
        }
        if (v instanceof String s) {
            String t = Methods.strip(s, null, true, true).replace("_", "");
            if (t.matches("[+-]?(\\d+\\.?\\d*|\\.\\d+)([eE][+-]?\\d+)?")) {
                return Double.parseDouble(t);
            }
            String lower = t.toLowerCase(Locale.ROOT);
            if (lower.matches("[+-]?(inf|infinity|nan)")) {
                boolean negative = lower.startsWith("-");
                return lower.contains("nan") ? Double.NaN : negative ? Double.NEGATIVE_INFINITY : Double.POSITIVE_INFINITY;
            }
        }
        return dflt;
    }

    /** Python's round(): half to even on the exact binary value; method floor/ceil as Jinja's. */
    private static Object round(Object v, Args a) {
        a.bind(0, "precision", "method");
        long precision = a.integer(0, 0);
        String method = a.string(1, "common");
        if (v instanceof Undefined u) {
            throw u.fail();
        }
        if (!Values.isNumeric(v)) {
            throw new EvalError("round: expected a number, got " + Values.typeName(v));
        }
        RoundingMode mode = switch (method) {
            case "common" -> RoundingMode.HALF_EVEN;
            case "floor" -> RoundingMode.FLOOR;
            case "ceil" -> RoundingMode.CEILING;
            default -> throw new EvalError("method must be 'common', 'ceil' or 'floor'");
        };
        if (Values.isIntegral(v) && method.equals("common")) {
            return Values.toLong(v);
        }
        double d = Values.toDouble(v);
        if (!Double.isFinite(d)) {
            return d;
        }
        return new BigDecimal(d).setScale((int) precision, mode).doubleValue();
    }

    /** Jinja's indent: every line but the first (unless first=True) gets the indentation; blank lines only if blank=True. */
    private static Object indent(Object v, Args a) {
        a.bind(0, "width", "first", "blank");
        if (v instanceof Undefined u) {
            throw u.fail();
        }
        if (!(v instanceof String)) {
            // Jinja appends "\n" to the value itself
            throw new EvalError("unsupported operand type(s) for +=: '" + Values.typeName(v) + "' and 'str'");
        }
        Object width = a.get(0, 4L);
        String indentation = width instanceof String s ? s : " ".repeat(Values.checkedField(a.integer(0, 4), "indent's width"));
        List<Object> lines = Methods.splitLines(Values.str(v) + "\n");
        Values.checkedLength((long) lines.size() * (indentation.length() + 1) + Values.str(v).length(), "the indented string");
        StringBuilder sb = new StringBuilder();
        if (a.bool(2, false)) {
            for (int i = 0; i < lines.size(); i++) {
                sb.append(i > 0 ? "\n" + indentation : "").append(lines.get(i));
            }
        } else {
            sb.append(lines.isEmpty() ? "" : lines.get(0));
            for (int i = 1; i < lines.size(); i++) {
                String line = (String) lines.get(i);
                sb.append('\n').append(line.isEmpty() ? "" : indentation).append(line);
            }
        }
        return a.bool(1, false) ? indentation + sb : sb.toString();
    }

    private static Object sort(Object v, Args a) {
        a.bind(0, "reverse", "case_sensitive", "attribute");
        boolean caseSensitive = a.bool(1, false);
        Object attribute = a.get(2);
        List<Object> out = new ArrayList<>(Values.iterate(v));
        out.sort((x, y) -> Values.compare(sortKey(attribute == null ? x : attribute(x, attribute), caseSensitive),
                sortKey(attribute == null ? y : attribute(y, attribute), caseSensitive), "<"));
        return a.bool(0, false) ? out.reversed() : out;
    }

    /**
     * max / min(case_sensitive=False, attribute=None): the first largest (smallest) item, compared
     * as sort compares them; undefined for an empty sequence, as in Jinja.
     */
    private static Object extreme(Object v, Args a, boolean largest) {
        a.bind(0, "case_sensitive", "attribute");
        boolean caseSensitive = a.bool(0, false);
        Object attribute = a.get(1);
        Object best = null;
        Object bestKey = null;
        boolean any = false;
        for (Object item : Values.iterate(v)) {
            Object key = sortKey(attribute == null ? item : attribute(item, attribute), caseSensitive);
            int c = any ? Values.compare(key, bestKey, largest ? ">" : "<") : 0;
            if (!any || (largest ? c > 0 : c < 0)) {
                best = item;
                bestKey = key;
                any = true;
            }
        }
        return any ? best : new Undefined("No aggregated item, sequence was empty.");
    }

    private static Object sortKey(Object v, boolean caseSensitive) {
        return !caseSensitive && v instanceof String s ? s.toLowerCase(Locale.ROOT) : v;
    }

    /** map(attribute='x', default=...) or map('filter', args...). */
    private static List<Object> map(Object v, Args a) {
        List<Object> out = new ArrayList<>();
        if (a.positional.isEmpty() && a.keywords.containsKey("attribute")) {
            Map<String, Object> kw = new LinkedHashMap<>(a.keywords);
            Object attribute = kw.remove("attribute");
            boolean hasDefault = kw.containsKey("default");
            Object dflt = kw.remove("default");
            if (!kw.isEmpty()) {
                throw new EvalError("map: unexpected keyword argument '" + kw.keySet().iterator().next() + "'");
            }
            for (Object item : Values.iterate(v)) {
                Object x = attribute(item, attribute);
                out.add(hasDefault && x instanceof Undefined ? dflt : x);
            }
            return out;
        }
        if (a.positional.isEmpty() || !(a.positional.get(0) instanceof String name)) {
            throw new EvalError("map requires a filter name or attribute=");
        }
        if (!exists(name)) {
            throw new EvalError("no filter named '" + name + "'");
        }
        Args rest = new Args(name, a.positional.subList(1, a.positional.size()), a.keywords);
        for (Object item : Values.iterate(v)) {
            out.add(apply(name, item, rest));
        }
        return out;
    }

    /** select/reject(test, args...) and selectattr/rejectattr(attribute, test, args...); no test means truthiness. */
    private static List<Object> select(Object v, Args a, boolean reject, boolean byAttribute) {
        List<Object> args = a.positional;
        int at = 0;
        Object attribute = null;
        if (byAttribute) {
            if (args.isEmpty()) {
                throw new EvalError("missing parameter for attribute name");
            }
            attribute = args.get(at++);
        }
        String test = null;
        if (at < args.size()) {
            if (!(args.get(at) instanceof String name)) {
                throw new EvalError("the test name must be a string");
            }
            test = name;
            at++;
            if (!Tests.exists(test)) {
                throw new EvalError("no test named '" + test + "'");
            }
        }
        Args testArgs = new Args(test == null ? "" : test, args.subList(at, args.size()), a.keywords);
        List<Object> out = new ArrayList<>();
        for (Object item : Values.iterate(v)) {
            Object x = byAttribute ? attribute(item, attribute) : item;
            boolean ok = test == null ? Values.truthy(x) : Tests.apply(test, x, testArgs);
            if (ok != reject) {
                out.add(item);
            }
        }
        return out;
    }

    /** Jinja's attribute getter: "a.b.0" looks up item a, then b, then index 0. */
    private static Object attribute(Object item, Object attribute) {
        if (!(attribute instanceof String path)) {
            return Values.getItem(item, attribute);
        }
        Object x = item;
        for (String part : path.split("\\.")) {
            Object key = part.matches("\\d+") ? (Object) Long.parseLong(part) : part;
            x = Values.getItem(x, key);
        }
        return x;
    }

    private static List<String> splitKeeping(String s) {
        List<String> parts = new ArrayList<>();
        var m = WORD_BEGINNING.matcher(s);
        int last = 0;
        while (m.find()) {
            parts.add(s.substring(last, m.start()));
            parts.add(m.group());
            last = m.end();
        }
        parts.add(s.substring(last));
        return parts;
    }
}
