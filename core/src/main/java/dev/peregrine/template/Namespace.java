package dev.peregrine.template;

import java.util.LinkedHashMap;
import java.util.Map;

/** {@code namespace(...)}: the one object whose attributes a template may assign, across loop scopes. */
final class Namespace {
    final Map<Object, Object> attributes = new LinkedHashMap<>();

    @Override
    public String toString() {
        return "<Namespace " + Values.repr(attributes) + ">";
    }
}
