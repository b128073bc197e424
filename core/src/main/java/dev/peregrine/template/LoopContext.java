package dev.peregrine.template;

import java.util.List;

/** The {@code loop} variable of a for loop. */
final class LoopContext {
    private final List<?> items;
    int index0;
    private Object lastChanged = Values.MISSING;

    LoopContext(List<?> items) {
        this.items = items;
    }

    Object attribute(String name) {
        int n = items.size();
        return switch (name) {
            case "index" -> (long) index0 + 1;
            case "index0" -> (long) index0;
            case "revindex" -> (long) (n - index0);
            case "revindex0" -> (long) (n - index0 - 1);
            case "first" -> index0 == 0;
            case "last" -> index0 == n - 1;
            case "length" -> (long) n;
            case "depth" -> 1L;
            case "depth0" -> 0L;
            case "previtem" -> index0 > 0 ? items.get(index0 - 1) : new Undefined("there is no previous item");
            case "nextitem" -> index0 < n - 1 ? items.get(index0 + 1) : new Undefined("there is no next item");
            default -> Undefined.attribute(this, name);
        };
    }

    /** loop.cycle(a, b, ...): the argument at this iteration's index, round-robin. */
    Object cycle(List<Object> args) {
        if (args.isEmpty()) {
            throw new EvalError("no items for cycling given");
        }
        return args.get(index0 % args.size());
    }

    /** loop.changed(value): true on the first call and whenever the value differs from the last call's. */
    boolean changed(List<Object> args) {
        Object value = new Tuple(args);
        boolean changed = lastChanged == Values.MISSING || !Values.eq(lastChanged, value);
        lastChanged = value;
        return changed;
    }
}
