package dev.peregrine.template;

import java.util.HashMap;
import java.util.Map;

/**
 * Variables of one scope. As in Jinja, each loop iteration and each macro call gets a child scope:
 * a {@code set} there does not change the outer variable (hence {@code namespace()}), while if
 * blocks share the scope they are in.
 */
final class Scope {
    private final Scope parent;
    private final Map<String, Object> vars = new HashMap<>();

    Scope(Scope parent) {
        this.parent = parent;
    }

    Object lookup(String name) {
        for (Scope s = this; s != null; s = s.parent) {
            Object v = s.vars.get(name);
            if (v != null || s.vars.containsKey(name)) {
                return v;
            }
        }
        return Undefined.name(name);
    }

    void set(String name, Object value) {
        vars.put(name, value);
    }
}
