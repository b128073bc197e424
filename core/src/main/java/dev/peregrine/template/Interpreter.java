package dev.peregrine.template;

import dev.peregrine.template.Expr.Keyword;
import dev.peregrine.template.Stmt.Target;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Walks the statement tree and writes the output; one instance per render. */
final class Interpreter {
    private static final Map<String, Object> GLOBALS = Builtins.globals();
    /** Deeper macro recursion than any real template needs; stops runaway templates cleanly. */
    private static final int MAX_MACRO_DEPTH = 100;
    /**
     * Most loop iterations and macro calls one render may run: a chat template loops over the
     * messages (and their parts) a few times; nested ranges or recursion fanning out from a hostile
     * file would otherwise run for hours.
     */
    static final long MAX_ITERATIONS = 10_000_000;

    private enum Flow { NORMAL, BREAK, CONTINUE }

    private int macroDepth;
    private long iterations;

    private Interpreter() {
    }

    static String render(List<Stmt> body, Map<String, ?> context) {
        Scope root = new Scope(null);
        GLOBALS.forEach(root::set);
        context.forEach(root::set);
        StringBuilder out = new StringBuilder();
        new Interpreter().exec(body, root, out);
        return out.toString();
    }

    // ---- statements ----

    private Flow exec(List<Stmt> body, Scope scope, StringBuilder out) {
        for (Stmt stmt : body) {
            Flow flow = switch (stmt) {
                case Stmt.Text t -> {
                    append(out, t.text(), null);
                    yield Flow.NORMAL;
                }
                case Stmt.Output o -> {
                    append(out, Values.str(eval(o.expr(), scope)), o.expr().pos());
                    yield Flow.NORMAL;
                }
                case Stmt.If i -> ifStatement(i, scope, out);
                case Stmt.For f -> {
                    forStatement(f, scope, out);
                    yield Flow.NORMAL;
                }
                case Stmt.Set s -> {
                    Object value = eval(s.value(), scope);
                    assign(s.target(), value, scope, s.pos());
                    yield Flow.NORMAL;
                }
                case Stmt.SetBlock s -> {
                    StringBuilder text = new StringBuilder();
                    exec(s.body(), new Scope(scope), text);
                    Object value = text.toString();
                    for (Expr.Filter f : s.filters()) {
                        value = applyFilter(f, value, scope);
                    }
                    assign(s.target(), value, scope, s.pos());
                    yield Flow.NORMAL;
                }
                case Stmt.FilterBlock f -> {
                    StringBuilder text = new StringBuilder();
                    exec(f.body(), new Scope(scope), text);
                    Object value = text.toString();
                    for (Expr.Filter filter : f.filters()) {
                        value = applyFilter(filter, value, scope);
                    }
                    out.append(Values.str(value));
                    yield Flow.NORMAL;
                }
                case Stmt.Macro m -> {
                    scope.set(m.name(), new Macro(m, scope));
                    yield Flow.NORMAL;
                }
                case Stmt.Scoped s -> exec(s.body(), new Scope(scope), out);
                case Stmt.Break b -> Flow.BREAK;
                case Stmt.Continue c -> Flow.CONTINUE;
            };
            if (flow != Flow.NORMAL) {
                return flow;
            }
        }
        return Flow.NORMAL;
    }

    /** Appends to the output (or a block's text), which may not outgrow {@link Values#MAX_LENGTH}. */
    private static void append(StringBuilder out, String text, Pos pos) {
        try {
            Values.checkedLength((long) out.length() + text.length(), "the output");
        } catch (EvalError e) {
            throw e.at(pos == null ? new Pos(1, 1) : pos);
        }
        out.append(text);
    }

    /**
     * Counts one loop iteration, item a loop's filter looked at, or macro call against {@link
     * #MAX_ITERATIONS} (a filter counts the items, or kilobytes, of its input).
     */
    private void countIteration(Pos pos) {
        countIterations(1, pos);
    }

    private void countIterations(long n, Pos pos) {
        iterations += n;
        if (iterations > MAX_ITERATIONS) {
            throw new EvalError("the template ran more than " + MAX_ITERATIONS + " loop iterations, macro calls and filtered"
                    + " items").at(pos);
        }
    }

    private Flow ifStatement(Stmt.If node, Scope scope, StringBuilder out) {
        for (int i = 0; i < node.conditions().size(); i++) {
            if (Values.truthy(eval(node.conditions().get(i), scope))) {
                return exec(node.bodies().get(i), scope, out);
            }
        }
        return exec(node.orElse(), scope, out);
    }

    private void forStatement(Stmt.For node, Scope scope, StringBuilder out) {
        Object iterable = eval(node.iterable(), scope);
        List<?> items;
        try {
            items = Values.iterate(iterable);
        } catch (EvalError e) {
            throw e.at(node.iterable().pos());
        }
        if (node.filter() != null) {
            // "for x in xs if cond": the loop (and loop.length) sees only the items that pass
            List<Object> kept = new ArrayList<>();
            for (Object item : items) {
                countIteration(node.pos());
                Scope s = new Scope(scope);
                assign(node.target(), item, s, node.pos());
                if (Values.truthy(eval(node.filter(), s))) {
                    kept.add(item);
                }
            }
            items = kept;
        }
        if (items.isEmpty()) {
            exec(node.orElse(), new Scope(scope), out);
            return;
        }
        LoopContext loop = new LoopContext(items);
        for (int i = 0; i < items.size(); i++) {
            countIteration(node.pos());
            loop.index0 = i;
            Scope s = new Scope(scope);
            assign(node.target(), items.get(i), s, node.pos());
            s.set("loop", loop);
            if (exec(node.body(), s, out) == Flow.BREAK) {
                break;
            }
        }
    }

    private void assign(Target target, Object value, Scope scope, Pos pos) {
        switch (target) {
            case Stmt.NameTarget n -> scope.set(n.name(), value);
            case Stmt.AttrTarget a -> {
                if (!(scope.lookup(a.name()) instanceof Namespace ns)) {
                    throw new EvalError("cannot assign attribute on non-namespace object '" + a.name() + "'").at(a.pos());
                }
                ns.attributes.put(a.attr(), value);
            }
            case Stmt.TupleTarget t -> {
                List<?> items;
                try {
                    items = Values.iterate(value);
                } catch (EvalError e) {
                    throw new EvalError("cannot unpack non-iterable " + Values.typeName(value) + " object").at(t.pos());
                }
                if (items.size() != t.items().size()) {
                    throw new EvalError(items.size() > t.items().size()
                            ? "too many values to unpack (expected " + t.items().size() + ")"
                            : "not enough values to unpack (expected " + t.items().size() + ", got " + items.size()
                            + ")").at(t.pos());
                }
                for (int i = 0; i < items.size(); i++) {
                    assign(t.items().get(i), items.get(i), scope, pos);
                }
            }
        }
    }

    // ---- expressions ----

    /** Evaluates e; an error from the operation itself is reported at e's position. */
    private Object eval(Expr e, Scope scope) {
        try {
            return evaluate(e, scope);
        } catch (EvalError err) {
            throw err.at(e.pos());
        }
    }

    private Object evaluate(Expr e, Scope scope) {
        return switch (e) {
            case Expr.Literal l -> l.value();
            case Expr.Name n -> scope.lookup(n.name());
            case Expr.GetAttr g -> Values.getAttr(eval(g.obj(), scope), g.name());
            case Expr.GetItem g -> {
                Object obj = eval(g.obj(), scope);
                if (g.index() instanceof Expr.Slice s) {
                    yield Values.slice(obj, optional(s.start(), scope), optional(s.stop(), scope),
                            optional(s.step(), scope));
                }
                yield Values.getItem(obj, eval(g.index(), scope));
            }
            case Expr.Slice s -> throw new EvalError("a slice is only allowed inside []");
            case Expr.Call c -> call(c, scope);
            case Expr.Filter f -> applyFilter(f, eval(f.value(), scope), scope);
            case Expr.Test t -> Tests.apply(t.name(), eval(t.value(), scope), args(t.name(), t.args(), t.kwargs(), scope))
                    != t.negated();
            case Expr.Unary u -> u.op().equals("not") ? !Values.truthy(eval(u.operand(), scope))
                    : Values.negate(eval(u.operand(), scope), u.op().equals("-"));
            case Expr.Binary b -> binary(b, scope);
            case Expr.Compare c -> compare(c, scope);
            case Expr.Conditional c -> {
                if (Values.truthy(eval(c.cond(), scope))) {
                    yield eval(c.then(), scope);
                }
                yield c.otherwise() != null ? eval(c.otherwise(), scope)
                        : new Undefined("the inline if-expression on line " + c.pos().line()
                        + " evaluated to false and no else section was defined.");
            }
            case Expr.ListExpr l -> {
                List<Object> out = new ArrayList<>(l.items().size());
                for (Expr item : l.items()) {
                    out.add(eval(item, scope));
                }
                yield out;
            }
            case Expr.TupleExpr t -> {
                List<Object> out = new ArrayList<>(t.items().size());
                for (Expr item : t.items()) {
                    out.add(eval(item, scope));
                }
                yield new Tuple(out);
            }
            case Expr.DictExpr d -> {
                Map<Object, Object> out = new LinkedHashMap<>();
                for (int i = 0; i < d.keys().size(); i++) {
                    Object key = eval(d.keys().get(i), scope);
                    if (key instanceof List && !(key instanceof Tuple) || key instanceof Map) {
                        throw new EvalError("unhashable type: '" + Values.typeName(key) + "'").at(d.keys().get(i).pos());
                    }
                    out.put(key, eval(d.values().get(i), scope));
                }
                yield out;
            }
        };
    }

    private Object optional(Expr e, Scope scope) {
        return e == null ? null : eval(e, scope);
    }

    private Object binary(Expr.Binary b, Scope scope) {
        Object left = eval(b.left(), scope);
        return switch (b.op()) {
            // Python's and/or give back an operand, not a bool
            case "and" -> Values.truthy(left) ? eval(b.right(), scope) : left;
            case "or" -> Values.truthy(left) ? left : eval(b.right(), scope);
            case "~" -> Values.concat(Values.str(left), Values.str(eval(b.right(), scope)));
            default -> Values.binary(b.op(), left, eval(b.right(), scope));
        };
    }

    private boolean compare(Expr.Compare c, Scope scope) {
        Object left = eval(c.first(), scope);
        for (int i = 0; i < c.ops().size(); i++) {
            Expr rightExpr = c.rest().get(i);
            Object right = eval(rightExpr, scope);
            String op = c.ops().get(i);
            boolean holds;
            try {
                holds = switch (op) {
                    case "==" -> Values.eq(left, right);
                    case "!=" -> !Values.eq(left, right);
                    case "in" -> Values.contains(right, left);
                    case "not in" -> !Values.contains(right, left);
                    case "<" -> Values.compare(left, right, op) < 0;
                    case "<=" -> Values.compare(left, right, op) <= 0;
                    case ">" -> Values.compare(left, right, op) > 0;
                    default -> Values.compare(left, right, op) >= 0;
                };
            } catch (EvalError e) {
                throw e.at(rightExpr.pos());
            }
            if (!holds) {
                return false;
            }
            left = right;
        }
        return true;
    }

    private Object applyFilter(Expr.Filter f, Object value, Scope scope) {
        // A filter's work grows with its input: items of a list or dict, kilobytes of a string.
        countIterations(switch (value) {
            case java.util.Collection<?> c -> c.size();
            case Map<?, ?> m -> m.size();
            case String t -> t.length() / 1024;
            case null, default -> 0;
        }, f.pos());
        Args args = args(f.name(), f.args(), f.kwargs(), scope);
        try {
            return Filters.apply(f.name(), value, args);
        } catch (EvalError e) {
            throw e.at(f.pos());
        }
    }

    private Args args(String function, List<Expr> positional, List<Keyword> keywords, Scope scope) {
        if (positional.isEmpty() && keywords.isEmpty()) {
            return new Args(function, List.of(), Map.of());
        }
        List<Object> values = new ArrayList<>(positional.size());
        for (Expr e : positional) {
            values.add(eval(e, scope));
        }
        Map<String, Object> named = new LinkedHashMap<>();
        for (Keyword k : keywords) {
            if (named.containsKey(k.name())) {
                throw new EvalError("keyword argument repeated: " + k.name()).at(k.value().pos());
            }
            named.put(k.name(), eval(k.value(), scope));
        }
        return new Args(function, values, named);
    }

    private Object call(Expr.Call c, Scope scope) {
        Object callee = eval(c.callee(), scope);
        Args args = args(callee instanceof BoundMethod m ? m.name() : "function", c.args(), c.kwargs(), scope);
        return switch (callee) {
            case Macro m -> callMacro(m, args, c.pos());
            case BoundMethod m -> Methods.call(m, args);
            case TemplateFunction f -> f.call(args.positional, args.keywords);
            case Undefined u -> throw u.fail();
            default -> throw new EvalError("'" + Values.typeName(callee) + "' object is not callable");
        };
    }

    private Object callMacro(Macro macro, Args args, Pos pos) {
        Stmt.Macro def = macro.definition();
        countIteration(pos); // a call is work too: recursion fanning out stays within the budget
        if (macroDepth >= MAX_MACRO_DEPTH) {
            throw new EvalError("macro '" + def.name() + "' recursion is deeper than " + MAX_MACRO_DEPTH);
        }
        Scope s = new Scope(macro.closure());
        Map<String, Object> extraKeywords = new LinkedHashMap<>(args.keywords);
        List<String> params = def.params();
        for (int i = 0; i < params.size(); i++) {
            String name = params.get(i);
            Object value;
            if (i < args.positional.size()) {
                if (extraKeywords.containsKey(name)) {
                    throw new EvalError("macro '" + def.name() + "' got multiple values for argument '" + name + "'");
                }
                value = args.positional.get(i);
            } else if (extraKeywords.containsKey(name)) {
                value = extraKeywords.remove(name);
            } else if (def.defaults().get(i) != null) {
                value = eval(def.defaults().get(i), s);
            } else {
                value = new Undefined("parameter '" + name + "' was not provided");
            }
            s.set(name, value);
        }
        List<Object> extra = args.positional.size() > params.size()
                ? args.positional.subList(params.size(), args.positional.size()) : List.of();
        s.set("varargs", new Tuple(extra));
        s.set("kwargs", new LinkedHashMap<Object, Object>(extraKeywords));
        StringBuilder out = new StringBuilder();
        macroDepth++;
        try {
            exec(def.body(), s, out);
        } finally {
            macroDepth--;
        }
        return out.toString();
    }
}
