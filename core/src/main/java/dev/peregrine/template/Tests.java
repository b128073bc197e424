package dev.peregrine.template;

import java.util.List;
import java.util.Map;
import java.util.Set;

/** Jinja's tests ({@code x is defined}, {@code x is not none}, ...), with Python's notion of each type. */
final class Tests {
    private static final Set<String> NAMES = Set.of("defined", "undefined", "none", "boolean", "true", "false",
            "integer", "float", "number", "string", "mapping", "iterable", "sequence", "callable", "escaped", "lower",
            "upper", "odd", "even", "filter", "test", "divisibleby", "sameas", "in", "eq", "equalto", "==", "ne", "!=",
            "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=");

    private Tests() {
    }

    static boolean exists(String name) {
        return NAMES.contains(name);
    }

    static boolean apply(String name, Object v, Args args) {
        Args a = args.named(name);
        String param = switch (name) {
            case "divisibleby" -> "num";
            case "in" -> "seq";
            case "sameas", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan",
                 ">", "ge", ">=" -> "other";
            default -> null;
        };
        Object other = param == null ? a.bind(0).get(0) : a.bind(1, param).get(0);
        return switch (name) {
            case "defined" -> !(v instanceof Undefined);
            case "undefined" -> v instanceof Undefined;
            case "none" -> v == null;
            case "boolean" -> v instanceof Boolean;
            case "true" -> Boolean.TRUE.equals(v);
            case "false" -> Boolean.FALSE.equals(v);
            case "integer" -> Values.isInt(v);
            case "float" -> Values.isFloat(v);
            // bool is a number in Python
            case "number" -> Values.isNumeric(v);
            case "string" -> v instanceof String;
            case "mapping" -> v instanceof Map;
            // Jinja's Undefined is iterable, a sequence and even callable (its call fails)
            case "iterable" -> v instanceof String || v instanceof Iterable || v instanceof Map || v instanceof Undefined
                    || v instanceof Generator;
            case "sequence" -> v instanceof String || v instanceof List || v instanceof Map || v instanceof Undefined;
            case "callable" -> v instanceof Macro || v instanceof BoundMethod || v instanceof TemplateFunction
                    || v instanceof Undefined;
            case "escaped" -> false;
            case "lower" -> isCase(Values.str(v), false);
            case "upper" -> isCase(Values.str(v), true);
            case "odd" -> Values.eq(Values.binary("%", v, 2L), 1L);
            case "even" -> Values.eq(Values.binary("%", v, 2L), 0L);
            case "filter" -> v instanceof String s && Filters.exists(s);
            case "test" -> v instanceof String s && exists(s);
            case "divisibleby" -> Values.toDouble(Values.binary("%", v, other)) == 0;
            case "sameas" -> same(v, other);
            case "in" -> Values.contains(other, v);
            case "eq", "equalto", "==" -> Values.eq(v, other);
            case "ne", "!=" -> !Values.eq(v, other);
            case "lt", "lessthan", "<" -> Values.compare(v, other, "<") < 0;
            case "le", "<=" -> Values.compare(v, other, "<=") <= 0;
            case "gt", "greaterthan", ">" -> Values.compare(v, other, ">") > 0;
            case "ge", ">=" -> Values.compare(v, other, ">=") >= 0;
            default -> throw new EvalError("no test named '" + name + "'");
        };
    }

    /** Python's "is": the same object; here, the same immutable value of the same type. */
    private static boolean same(Object a, Object b) {
        if (a == b) {
            return true;
        }
        if (a == null || b == null || a.getClass() != b.getClass()) {
            return false;
        }
        return (a instanceof String || a instanceof Boolean || Values.isInt(a)) && a.equals(b);
    }

    /** Python's str.islower() / isupper(): some cased character, and every cased one in that case. */
    private static boolean isCase(String s, boolean upper) {
        boolean cased = false;
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            i += Character.charCount(cp);
            boolean isUpper = Character.isUpperCase(cp);
            boolean isLower = Character.isLowerCase(cp);
            if (Character.isTitleCase(cp) || (upper ? isLower : isUpper)) {
                return false;
            }
            cased |= isUpper || isLower;
        }
        return cased;
    }
}
