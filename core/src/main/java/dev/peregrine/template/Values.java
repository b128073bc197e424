package dev.peregrine.template;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Python's semantics for template values, as Jinja inherits them: truth, str() and repr(),
 * equality across int/float/bool, ordering, containment, arithmetic, indexing and slicing.
 *
 * <p>Values are: null (None), {@link Undefined}, Boolean, Long (also Integer, Short, Byte from
 * callers), Double (also Float), String, List (a {@link Tuple} is a tuple), Map (a dict, in
 * insertion order), {@link Namespace}, {@link LoopContext}, {@link Macro}, {@link BoundMethod} and
 * {@link TemplateFunction}. Strings are indexed by code point, as Python's are.
 */
final class Values {
    /** A map lookup found nothing (values may be null, which is None). */
    static final Object MISSING = new Object();

    /**
     * Most characters (or items) one string (or list) a template builds may hold, the rendered
     * output included: a template comes from the model's files, and a chat prompt is far shorter.
     */
    static final int MAX_LENGTH = 1 << 24;
    /** Largest width or precision a format field, an indent or a tojson indent may ask for. */
    static final int MAX_FIELD = 100_000;

    /** {@code length} as an int, or an error when it is more than a template may build. */
    static int checkedLength(long length, String what) {
        if (length > MAX_LENGTH) {
            throw new EvalError(what + " would be " + (length == Long.MAX_VALUE ? "over 2^63" : length)
                    + " long, more than a template may build (" + MAX_LENGTH + ")");
        }
        return (int) length;
    }

    /** {@code count} copies of something {@code size} long, checked. */
    static int checkedLength(long count, long size, String what) {
        long length;
        try {
            length = Math.multiplyExact(count, size);
        } catch (ArithmeticException e) {
            length = Long.MAX_VALUE;
        }
        return checkedLength(length, what);
    }

    /** A width or precision (or indent), or an error when it is larger than {@link #MAX_FIELD}. */
    static int checkedField(long value, String what) {
        if (value > MAX_FIELD) {
            throw new EvalError(what + " " + value + " is larger than a template may use (" + MAX_FIELD + ")");
        }
        return (int) Math.max(0, value);
    }

    /** {@code value * 10 + digit} while reading a field's digits, checked as it grows. */
    static int fieldDigits(int value, char digit, String what) {
        long grown = value * 10L + Character.digit(digit, 10); // any Unicode decimal digit, as Python's format spec
        if (grown > MAX_FIELD) {
            throw new EvalError(what + " is larger than a template may use (" + MAX_FIELD + ")");
        }
        return (int) grown;
    }
    /** Methods that change a list or dict, which Hugging Face's immutable sandbox refuses. */
    private static final Set<String> MUTATORS = Set.of("append", "extend", "insert", "pop",
            "remove", "clear", "sort", "reverse", "update", "setdefault", "popitem");

    private Values() {
    }

    // ---- kinds ----

    static boolean isInt(Object v) {
        return v instanceof Long || v instanceof Integer || v instanceof Short || v instanceof Byte;
    }

    static boolean isFloat(Object v) {
        return v instanceof Double || v instanceof Float;
    }

    /** int, float or bool: what Python's arithmetic accepts (bool is an int there). */
    static boolean isNumeric(Object v) {
        return isInt(v) || isFloat(v) || v instanceof Boolean;
    }

    /** int or bool, as an index or a repeat count. */
    static boolean isIntegral(Object v) {
        return isInt(v) || v instanceof Boolean;
    }

    static long toLong(Object v) {
        return v instanceof Boolean b ? (b ? 1 : 0) : ((Number) v).longValue();
    }

    static double toDouble(Object v) {
        return v instanceof Boolean b ? (b ? 1 : 0) : ((Number) v).doubleValue();
    }

    static String typeName(Object v) {
        if (v == null) {
            return "NoneType";
        }
        if (v instanceof Boolean) {
            return "bool";
        }
        if (isInt(v)) {
            return "int";
        }
        if (isFloat(v)) {
            return "float";
        }
        if (v instanceof String) {
            return "str";
        }
        if (v instanceof Tuple) {
            return "tuple";
        }
        if (v instanceof List) {
            return "list";
        }
        if (v instanceof Map) {
            return "dict";
        }
        if (v instanceof Undefined) {
            return "Undefined";
        }
        if (v instanceof Namespace) {
            return "Namespace";
        }
        if (v instanceof LoopContext) {
            return "LoopContext";
        }
        if (v instanceof Macro) {
            return "Macro";
        }
        if (v instanceof BoundMethod || v instanceof TemplateFunction) {
            return "function";
        }
        if (v instanceof Generator g) {
            return g.typeName();
        }
        return v.getClass().getSimpleName();
    }

    /** How Jinja names a value in "has no attribute" messages: "'dict object'", "None". */
    static String describe(Object v) {
        return v == null ? "None" : "'" + typeName(v) + " object'";
    }

    // ---- truth and text ----

    static boolean truthy(Object v) {
        if (v == null || v instanceof Undefined) {
            return false;
        }
        if (v instanceof Boolean b) {
            return b;
        }
        if (isInt(v)) {
            return toLong(v) != 0;
        }
        if (isFloat(v)) {
            return toDouble(v) != 0;
        }
        if (v instanceof String s) {
            return !s.isEmpty();
        }
        if (v instanceof Collection<?> c) {
            return !c.isEmpty();
        }
        if (v instanceof Map<?, ?> m) {
            return !m.isEmpty();
        }
        return true;
    }

    /** Python's str(): what {{ value }} writes. */
    static String str(Object v) {
        if (v instanceof String s) {
            return s;
        }
        if (v instanceof Undefined) {
            return "";
        }
        return repr(v);
    }

    /** Python's repr(), used for the items of printed lists and dicts. */
    static String repr(Object v) {
        StringBuilder sb = new StringBuilder();
        repr(v, sb);
        return sb.toString();
    }

    private static void repr(Object v, StringBuilder sb) {
        if (v == null) {
            sb.append("None");
        } else if (v instanceof Boolean b) {
            sb.append(b ? "True" : "False");
        } else if (isInt(v)) {
            sb.append(toLong(v));
        } else if (isFloat(v)) {
            sb.append(floatRepr(toDouble(v)));
        } else if (v instanceof String s) {
            stringRepr(s, sb);
        } else if (v instanceof Tuple t) {
            sb.append('(');
            for (int i = 0; i < t.size(); i++) {
                if (i > 0) {
                    sb.append(", ");
                }
                repr(t.get(i), sb);
                checkedLength(sb.length(), "the printed value");
            }
            sb.append(t.size() == 1 ? ",)" : ")");
        } else if (v instanceof List<?> l) {
            sb.append('[');
            for (int i = 0; i < l.size(); i++) {
                if (i > 0) {
                    sb.append(", ");
                }
                repr(l.get(i), sb);
                checkedLength(sb.length(), "the printed value");
            }
            sb.append(']');
        } else if (v instanceof Map<?, ?> m) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : m.entrySet()) {
                if (!first) {
                    sb.append(", ");
                }
                first = false;
                repr(e.getKey(), sb);
                sb.append(": ");
                repr(e.getValue(), sb);
                checkedLength(sb.length(), "the printed value");
            }
            sb.append('}');
        } else if (v instanceof Undefined) {
            sb.append("Undefined");
        } else {
            sb.append(v);
        }
    }

    /** Python's repr of a str: single quotes unless the text has ' and no ", escapes for unprintables. */
    private static void stringRepr(String s, StringBuilder sb) {
        char quote = s.indexOf('\'') >= 0 && s.indexOf('"') < 0 ? '"' : '\'';
        sb.append(quote);
        s.codePoints().forEach(cp -> {
            if (cp == quote || cp == '\\') {
                sb.append('\\').appendCodePoint(cp);
            } else if (cp == '\n') {
                sb.append("\\n");
            } else if (cp == '\r') {
                sb.append("\\r");
            } else if (cp == '\t') {
                sb.append("\\t");
            } else if (isPrintable(cp)) {
                sb.appendCodePoint(cp);
            } else if (cp < 0x100) {
                sb.append(String.format("\\x%02x", cp));
            } else if (cp < 0x10000) {
                sb.append(String.format("\\u%04x", cp));
            } else {
                sb.append(String.format("\\U%08x", cp));
            }
        });
        sb.append(quote);
    }

    /** Python's str.isprintable() for one character. */
    private static boolean isPrintable(int cp) {
        if (cp == ' ') {
            return true;
        }
        return switch (Character.getType(cp)) {
            case Character.CONTROL, Character.FORMAT, Character.SURROGATE, Character.PRIVATE_USE,
                 Character.UNASSIGNED, Character.LINE_SEPARATOR, Character.PARAGRAPH_SEPARATOR,
                 Character.SPACE_SEPARATOR -> false;
            default -> true;
        };
    }

    /**
     * Python's repr of a float: the shortest digits that read back to the same double (Java's
     * Double.toString gives the same digits), positional from 1e-4 to 1e16, else d.ddde+XX.
     */
    static String floatRepr(double d) {
        if (Double.isNaN(d)) {
            return "nan";
        }
        if (Double.isInfinite(d)) {
            return d > 0 ? "inf" : "-inf";
        }
        if (d == 0) {
            return 1 / d < 0 ? "-0.0" : "0.0";
        }
        BigDecimal bd = new BigDecimal(Double.toString(d)).stripTrailingZeros();
        String digits = bd.unscaledValue().abs().toString();
        int exp = digits.length() - 1 - bd.scale();
        StringBuilder sb = new StringBuilder(d < 0 ? "-" : "");
        if (exp >= -4 && exp < 16) {
            if (exp < 0) {
                sb.append("0.").append("0".repeat(-exp - 1)).append(digits);
            } else if (digits.length() <= exp + 1) {
                sb.append(digits).append("0".repeat(exp + 1 - digits.length())).append(".0");
            } else {
                sb.append(digits, 0, exp + 1).append('.').append(digits, exp + 1, digits.length());
            }
        } else {
            sb.append(digits.charAt(0));
            if (digits.length() > 1) {
                sb.append('.').append(digits, 1, digits.length());
            }
            sb.append('e').append(exp < 0 ? '-' : '+');
            int a = Math.abs(exp);
            sb.append(a < 10 ? "0" : "").append(a);
        }
        return sb.toString();
    }

    // ---- comparison ----

    /** Python's ==. */
    static boolean eq(Object a, Object b) {
        if (a == b) {
            return true;
        }
        if (a == null || b == null) {
            return false;
        }
        if (a instanceof Undefined || b instanceof Undefined) {
            return a instanceof Undefined && b instanceof Undefined;
        }
        if (isNumeric(a) && isNumeric(b)) {
            if (isIntegral(a) && isIntegral(b)) {
                return toLong(a) == toLong(b);
            }
            return toDouble(a) == toDouble(b);
        }
        if (a instanceof String || b instanceof String) {
            return a.equals(b);
        }
        if (a instanceof List<?> x && b instanceof List<?> y) {
            if (x instanceof Tuple != y instanceof Tuple || x.size() != y.size()) {
                return false;
            }
            for (int i = 0; i < x.size(); i++) {
                if (!eq(x.get(i), y.get(i))) {
                    return false;
                }
            }
            return true;
        }
        if (a instanceof Map<?, ?> x && b instanceof Map<?, ?> y) {
            if (x.size() != y.size()) {
                return false;
            }
            for (Map.Entry<?, ?> e : x.entrySet()) {
                Object other = mapGet(y, e.getKey());
                if (other == MISSING || !eq(e.getValue(), other)) {
                    return false;
                }
            }
            return true;
        }
        return a.equals(b);
    }

    /** Python's ordering for {@code <, <=, >, >=}: numbers, strings (by code point), lists and tuples. */
    static int compare(Object a, Object b, String op) {
        if (a instanceof Undefined u) {
            throw u.fail();
        }
        if (b instanceof Undefined u) {
            throw u.fail();
        }
        if (isNumeric(a) && isNumeric(b)) {
            if (isIntegral(a) && isIntegral(b)) {
                return Long.compare(toLong(a), toLong(b));
            }
            double x = toDouble(a);
            double y = toDouble(b);
            return x < y ? -1 : x > y ? 1 : 0;
        }
        if (a instanceof String x && b instanceof String y) {
            return compareCodePoints(x, y);
        }
        if (a instanceof List<?> x && b instanceof List<?> y && x instanceof Tuple == y instanceof Tuple) {
            for (int i = 0; i < Math.min(x.size(), y.size()); i++) {
                if (!eq(x.get(i), y.get(i))) {
                    return compare(x.get(i), y.get(i), op);
                }
            }
            return Integer.compare(x.size(), y.size());
        }
        throw new EvalError("'" + op + "' not supported between instances of '" + typeName(a) + "' and '"
                + typeName(b) + "'");
    }

    private static int compareCodePoints(String x, String y) {
        int i = 0;
        int j = 0;
        while (i < x.length() && j < y.length()) {
            int a = x.codePointAt(i);
            int b = y.codePointAt(j);
            if (a != b) {
                return Integer.compare(a, b);
            }
            i += Character.charCount(a);
            j += Character.charCount(b);
        }
        return Boolean.compare(i < x.length(), j < y.length());
    }

    /** Python's {@code item in container}. */
    static boolean contains(Object container, Object item) {
        if (container instanceof String s) {
            if (!(item instanceof String sub)) {
                throw new EvalError("'in <string>' requires string as left operand, not " + typeName(item));
            }
            return s.contains(sub);
        }
        if (container instanceof List<?> l) {
            for (Object o : l) {
                if (eq(o, item)) {
                    return true;
                }
            }
            return false;
        }
        if (container instanceof Map<?, ?> m) {
            if (!isHashable(item)) {
                throw new EvalError("unhashable type: '" + typeName(item) + "'");
            }
            return mapGet(m, item) != MISSING;
        }
        if (container instanceof Undefined) {
            return false;
        }
        if (container instanceof Generator g) {
            return contains(g.drain(), item);
        }
        throw new EvalError("argument of type '" + typeName(container) + "' is not iterable");
    }

    // ---- arithmetic ----

    static Object binary(String op, Object a, Object b) {
        if (op.equals("%") && a instanceof String s) {
            // str % x formats; an undefined x is an empty mapping there
            return Printf.format(s, b);
        }
        if (a instanceof Undefined u) {
            throw u.fail();
        }
        if (b instanceof Undefined u) {
            throw u.fail();
        }
        try {
            Object r = switch (op) {
                case "+" -> add(a, b);
                case "-" -> isIntegral(a) && isIntegral(b) ? (Object) Math.subtractExact(toLong(a), toLong(b))
                        : isNumeric(a) && isNumeric(b) ? (Object) (toDouble(a) - toDouble(b)) : null;
                case "*" -> multiply(a, b);
                case "/" -> divide(a, b);
                case "//" -> floorDivide(a, b);
                case "%" -> modulo(a, b);
                case "**" -> power(a, b);
                default -> throw new IllegalArgumentException(op);
            };
            if (r == null) {
                throw new EvalError("unsupported operand type(s) for " + op + ": '" + typeName(a) + "' and '"
                        + typeName(b) + "'");
            }
            return r;
        } catch (ArithmeticException e) {
            throw new EvalError("integer overflow in '" + op + "' (integers are 64-bit here)");
        }
    }

    private static Object add(Object a, Object b) {
        if (isIntegral(a) && isIntegral(b)) {
            return Math.addExact(toLong(a), toLong(b));
        }
        if (isNumeric(a) && isNumeric(b)) {
            return toDouble(a) + toDouble(b);
        }
        if (a instanceof String x && b instanceof String y) {
            return concat(x, y);
        }
        if (a instanceof List<?> x && b instanceof List<?> y && x instanceof Tuple == y instanceof Tuple) {
            checkedLength((long) x.size() + y.size(), "the list");
            List<Object> r = new ArrayList<>(x);
            r.addAll(y);
            return x instanceof Tuple ? new Tuple(r) : r;
        }
        return null;
    }

    /** {@code a + b}, checked against {@link #MAX_LENGTH}. */
    static String concat(String a, String b) {
        checkedLength((long) a.length() + b.length(), "the string");
        return a + b;
    }

    private static Object multiply(Object a, Object b) {
        if (isIntegral(a) && isIntegral(b)) {
            return Math.multiplyExact(toLong(a), toLong(b));
        }
        if (isNumeric(a) && isNumeric(b)) {
            return toDouble(a) * toDouble(b);
        }
        Object seq = isIntegral(a) ? b : a;
        Object count = isIntegral(a) ? a : b;
        if (!isIntegral(count)) {
            return null;
        }
        long n = Math.max(0, toLong(count));
        if (seq instanceof String s) {
            checkedLength(n, s.length(), "the repeated string");
            return s.repeat((int) n);
        }
        if (seq instanceof List<?> l) {
            checkedLength(n, l.size(), "the repeated list");
            List<Object> r = new ArrayList<>();
            for (long i = 0; i < n; i++) {
                r.addAll(l);
            }
            return l instanceof Tuple ? new Tuple(r) : r;
        }
        return null;
    }

    private static Object divide(Object a, Object b) {
        if (!isNumeric(a) || !isNumeric(b)) {
            return null;
        }
        if (toDouble(b) == 0) {
            throw new EvalError("division by zero");
        }
        return toDouble(a) / toDouble(b);
    }

    private static Object floorDivide(Object a, Object b) {
        if (!isNumeric(a) || !isNumeric(b)) {
            return null;
        }
        if (toDouble(b) == 0) {
            throw new EvalError(isIntegral(a) && isIntegral(b) ? "integer division or modulo by zero"
                    : "float floor division by zero");
        }
        if (isIntegral(a) && isIntegral(b)) {
            return Math.floorDiv(toLong(a), toLong(b));
        }
        // CPython's float floor division: from fmod, so that 1 // 0.1 is 9.0 like divmod
        double x = toDouble(a);
        double y = toDouble(b);
        double mod = x % y;
        double div = (x - mod) / y;
        if (mod != 0 && (y < 0) != (mod < 0)) {
            div -= 1.0;
        }
        if (div == 0) {
            return Math.copySign(0.0, x / y);
        }
        double floor = Math.floor(div);
        return div - floor > 0.5 ? floor + 1.0 : floor;
    }

    private static Object modulo(Object a, Object b) {
        if (!isNumeric(a) || !isNumeric(b)) {
            return null;
        }
        if (toDouble(b) == 0) {
            throw new EvalError(isIntegral(a) && isIntegral(b) ? "integer division or modulo by zero"
                    : "float modulo");
        }
        if (isIntegral(a) && isIntegral(b)) {
            return Math.floorMod(toLong(a), toLong(b));
        }
        double x = toDouble(a);
        double y = toDouble(b);
        double r = x % y;
        // Python's result has the sign of the divisor, zero included
        if (r == 0) {
            return Math.copySign(0.0, y);
        }
        return (r < 0) != (y < 0) ? r + y : r;
    }

    private static Object power(Object a, Object b) {
        if (!isNumeric(a) || !isNumeric(b)) {
            return null;
        }
        if (isIntegral(a) && isIntegral(b) && toLong(b) >= 0) {
            long base = toLong(a);
            long r = 1;
            for (long e = toLong(b); e > 0; e--) {
                r = Math.multiplyExact(r, base);
                if (r == 0 || r == 1 && base == 1) {
                    break;
                }
            }
            return r;
        }
        double x = toDouble(a);
        double y = toDouble(b);
        if (x == 0 && y < 0) {
            throw new EvalError("0.0 cannot be raised to a negative power");
        }
        if (x < 0 && y != Math.rint(y) && Double.isFinite(y)) {
            throw new EvalError("a negative number to a fractional power is complex, which is not supported");
        }
        double r = Math.pow(x, y);
        if (Double.isInfinite(r) && Double.isFinite(x) && Double.isFinite(y)) {
            // Python raises where IEEE gives infinity
            throw new EvalError("(34, 'Numerical result out of range')");
        }
        return r;
    }

    static Object negate(Object v, boolean minus) {
        if (v instanceof Undefined u) {
            throw u.fail();
        }
        if (isIntegral(v)) {
            return minus ? Math.negateExact(toLong(v)) : toLong(v);
        }
        if (isFloat(v)) {
            return minus ? -toDouble(v) : toDouble(v);
        }
        throw new EvalError("bad operand type for unary " + (minus ? "-" : "+") + ": '" + typeName(v) + "'");
    }

    // ---- items, attributes, iteration ----

    /** A dict lookup by Python equality of keys (so 1 finds a key stored as an Integer). */
    static Object mapGet(Map<?, ?> m, Object key) {
        Object v = m.get(key);
        if (v != null || m.containsKey(key)) {
            return v;
        }
        if (isNumeric(key)) {
            for (Map.Entry<?, ?> e : m.entrySet()) {
                if (isNumeric(e.getKey()) && eq(e.getKey(), key)) {
                    return e.getValue();
                }
            }
        }
        return MISSING;
    }

    /** {@code obj[key]}: the item, else the attribute named key, else Undefined (Jinja's getitem). */
    static Object getItem(Object obj, Object key) {
        if (obj instanceof Undefined u) {
            throw u.fail();
        }
        if (obj instanceof List<?> l && isIntegral(key)) {
            long i = toLong(key);
            if (i < 0) {
                i += l.size();
            }
            return i >= 0 && i < l.size() ? l.get((int) i) : Undefined.attribute(obj, key);
        }
        if (obj instanceof String s && isIntegral(key)) {
            int[] cps = s.codePoints().toArray();
            long i = toLong(key);
            if (i < 0) {
                i += cps.length;
            }
            return i >= 0 && i < cps.length ? Character.toString(cps[(int) i]) : Undefined.attribute(obj, key);
        }
        if (obj instanceof Map<?, ?> m) {
            Object v = mapGet(m, key);
            if (v != MISSING) {
                return v;
            }
        }
        if (key instanceof String name) {
            return getAttr(obj, name);
        }
        return Undefined.attribute(obj, key);
    }

    /** {@code obj.name}: a method or attribute first, then the item named name, else Undefined (Jinja's getattr). */
    static Object getAttr(Object obj, String name) {
        if (obj instanceof Undefined u) {
            throw u.fail();
        }
        if (Methods.has(obj, name)) {
            return new BoundMethod(obj, name);
        }
        if (obj instanceof Map<?, ?> m) {
            Object v = mapGet(m, name);
            if (v != MISSING) {
                return v;
            }
        } else if (obj instanceof Namespace ns) {
            Object v = mapGet(ns.attributes, name);
            if (v != MISSING) {
                return v;
            }
        } else if (obj instanceof LoopContext loop) {
            return loop.attribute(name);
        }
        if ((obj instanceof List || obj instanceof Map) && MUTATORS.contains(name)) {
            return new Undefined("access to attribute '" + name + "' of '" + typeName(obj)
                    + "' object is unsafe: templates cannot modify values (use namespace() or list concatenation)");
        }
        return Undefined.attribute(obj, name);
    }

    /** Python's getattr without the item fallback. */
    static Object attributeOnly(Object obj, String name) {
        if (obj instanceof Map<?, ?>) {
            return Methods.has(obj, name) ? new BoundMethod(obj, name) : Undefined.attribute(obj, name);
        }
        return getAttr(obj, name);
    }

    /** Lists and dicts cannot be dict keys (nor set members) in Python. */
    static boolean isHashable(Object v) {
        return !(v instanceof Map || v instanceof List && !(v instanceof Tuple));
    }

    /**
     * Python's {@code seq[start:stop:step]} for lists, tuples and strings. Jinja compiles a slice to
     * a plain Python subscript (not its forgiving getitem), so other values fail.
     */
    static Object slice(Object obj, Object start, Object stop, Object step) {
        if (obj instanceof Undefined u) {
            throw u.fail();
        }
        List<?> items;
        if (obj instanceof String s) {
            items = codePoints(s);
        } else if (obj instanceof List<?> l) {
            items = l;
        } else if (obj instanceof Map) {
            throw new EvalError("unhashable type: 'slice'");
        } else {
            throw new EvalError("'" + typeName(obj) + "' object is not subscriptable");
        }
        long n = items.size();
        long st = bound(step, 1, "step");
        if (st == 0) {
            throw new EvalError("slice step cannot be zero");
        }
        long lower = st > 0 ? 0 : -1;
        long upper = st > 0 ? n : n - 1;
        long from = start == null ? (st > 0 ? lower : upper) : clamp(bound(start, 0, "start"), n, lower, upper);
        long to = stop == null ? (st > 0 ? upper : lower) : clamp(bound(stop, 0, "stop"), n, lower, upper);
        List<Object> out = new ArrayList<>();
        for (long i = from; st > 0 ? i < to : i > to; i += st) {
            out.add(items.get((int) i));
        }
        if (obj instanceof String) {
            StringBuilder sb = new StringBuilder();
            out.forEach(c -> sb.append((String) c));
            return sb.toString();
        }
        return obj instanceof Tuple ? new Tuple(out) : out;
    }

    private static long bound(Object v, long dflt, String what) {
        if (v == null) {
            return dflt;
        }
        if (!isIntegral(v)) {
            throw new EvalError("slice " + what + " must be an integer or None, not " + typeName(v));
        }
        return toLong(v);
    }

    private static long clamp(long i, long n, long lower, long upper) {
        if (i < 0) {
            i += n;
            return Math.max(i, lower);
        }
        return Math.min(i, upper);
    }

    static List<Object> codePoints(String s) {
        List<Object> out = new ArrayList<>(s.length());
        s.codePoints().forEach(cp -> out.add(Character.toString(cp)));
        return out;
    }

    /** The items a for loop (or a filter) sees: list items, dict keys, string characters; Undefined is empty. */
    static List<?> iterate(Object v) {
        if (v instanceof List<?> l) {
            return l;
        }
        if (v instanceof Map<?, ?> m) {
            return new ArrayList<>(m.keySet());
        }
        if (v instanceof String s) {
            return codePoints(s);
        }
        if (v instanceof Undefined) {
            return List.of();
        }
        if (v instanceof Generator g) {
            return g.drain();
        }
        if (v instanceof Collection<?> c) {
            return new ArrayList<>(c);
        }
        if (v instanceof Iterable<?> it) {
            List<Object> out = new ArrayList<>();
            for (Iterator<?> i = it.iterator(); i.hasNext(); ) {
                out.add(i.next());
            }
            return out;
        }
        throw new EvalError("'" + typeName(v) + "' object is not iterable");
    }

    /** Python's len(). */
    static long length(Object v) {
        if (v instanceof String s) {
            return s.codePointCount(0, s.length());
        }
        if (v instanceof Collection<?> c) {
            return c.size();
        }
        if (v instanceof Map<?, ?> m) {
            return m.size();
        }
        if (v instanceof Undefined) {
            return 0;
        }
        throw new EvalError("object of type '" + typeName(v) + "' has no len()");
    }
}
