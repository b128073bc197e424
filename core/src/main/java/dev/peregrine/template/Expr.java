package dev.peregrine.template;

import java.util.List;

/** Expression nodes. Each keeps the position of its first token (or operator) for error messages. */
sealed interface Expr {
    Pos pos();

    record Literal(Object value, Pos pos) implements Expr {
    }

    record Name(String name, Pos pos) implements Expr {
    }

    /** {@code obj.name}: an attribute (or method) first, then an item, as Jinja's getattr does. */
    record GetAttr(Expr obj, String name, Pos pos) implements Expr {
    }

    /** {@code obj[index]}: an item first, then an attribute; index may be a {@link Slice}. */
    record GetItem(Expr obj, Expr index, Pos pos) implements Expr {
    }

    /** {@code start:stop:step} inside brackets; absent parts are null. */
    record Slice(Expr start, Expr stop, Expr step, Pos pos) implements Expr {
    }

    record Call(Expr callee, List<Expr> args, List<Keyword> kwargs, Pos pos) implements Expr {
    }

    /** {@code value | name(args)}. */
    record Filter(Expr value, String name, List<Expr> args, List<Keyword> kwargs, Pos pos) implements Expr {
    }

    /** {@code value is [not] name(args)}. */
    record Test(Expr value, String name, List<Expr> args, List<Keyword> kwargs, boolean negated, Pos pos) implements Expr {
    }

    /** {@code -x}, {@code +x}, {@code not x}. */
    record Unary(String op, Expr operand, Pos pos) implements Expr {
    }

    /** Arithmetic, {@code ~}, {@code and}, {@code or}. */
    record Binary(String op, Expr left, Expr right, Pos pos) implements Expr {
    }

    /** A chain {@code a < b <= c} with Python's meaning (each pair compared, all must hold). */
    record Compare(Expr first, List<String> ops, List<Expr> rest, Pos pos) implements Expr {
    }

    /** {@code then if cond else otherwise}; otherwise is null when there is no else. */
    record Conditional(Expr cond, Expr then, Expr otherwise, Pos pos) implements Expr {
    }

    record ListExpr(List<Expr> items, Pos pos) implements Expr {
    }

    record TupleExpr(List<Expr> items, Pos pos) implements Expr {
    }

    record DictExpr(List<Expr> keys, List<Expr> values, Pos pos) implements Expr {
    }

    /** A keyword argument {@code name=value}. */
    record Keyword(String name, Expr value) {
    }
}
