package dev.peregrine.cli;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The options of one subcommand, parsed. Each option has a canonical name (its long form without
 * dashes) and any number of spellings; options that take a value accept {@code -x VALUE},
 * {@code --name VALUE} and {@code --name=VALUE}. Spelling mistakes are {@link UsageException}s;
 * values that do not parse are {@link IllegalArgumentException}s naming the option.
 */
final class Args {
    /** One option a subcommand accepts. */
    record Option(String name, boolean takesValue, String... spellings) {
    }

    /** -h / --help, accepted by every subcommand. */
    static final Option HELP = new Option("help", false, "-h", "--help");

    private final Map<String, List<String>> values = new LinkedHashMap<>();

    private Args() {
    }

    /** Parses {@code args[from..]} against {@code options}; positional arguments are not accepted. */
    static Args parse(String[] args, int from, List<Option> options) {
        Args parsed = new Args();
        for (int i = from; i < args.length; i++) {
            String arg = args[i];
            String inlineValue = null;
            int eq = arg.indexOf('=');
            if (arg.startsWith("--") && eq > 0) {
                inlineValue = arg.substring(eq + 1);
                arg = arg.substring(0, eq);
            }
            Option option = find(options, arg);
            String value;
            if (!option.takesValue()) {
                if (inlineValue != null) {
                    throw new UsageException("option " + arg + " takes no value");
                }
                value = "";
            } else if (inlineValue != null) {
                value = inlineValue;
            } else if (i + 1 < args.length) {
                // The next word is the value whatever it looks like, so "--seed -1" works.
                value = args[++i];
            } else {
                throw new UsageException("option " + arg + " needs a value");
            }
            parsed.values.computeIfAbsent(option.name(), k -> new ArrayList<>()).add(value);
        }
        return parsed;
    }

    /** {@code shared} and {@code more} in one list. */
    static List<Option> options(List<Option> shared, Option... more) {
        List<Option> all = new ArrayList<>(List.of(more));
        all.addAll(shared);
        return List.copyOf(all);
    }

    /**
     * Splits a command line into its options (returned, for {@link #parse}) and its positional
     * arguments (added to {@code positional}). Everything after "--" is positional, so a text may
     * start with a dash.
     */
    static String[] optionsOnly(String[] argv, List<Option> options, List<String> positional) {
        List<String> kept = new ArrayList<>();
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            if (a.equals("--")) {
                positional.addAll(Arrays.asList(argv).subList(i + 1, argv.length));
                break;
            }
            if (!a.startsWith("-") || a.equals("-")) {
                positional.add(a);
                continue;
            }
            kept.add(a);
            String spelling = a.contains("=") ? a.substring(0, a.indexOf('=')) : a;
            boolean takesValue = options.stream().anyMatch(o -> o.takesValue() && Arrays.asList(o.spellings()).contains(spelling));
            if (takesValue && !a.contains("=") && i + 1 < argv.length) {
                kept.add(argv[++i]);
            }
        }
        return kept.toArray(String[]::new);
    }

    private static Option find(List<Option> options, String arg) {
        for (Option o : options) {
            for (String s : o.spellings()) {
                if (s.equals(arg)) {
                    return o;
                }
            }
        }
        throw new UsageException(arg.startsWith("-") ? "unknown option " + arg : "unexpected argument '" + arg + "'");
    }

    boolean has(String name) {
        return values.containsKey(name);
    }

    /** The last value given for an option (a later one overrides an earlier one). */
    Optional<String> value(String name) {
        List<String> v = values.get(name);
        return v == null ? Optional.empty() : Optional.of(v.getLast());
    }

    /** Every value given for a repeatable option, in order. */
    List<String> all(String name) {
        return values.getOrDefault(name, List.of());
    }

    String required(String name, String spelling) {
        return value(name).orElseThrow(() -> new UsageException("missing " + spelling));
    }

    int intValue(String name, int fallback) {
        String v = value(name).orElse(null);
        if (v == null) {
            return fallback;
        }
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + name + " expects an integer, got '" + v + "'");
        }
    }

    long longValue(String name, long fallback) {
        String v = value(name).orElse(null);
        if (v == null) {
            return fallback;
        }
        try {
            return Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + name + " expects an integer, got '" + v + "'");
        }
    }

    float floatValue(String name, float fallback) {
        String v = value(name).orElse(null);
        if (v == null) {
            return fallback;
        }
        try {
            return Float.parseFloat(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + name + " expects a number, got '" + v + "'");
        }
    }
}
