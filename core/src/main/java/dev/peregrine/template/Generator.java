package dev.peregrine.template;

import java.util.List;
import java.util.function.Supplier;

/**
 * A Python generator or iterator, which Jinja's map, select(attr), reject(attr), unique, items and
 * reverse filters return: computed only when first iterated (so errors surface there), always
 * true, and iterable once. Templates that mean a list write {@code |list}.
 */
final class Generator {
    private final String name;
    private Supplier<List<?>> items;

    Generator(String name, Supplier<List<?>> items) {
        this.name = name;
        this.items = items;
    }

    String typeName() {
        return name;
    }

    /** The items, the first time; empty afterwards, as an exhausted Python iterator. */
    List<?> drain() {
        Supplier<List<?>> s = items;
        items = null;
        return s == null ? List.of() : s.get();
    }

    @Override
    public String toString() {
        return "<" + name + " object>";
    }
}
