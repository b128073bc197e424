package dev.peregrine.template;

import java.util.List;
import java.util.Map;

/** The arguments of a filter, test, method or function call, bound to parameter names as Python would. */
final class Args {
    private final String function;
    final List<Object> positional;
    final Map<String, Object> keywords;
    private String[] names = {};

    Args(String function, List<Object> positional, Map<String, Object> keywords) {
        this.function = function;
        this.positional = positional;
        this.keywords = keywords;
    }

    Args named(String function) {
        return new Args(function, positional, keywords);
    }

    /** Checks the call against the parameters (in order), of which the first {@code required} have no default. */
    Args bind(int required, String... params) {
        if (positional.size() > params.length) {
            throw new EvalError(function + "() takes at most " + params.length + " argument(s) ("
                    + positional.size() + " given)");
        }
        for (String k : keywords.keySet()) {
            int at = List.of(params).indexOf(k);
            if (at < 0) {
                throw new EvalError(function + "() got an unexpected keyword argument '" + k + "'");
            }
            if (at < positional.size()) {
                throw new EvalError(function + "() got multiple values for argument '" + k + "'");
            }
        }
        for (int i = positional.size(); i < required; i++) {
            if (!keywords.containsKey(params[i])) {
                throw new EvalError(function + "() missing required argument '" + params[i] + "'");
            }
        }
        names = params;
        return this;
    }

    /** Parameter i, or {@code dflt} when it was not given. */
    Object get(int i, Object dflt) {
        if (i < positional.size()) {
            return positional.get(i);
        }
        return i < names.length && keywords.containsKey(names[i]) ? keywords.get(names[i]) : dflt;
    }

    Object get(int i) {
        return get(i, null);
    }

    boolean has(int i) {
        return i < positional.size() || i < names.length && keywords.containsKey(names[i]);
    }

    String string(int i, String dflt) {
        Object v = get(i, dflt);
        if (v != null && !(v instanceof String)) {
            throw new EvalError(function + "(): expected a string, got " + Values.typeName(v));
        }
        return (String) v;
    }

    long integer(int i, long dflt) {
        Object v = get(i, dflt);
        if (!Values.isIntegral(v)) {
            throw new EvalError(function + "(): expected an integer, got " + Values.typeName(v));
        }
        return Values.toLong(v);
    }

    boolean bool(int i, boolean dflt) {
        return Values.truthy(get(i, dflt));
    }
}
