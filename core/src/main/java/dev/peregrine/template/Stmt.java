package dev.peregrine.template;

import java.util.List;

/** Statement nodes: the template body is a list of these. */
sealed interface Stmt {

    record Text(String text) implements Stmt {
    }

    /** {@code {{ expr }}}. */
    record Output(Expr expr) implements Stmt {
    }

    /** if / elif ... / else: conditions.get(i) guards bodies.get(i); orElse may be empty. */
    record If(List<Expr> conditions, List<List<Stmt>> bodies, List<Stmt> orElse) implements Stmt {
    }

    /** {@code for target in iterable [if filter]} ... [else] ...: filter is null when absent. */
    record For(Target target, Expr iterable, Expr filter, List<Stmt> body, List<Stmt> orElse, Pos pos) implements Stmt {
    }

    /** {@code set target = value}. */
    record Set(Target target, Expr value, Pos pos) implements Stmt {
    }

    /** {@code set target [| filters]} body {@code endset}: the rendered body, through the filters (whose value is null). */
    record SetBlock(Target target, List<Stmt> body, List<Expr.Filter> filters, Pos pos) implements Stmt {
    }

    /** {@code macro name(params)}: defaults.get(i) is null for a parameter without a default. */
    record Macro(String name, List<String> params, List<Expr> defaults, List<Stmt> body, Pos pos) implements Stmt {
    }

    /** {@code filter name(args) | ...} body {@code endfilter}: the rendered body through the filters (whose value is null). */
    record FilterBlock(List<Stmt> body, List<Expr.Filter> filters) implements Stmt {
    }

    /** A body rendered in its own scope ({@code generation} of Hugging Face's AssistantTracker). */
    record Scoped(List<Stmt> body) implements Stmt {
    }

    record Break(Pos pos) implements Stmt {
    }

    record Continue(Pos pos) implements Stmt {
    }

    /** Where a value is assigned: a name, a namespace attribute, or a tuple to unpack. */
    sealed interface Target {
    }

    record NameTarget(String name, Pos pos) implements Target {
    }

    record AttrTarget(String name, String attr, Pos pos) implements Target {
    }

    record TupleTarget(List<Target> items, Pos pos) implements Target {
    }
}
