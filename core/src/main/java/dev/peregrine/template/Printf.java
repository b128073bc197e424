package dev.peregrine.template;

import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * Python's printf-style formatting, {@code "%s and %d" % (a, b)}, which Jinja exposes as the
 * {@code %} operator on strings and the {@code format} filter: conversions s r d i f F e E g G x X
 * o c %, flags {@code - + space 0 #}, width, precision and {@code %(name)s} with a mapping.
 */
final class Printf {
    private Printf() {
    }

    static String format(String template, Object args) {
        List<?> positional = args instanceof Tuple t ? t : Collections.singletonList(args);
        Map<?, ?> mapping = args instanceof Map<?, ?> m ? m : null;
        // Python skips the "all arguments converted" check for anything indexable but a tuple or str
        boolean indexable = mapping != null || args instanceof List && !(args instanceof Tuple) || args instanceof Undefined;
        StringBuilder out = new StringBuilder();
        int next = 0;
        int i = 0;
        while (i < template.length()) {
            char c = template.charAt(i++);
            if (c != '%') {
                out.append(c);
                continue;
            }
            Object value = null;
            boolean named = false;
            if (i < template.length() && template.charAt(i) == '(') {
                int close = template.indexOf(')', i);
                if (args instanceof Undefined u) {
                    throw u.fail();
                }
                if (mapping == null || close < 0) {
                    throw new EvalError(mapping == null ? "format requires a mapping" : "incomplete format key");
                }
                Object v = Values.mapGet(mapping, template.substring(i + 1, close));
                if (v == Values.MISSING) {
                    throw new EvalError("KeyError: " + Values.repr(template.substring(i + 1, close)));
                }
                value = v;
                named = true;
                i = close + 1;
            }
            String flags = "";
            while (i < template.length() && "-+ 0#".indexOf(template.charAt(i)) >= 0) {
                flags += template.charAt(i++);
            }
            int width = 0;
            while (i < template.length() && isAsciiDigit(template.charAt(i))) { // as CPython's %: ASCII only
                width = Values.fieldDigits(width, template.charAt(i++), "the format's width");
            }
            int precision = -1;
            if (i < template.length() && template.charAt(i) == '.') {
                i++;
                precision = 0;
                while (i < template.length() && isAsciiDigit(template.charAt(i))) {
                    precision = Values.fieldDigits(precision, template.charAt(i++), "the format's precision");
                }
            }
            if (i >= template.length()) {
                throw new EvalError("incomplete format");
            }
            char conversion = template.charAt(i++);
            if (conversion == '%') {
                out.append('%');
                continue;
            }
            if (!named) {
                if (next >= positional.size()) {
                    throw new EvalError("not enough arguments for format string");
                }
                value = positional.get(next++);
            }
            out.append(pad(convert(conversion, value, flags, precision), flags, width, conversion));
        }
        if (!indexable && next < positional.size()) {
            throw new EvalError("not all arguments converted during string formatting");
        }
        return out.toString();
    }

    private static boolean isAsciiDigit(char c) {
        return c >= '0' && c <= '9';
    }

    private static String convert(char conversion, Object v, String flags, int precision) {
        if (v instanceof Undefined u && conversion != 's') {
            throw u.fail();
        }
        return switch (conversion) {
            case 's' -> precision >= 0 ? truncate(Values.str(v), precision) : Values.str(v);
            case 'r', 'a' -> precision >= 0 ? truncate(Values.repr(v), precision) : Values.repr(v);
            case 'd', 'i', 'x', 'X', 'o' -> {
                long n = integer(v, conversion);
                String digits = switch (conversion) {
                    case 'x' -> Long.toHexString(Math.abs(n));
                    case 'X' -> Long.toHexString(Math.abs(n)).toUpperCase();
                    case 'o' -> Long.toOctalString(Math.abs(n));
                    default -> Long.toString(Math.abs(n));
                };
                if (flags.contains("#") && conversion != 'd' && conversion != 'i') {
                    digits = (conversion == 'o' ? "0o" : conversion == 'x' ? "0x" : "0X") + digits;
                }
                yield sign(n < 0, flags) + digits;
            }
            case 'f', 'F', 'e', 'E', 'g', 'G' -> {
                double d = number(v, conversion);
                String body = Double.isNaN(d) ? "nan" : Double.isInfinite(d) ? "inf"
                        : floating(Math.abs(d), Character.toLowerCase(conversion), precision < 0 ? 6 : precision,
                        flags.contains("#"));
                if (Character.isUpperCase(conversion)) {
                    body = body.toUpperCase();
                }
                yield sign(d < 0 || d == 0 && 1 / d < 0, flags) + body;
            }
            case 'c' -> {
                if (v instanceof String s && s.codePointCount(0, s.length()) == 1) {
                    yield s;
                }
                yield Character.toString((int) integer(v, 'c'));
            }
            default -> throw new EvalError("unsupported format character '" + conversion + "'");
        };
    }

    private static String truncate(String s, int codePoints) {
        return s.codePointCount(0, s.length()) <= codePoints ? s : s.substring(0, s.offsetByCodePoints(0, codePoints));
    }

    private static String sign(boolean negative, String flags) {
        return negative ? "-" : flags.contains("+") ? "+" : flags.contains(" ") ? " " : "";
    }

    private static long integer(Object v, char conversion) {
        if (Values.isIntegral(v)) {
            return Values.toLong(v);
        }
        if (Values.isFloat(v) && conversion != 'x' && conversion != 'X' && conversion != 'o' && conversion != 'c') {
            return (long) Values.toDouble(v);
        }
        throw new EvalError("%" + conversion + " format: a real number is required, not " + Values.typeName(v));
    }

    private static double number(Object v, char conversion) {
        if (!Values.isNumeric(v)) {
            throw new EvalError("%" + conversion + " format: a real number is required, not " + Values.typeName(v));
        }
        return Values.toDouble(v);
    }

    /** %f, %e and %g of a finite non-negative value, rounded half-even on its exact binary value as Python does. */
    private static String floating(double d, char conversion, int precision, boolean alternate) {
        BigDecimal exact = new BigDecimal(d);
        if (conversion == 'f') {
            String s = exact.setScale(precision, RoundingMode.HALF_EVEN).toPlainString();
            return alternate && precision == 0 ? s + "." : s;
        }
        int significant = conversion == 'e' ? precision + 1 : Math.max(precision, 1);
        BigDecimal rounded = d == 0 ? BigDecimal.ZERO : exact.round(new MathContext(significant, RoundingMode.HALF_EVEN));
        int exponent = d == 0 ? 0 : rounded.precision() - rounded.scale() - 1;
        if (conversion == 'g') {
            if (exponent >= -4 && exponent < significant) {
                String s = rounded.setScale(Math.max(0, significant - 1 - exponent), RoundingMode.HALF_EVEN).toPlainString();
                return alternate ? s : stripZeros(s);
            }
            String s = mantissa(rounded, exponent, significant - 1);
            return (alternate ? s : stripZeros(s)) + exponent(exponent);
        }
        return mantissa(rounded, exponent, precision) + exponent(exponent);
    }

    private static String mantissa(BigDecimal rounded, int exponent, int decimals) {
        return rounded.movePointLeft(exponent).setScale(decimals, RoundingMode.HALF_EVEN).toPlainString();
    }

    private static String exponent(int e) {
        return "e" + (e < 0 ? "-" : "+") + (Math.abs(e) < 10 ? "0" : "") + Math.abs(e);
    }

    private static String stripZeros(String s) {
        if (!s.contains(".")) {
            return s;
        }
        s = s.replaceAll("0+$", "");
        return s.endsWith(".") ? s.substring(0, s.length() - 1) : s;
    }

    private static String pad(String s, String flags, int width, char conversion) {
        int n = s.codePointCount(0, s.length());
        if (n >= width) {
            return s;
        }
        String fill = " ".repeat(width - n);
        if (flags.contains("-")) {
            return s + fill;
        }
        if (flags.contains("0") && "srac".indexOf(conversion) < 0) {
            int signLength = !s.isEmpty() && "+- ".indexOf(s.charAt(0)) >= 0 ? 1 : 0;
            if (s.startsWith("0x", signLength) || s.startsWith("0X", signLength) || s.startsWith("0o", signLength)) {
                signLength += 2;
            }
            return s.substring(0, signLength) + "0".repeat(width - n) + s.substring(signLength);
        }
        return fill + s;
    }
}
