package dev.peregrine.template;

/**
 * Jinja's default Undefined: the value of a missing variable, attribute or item. It is false,
 * renders as the empty string, iterates as empty and has length 0; any other use (an attribute, an
 * item, arithmetic, a call) fails with {@code hint}, e.g. "'x' is undefined".
 */
record Undefined(String hint) {

    EvalError fail() {
        return new EvalError(hint);
    }

    static Undefined name(String name) {
        return new Undefined("'" + name + "' is undefined");
    }

    static Undefined attribute(Object owner, Object name) {
        return new Undefined(Values.describe(owner) + " has no attribute " + Values.repr(name));
    }

    @Override
    public String toString() {
        return "";
    }
}
