package dev.peregrine.template;

import dev.peregrine.TemplateException;
import java.util.List;

/**
 * Rejects unknown filters and tests where Jinja does at compile time: everywhere except inside if
 * statements (test and bodies) and conditional expressions, where Jinja defers the error until the
 * filter actually runs (so a template may use a filter only some environments have, behind an if).
 * Loops, macros and set or filter blocks start afresh, even inside an if, as Jinja's frames do.
 */
final class NameCheck {
    private NameCheck() {
    }

    static void check(List<Stmt> body) {
        statements(body, false);
    }

    private static void statements(List<Stmt> body, boolean soft) {
        for (Stmt s : body) {
            switch (s) {
                case Stmt.Text t -> {
                }
                case Stmt.Output o -> expr(o.expr(), soft);
                case Stmt.If i -> {
                    i.conditions().forEach(c -> expr(c, true));
                    i.bodies().forEach(b -> statements(b, true));
                    statements(i.orElse(), true);
                }
                case Stmt.For f -> {
                    expr(f.iterable(), soft);
                    expr(f.filter(), false);
                    statements(f.body(), false);
                    statements(f.orElse(), false);
                }
                case Stmt.Set set -> expr(set.value(), soft);
                case Stmt.SetBlock b -> {
                    statements(b.body(), false);
                    b.filters().forEach(f -> expr(f, false));
                }
                case Stmt.FilterBlock b -> {
                    statements(b.body(), false);
                    b.filters().forEach(f -> expr(f, false));
                }
                case Stmt.Macro m -> {
                    m.defaults().forEach(d -> expr(d, false));
                    statements(m.body(), false);
                }
                case Stmt.Scoped sc -> statements(sc.body(), false);
                case Stmt.Break b -> {
                }
                case Stmt.Continue c -> {
                }
            }
        }
    }

    private static void expr(Expr e, boolean soft) {
        switch (e) {
            case null -> {
            }
            case Expr.Literal l -> {
            }
            case Expr.Name n -> {
            }
            case Expr.GetAttr g -> expr(g.obj(), soft);
            case Expr.GetItem g -> {
                expr(g.obj(), soft);
                expr(g.index(), soft);
            }
            case Expr.Slice s -> {
                expr(s.start(), soft);
                expr(s.stop(), soft);
                expr(s.step(), soft);
            }
            case Expr.Call c -> {
                expr(c.callee(), soft);
                all(c.args(), c.kwargs(), soft);
            }
            case Expr.Filter f -> {
                if (!soft && !Filters.exists(f.name())) {
                    throw new TemplateException("no filter named '" + f.name() + "'", f.pos().line(), f.pos().column());
                }
                expr(f.value(), soft);
                all(f.args(), f.kwargs(), soft);
            }
            case Expr.Test t -> {
                if (!soft && !Tests.exists(t.name())) {
                    throw new TemplateException("no test named '" + t.name() + "'", t.pos().line(), t.pos().column());
                }
                expr(t.value(), soft);
                all(t.args(), t.kwargs(), soft);
            }
            case Expr.Unary u -> expr(u.operand(), soft);
            case Expr.Binary b -> {
                expr(b.left(), soft);
                expr(b.right(), soft);
            }
            case Expr.Compare c -> {
                expr(c.first(), soft);
                c.rest().forEach(r -> expr(r, soft));
            }
            case Expr.Conditional c -> {
                expr(c.cond(), true);
                expr(c.then(), true);
                expr(c.otherwise(), true);
            }
            case Expr.ListExpr l -> l.items().forEach(i -> expr(i, soft));
            case Expr.TupleExpr t -> t.items().forEach(i -> expr(i, soft));
            case Expr.DictExpr d -> {
                d.keys().forEach(k -> expr(k, soft));
                d.values().forEach(v -> expr(v, soft));
            }
        }
    }

    private static void all(List<Expr> args, List<Expr.Keyword> kwargs, boolean soft) {
        args.forEach(a -> expr(a, soft));
        kwargs.forEach(k -> expr(k.value(), soft));
    }
}
