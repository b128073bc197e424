package dev.peregrine.template;

import java.util.AbstractList;
import java.util.List;
import java.util.RandomAccess;

/** A Python tuple: an immutable list that prints as {@code (a, b)} and is never equal to a list. */
final class Tuple extends AbstractList<Object> implements RandomAccess {
    private final Object[] items;

    Tuple(List<?> items) {
        this.items = items.toArray();
    }

    static Tuple of(Object... items) {
        return new Tuple(java.util.Arrays.asList(items));
    }

    @Override
    public Object get(int index) {
        return items[index];
    }

    @Override
    public int size() {
        return items.length;
    }
}
