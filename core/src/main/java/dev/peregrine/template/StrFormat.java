package dev.peregrine.template;

import java.util.List;
import java.util.Map;

/**
 * Python's {@code str.format}: replacement fields {@code {}}, {@code {0}} and {@code {name}} with
 * an optional conversion ({@code !s}, {@code !r}) and format spec {@code
 * [[fill]align][sign][#][0][width][.precision][type]} (types s d x X o b c f F e E g G %), and
 * {@code {{ }}} for braces. Digit grouping, attribute or index access inside a field and nested
 * fields in a spec ({@code {:{width}}}) are not supported and say so.
 */
final class StrFormat {
    private StrFormat() {
    }

    static String format(String template, List<Object> positional, Map<String, Object> keywords) {
        StringBuilder out = new StringBuilder();
        int auto = 0;          // the next automatic field number
        Boolean manual = null; // whether fields are numbered by hand (null: no numbered field yet)
        int i = 0;
        while (i < template.length()) {
            char c = template.charAt(i);
            if (c == '}') {
                if (i + 1 < template.length() && template.charAt(i + 1) == '}') {
                    out.append('}');
                    i += 2;
                    continue;
                }
                throw new EvalError("Single '}' encountered in format string");
            }
            if (c != '{') {
                out.append(c);
                i++;
                continue;
            }
            if (i + 1 < template.length() && template.charAt(i + 1) == '{') {
                out.append('{');
                i += 2;
                continue;
            }
            int close = template.indexOf('}', i);
            if (close < 0) {
                throw new EvalError("Single '{' encountered in format string");
            }
            String field = template.substring(i + 1, close);
            i = close + 1;
            String spec = "";
            int colon = field.indexOf(':');
            if (colon >= 0) {
                spec = field.substring(colon + 1);
                field = field.substring(0, colon);
            }
            char conversion = 0;
            int bang = field.indexOf('!');
            if (bang >= 0) {
                String conv = field.substring(bang + 1);
                if (!conv.equals("s") && !conv.equals("r")) {
                    throw new EvalError("Unknown conversion specifier " + conv);
                }
                conversion = conv.charAt(0);
                field = field.substring(0, bang);
            }
            Object value;
            if (field.isEmpty()) {
                if (Boolean.TRUE.equals(manual)) {
                    throw new EvalError("cannot switch from manual field specification to automatic field numbering");
                }
                manual = false;
                value = argument(positional, auto++);
            } else if (field.chars().allMatch(Character::isDigit)) {
                if (Boolean.FALSE.equals(manual)) {
                    throw new EvalError("cannot switch from automatic field numbering to manual field specification");
                }
                manual = true;
                value = argument(positional, Integer.parseInt(field));
            } else if (field.chars().allMatch(ch -> Character.isLetterOrDigit(ch) || ch == '_')) {
                if (!keywords.containsKey(field)) {
                    throw new EvalError("KeyError: '" + field + "'");
                }
                value = keywords.get(field);
            } else {
                throw new EvalError("format field '" + field + "': attribute and index access are not supported");
            }
            if (value instanceof Undefined u) {
                throw u.fail();
            }
            if (conversion != 0) {
                value = conversion == 'r' ? Values.repr(value) : Values.str(value);
            }
            out.append(formatValue(value, spec));
        }
        return out.toString();
    }

    private static Object argument(List<Object> positional, int index) {
        if (index >= positional.size()) {
            throw new EvalError("IndexError: Replacement index " + index + " out of range for positional args tuple");
        }
        return positional.get(index);
    }

    /** One value under a format spec, as Python's format(value, spec). */
    static String formatValue(Object value, String spec) {
        if (spec.isEmpty() && value instanceof Boolean) {
            return Values.str(value); // True / False, as format(True, '')
        }
        int p = 0;
        char fill = ' ';
        boolean explicitFill = false;
        char align = 0;
        if (spec.length() >= 2 && "<>=^".indexOf(spec.charAt(1)) >= 0) {
            fill = spec.charAt(0);
            explicitFill = true;
            align = spec.charAt(1);
            p = 2;
        } else if (!spec.isEmpty() && "<>=^".indexOf(spec.charAt(0)) >= 0) {
            align = spec.charAt(0);
            p = 1;
        }
        char sign = '-';
        if (p < spec.length() && "+- ".indexOf(spec.charAt(p)) >= 0) {
            sign = spec.charAt(p++);
        }
        boolean alternate = p < spec.length() && spec.charAt(p) == '#';
        if (alternate) {
            p++;
        }
        // '0' before the width: zero fill unless a fill is given, and for numbers sign-aware padding
        // unless an alignment is given (Python 3.10's rules).
        boolean zero = p < spec.length() && spec.charAt(p) == '0';
        if (zero) {
            if (!explicitFill) {
                fill = '0';
            }
            p++;
        }
        int width = 0;
        while (p < spec.length() && Character.isDigit(spec.charAt(p))) {
            width = Values.fieldDigits(width, spec.charAt(p++), "the format's width");
        }
        if (p < spec.length() && (spec.charAt(p) == ',' || spec.charAt(p) == '_')) {
            throw new EvalError("digit grouping ('" + spec.charAt(p) + "') in a format spec is not supported");
        }
        int precision = -1;
        if (p < spec.length() && spec.charAt(p) == '.') {
            p++;
            precision = 0;
            int start = p;
            while (p < spec.length() && Character.isDigit(spec.charAt(p))) {
                precision = Values.fieldDigits(precision, spec.charAt(p++), "the format's precision");
            }
            if (p == start) {
                throw new EvalError("Format specifier missing precision");
            }
        }
        char type = p < spec.length() ? spec.charAt(p++) : 0;
        if (p < spec.length()) {
            throw new EvalError("Invalid format specifier '" + spec + "'");
        }
        boolean number = value instanceof Long || value instanceof Double || value instanceof Boolean;
        String body;
        if (type == 's' || (type == 0 && !number)) {
            if (number && type == 's') {
                throw new EvalError("Unknown format code 's' for object of type '" + Values.typeName(value) + "'");
            }
            if (sign != '-' || alternate || align == '=') {
                throw new EvalError("Sign, '#' or '=' alignment not allowed in string format specifier");
            }
            // (a '0' flag pads a string with zeros on its right, the default alignment)
            body = Values.str(value);
            if (precision >= 0 && body.codePointCount(0, body.length()) > precision) {
                body = body.substring(0, body.offsetByCodePoints(0, precision));
            }
            return pad("", body, fill, align == 0 ? '<' : align, width);
        }
        if (!number) {
            throw new EvalError("Unknown format code '" + type + "' for object of type '" + Values.typeName(value) + "'");
        }
        Object n = value instanceof Boolean b ? (Object) (b ? 1L : 0L) : value;
        if (n instanceof Long && precision >= 0 && type != 's') {
            throw new EvalError("Precision not allowed in integer format specifier");
        }
        if (type == 'c' && sign != '-') {
            throw new EvalError("Sign not allowed with integer format specifier 'c'");
        }
        String prefix = ""; // 0x, 0o, 0b of '#': padded after it, as the sign
        String digits;
        if (type == 0 && n instanceof Double d && precision < 0) {
            digits = Values.str(Math.abs(d));
        } else if (type == 0 && n instanceof Double d) {
            digits = shortest(Math.abs(d), Math.max(precision, 1));
        } else if (type == 0 || "dxXobcfFeEgG%".indexOf(type) >= 0) {
            char t = type == 0 ? (n instanceof Long ? 'd' : 'g') : type;
            if ("dxXobc".indexOf(t) >= 0 && !(n instanceof Long)) {
                throw new EvalError("Unknown format code '" + t + "' for object of type 'float'");
            }
            if (alternate && "xXob".indexOf(t) >= 0) {
                prefix = t == 'b' ? "0b" : t == 'o' ? "0o" : t == 'x' ? "0x" : "0X";
            }
            digits = switch (t) {
                case 'b' -> Long.toBinaryString(Math.abs((Long) n));
                case 'c' -> new String(Character.toChars((int) (long) (Long) n));
                case '%' -> Printf.format("%" + (alternate ? "#" : "") + "." + (precision < 0 ? 6 : precision) + "f",
                        Math.abs(Values.toDouble(n) * 100)) + "%";
                case 'x', 'X', 'o' -> Printf.format("%" + t, Math.abs((Long) n));
                default -> Printf.format("%" + (alternate ? "#" : "") + (precision >= 0 ? "." + precision : "") + t,
                        n instanceof Long l ? (Object) Math.abs(l) : (Object) Math.abs((Double) n));
            };
        } else {
            throw new EvalError("Unknown format code '" + type + "' for object of type '" + Values.typeName(value) + "'");
        }
        boolean negative = n instanceof Long l ? l < 0 : ((Double) n) < 0 || 1 / (Double) n < 0;
        String signText = (negative ? "-" : sign == '+' ? "+" : sign == ' ' ? " " : "") + prefix;
        return pad(signText, digits, fill, align != 0 ? align : zero ? '=' : '>', width);
    }

    /**
     * A float under a precision and no type: 'g' with {@code precision} significant digits, but
     * scientific from an exponent of {@code precision - 1} on (not {@code precision}), and fixed
     * point keeps a digit after the point ("12.0"), as Python formats it.
     */
    private static String shortest(double d, int precision) {
        if (Double.isNaN(d) || Double.isInfinite(d)) {
            return Values.str(d);
        }
        String scientific = Printf.format("%." + (precision - 1) + "e", d);
        int exponent = Integer.parseInt(scientific.substring(scientific.indexOf('e') + 1));
        if (exponent < -4 || exponent >= precision - 1) {
            int e = scientific.indexOf('e');
            String mantissa = scientific.substring(0, e);
            if (mantissa.contains(".")) {
                mantissa = mantissa.replaceAll("0+$", "").replaceAll("\\.$", "");
            }
            return mantissa + scientific.substring(e);
        }
        String fixed = Printf.format("%." + (precision - 1 - exponent) + "f", d);
        if (fixed.contains(".")) {
            fixed = fixed.replaceAll("0+$", "");
            if (fixed.endsWith(".")) {
                fixed += "0";
            }
        } else {
            fixed += ".0";
        }
        return fixed;
    }

    /** Sign and body padded to {@code width} with {@code fill}: left, right, centred or after the sign (=). */
    private static String pad(String sign, String body, char fill, char align, int width) {
        int length = sign.length() + body.codePointCount(0, body.length());
        if (length >= width) {
            return sign + body;
        }
        String padding = String.valueOf(fill).repeat(width - length);
        return switch (align) {
            case '<' -> sign + body + padding;
            case '^' -> padding.substring(0, padding.length() / 2) + sign + body + padding.substring(padding.length() / 2);
            case '=' -> sign + padding + body;
            default -> padding + sign + body;
        };
    }
}
