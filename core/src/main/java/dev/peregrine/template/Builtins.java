package dev.peregrine.template;

import java.time.LocalDateTime;
import java.time.format.TextStyle;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The globals of Hugging Face's chat-template environment: Jinja's range, dict and namespace, plus
 * raise_exception and strftime_now.
 */
final class Builtins {
    private Builtins() {
    }

    static Map<String, Object> globals() {
        Map<String, Object> g = new HashMap<>();
        g.put("range", (TemplateFunction) Builtins::range);
        g.put("dict", (TemplateFunction) (args, kwargs) -> {
            Map<Object, Object> m = new LinkedHashMap<>();
            if (args.size() > 1) {
                throw new EvalError("dict expected at most 1 argument, got " + args.size());
            }
            if (!args.isEmpty()) {
                m.putAll(mapping(args.get(0)));
            }
            m.putAll(kwargs);
            return m;
        });
        g.put("namespace", (TemplateFunction) (args, kwargs) -> {
            Namespace ns = new Namespace();
            if (args.size() > 1) {
                throw new EvalError("namespace expected at most 1 argument, got " + args.size());
            }
            if (!args.isEmpty()) {
                ns.attributes.putAll(mapping(args.get(0)));
            }
            ns.attributes.putAll(kwargs);
            return ns;
        });
        g.put("raise_exception", (TemplateFunction) (args, kwargs) -> {
            new Args("raise_exception", args, kwargs).bind(1, "message");
            throw new EvalError(Values.str(args.isEmpty() ? kwargs.get("message") : args.get(0)), true);
        });
        g.put("strftime_now", (TemplateFunction) (args, kwargs) -> {
            Args a = new Args("strftime_now", args, kwargs).bind(1, "format");
            return strftime(LocalDateTime.now(), a.string(0, null));
        });
        return g;
    }

    private static Map<?, ?> mapping(Object v) {
        if (v instanceof Map<?, ?> m) {
            return m;
        }
        if (v instanceof Namespace ns) {
            return ns.attributes;
        }
        throw new EvalError("expected a mapping, got " + Values.typeName(v));
    }

    private static Object range(List<Object> args, Map<String, Object> kwargs) {
        if (!kwargs.isEmpty() || args.isEmpty() || args.size() > 3) {
            throw new EvalError("range expects 1 to 3 integer arguments");
        }
        for (Object a : args) {
            if (!Values.isIntegral(a)) {
                throw new EvalError("'" + Values.typeName(a) + "' object cannot be interpreted as an integer");
            }
        }
        long start = args.size() == 1 ? 0 : Values.toLong(args.get(0));
        long stop = Values.toLong(args.get(args.size() == 1 ? 0 : 1));
        long step = args.size() == 3 ? Values.toLong(args.get(2)) : 1;
        if (step == 0) {
            throw new EvalError("range() arg 3 must not be zero");
        }
        List<Object> out = new ArrayList<>();
        for (long i = start; step > 0 ? i < stop : i > stop; i += step) {
            if (out.size() >= 100_000) {
                // Jinja's sandbox refuses ranges this long too (MAX_RANGE)
                throw new EvalError("range too big, maximum size for range is 100000");
            }
            out.add(i);
        }
        return out;
    }

    /** Python's strftime for the directives chat templates use (dates in system prompts). */
    static String strftime(LocalDateTime t, String format) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < format.length(); i++) {
            char c = format.charAt(i);
            if (c != '%' || i + 1 == format.length()) {
                sb.append(c);
                continue;
            }
            char d = format.charAt(++i);
            switch (d) {
                case 'Y' -> sb.append(String.format("%04d", t.getYear()));
                case 'y' -> sb.append(String.format("%02d", t.getYear() % 100));
                case 'm' -> sb.append(String.format("%02d", t.getMonthValue()));
                case 'd' -> sb.append(String.format("%02d", t.getDayOfMonth()));
                case 'H' -> sb.append(String.format("%02d", t.getHour()));
                case 'I' -> sb.append(String.format("%02d", (t.getHour() + 11) % 12 + 1));
                case 'M' -> sb.append(String.format("%02d", t.getMinute()));
                case 'S' -> sb.append(String.format("%02d", t.getSecond()));
                case 'p' -> sb.append(t.getHour() < 12 ? "AM" : "PM");
                case 'j' -> sb.append(String.format("%03d", t.getDayOfYear()));
                case 'b' -> sb.append(t.getMonth().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
                case 'B' -> sb.append(t.getMonth().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
                case 'a' -> sb.append(t.getDayOfWeek().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
                case 'A' -> sb.append(t.getDayOfWeek().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
                case '%' -> sb.append('%');
                default -> throw new EvalError("strftime_now: unsupported directive %" + d);
            }
        }
        return sb.toString();
    }
}
