package dev.peregrine.template;

import dev.peregrine.TemplateException;
import dev.peregrine.template.Expr.Keyword;
import dev.peregrine.template.Stmt.Target;
import dev.peregrine.template.Token.Kind;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;

/**
 * Recursive-descent parser from tokens to {@link Stmt} / {@link Expr} trees, with Jinja's operator
 * precedence (loosest first): conditional, or, and, not, comparisons and in, + and -, ~, * / // %,
 * **, unary - and +, then postfix (. [] ()), filters (|) and tests (is). Unknown filters and tests
 * are then rejected by {@link NameCheck}, where Jinja rejects them when it compiles.
 */
final class Parser {
    /** Tags Jinja has that this engine does not implement: named in the error rather than "unknown". */
    private static final Set<String> UNSUPPORTED_TAGS = Set.of("call", "with", "include", "import", "from",
            "extends", "block", "autoescape", "do", "trans", "pluralize");
    private static final Set<String> COMPARE_OPS = Set.of("==", "!=", "<", "<=", ">", ">=");
    /** Far deeper than real templates nest; keeps a hostile template from overflowing the stack. */
    static final int MAX_NESTING = 200;

    private final List<Token> tokens;
    private int i;
    private int loopDepth;
    private int blockDepth;
    private int expressionDepth;

    private Parser(List<Token> tokens) {
        this.tokens = tokens;
    }

    static List<Stmt> parse(String source) {
        Parser p = new Parser(Lexer.tokenize(source));
        List<Stmt> body = p.body(null, null);
        if (p.peek().kind() != Kind.EOF) {
            throw p.error("unexpected " + p.peek().describe(), p.peek());
        }
        NameCheck.check(body);
        return body;
    }

    // ---- statements ----

    /**
     * Statements up to (not including) a block tag named in {@code ends}, or the end of the template
     * when {@code ends} is null. {@code opener} is the tag that must be closed, for error messages.
     */
    private List<Stmt> body(Token opener, Set<String> ends) {
        List<Stmt> out = new ArrayList<>();
        while (true) {
            Token t = peek();
            switch (t.kind()) {
                case EOF -> {
                    if (ends != null) {
                        throw error("'" + opener.text() + "' tag is never closed: expected " + expected(ends)
                                + " before the end of the template", opener);
                    }
                    return out;
                }
                case TEXT -> {
                    next();
                    out.add(new Stmt.Text(t.text()));
                }
                case VAR_BEGIN -> {
                    next();
                    Expr e = tuple(true, Set.of());
                    expect(Kind.VAR_END, "end of print statement '}}'");
                    out.add(new Stmt.Output(e));
                }
                case BLOCK_BEGIN -> {
                    Token name = tokens.get(i + 1);
                    if (name.kind() != Kind.NAME) {
                        throw error("expected a tag name after '{%', got " + name.describe(), name);
                    }
                    if (ends != null && ends.contains(name.text())) {
                        return out;
                    }
                    next();
                    next();
                    if (++blockDepth > MAX_NESTING) {
                        throw error("blocks are nested more than " + MAX_NESTING + " deep", name);
                    }
                    out.add(statement(name, opener, ends));
                    blockDepth--;
                }
                default -> throw error("unexpected " + t.describe(), t);
            }
        }
    }

    private static String expected(Set<String> ends) {
        return String.join(" or ", ends.stream().sorted().map(e -> "'{% " + e + " %}'").toList());
    }

    private Stmt statement(Token name, Token opener, Set<String> ends) {
        return switch (name.text()) {
            case "if" -> ifStatement(name);
            case "for" -> forStatement(name);
            case "set" -> setStatement(name);
            case "macro" -> macro(name);
            case "filter" -> {
                List<Expr.Filter> filters = new ArrayList<>();
                filters.add(filterCall(null));
                while (peek().isOp("|")) {
                    next();
                    filters.add(filterCall(null));
                }
                endOfTag();
                List<Stmt> body = body(name, Set.of("endfilter"));
                closeTag("endfilter");
                yield new Stmt.FilterBlock(body, List.copyOf(filters));
            }
            case "generation" -> {
                endOfTag();
                List<Stmt> body = body(name, Set.of("endgeneration"));
                closeTag("endgeneration");
                yield new Stmt.Scoped(body);
            }
            case "break", "continue" -> {
                if (loopDepth == 0) {
                    throw error("'" + name.text() + "' outside of a loop", name);
                }
                endOfTag();
                yield name.text().equals("break") ? new Stmt.Break(pos(name)) : new Stmt.Continue(pos(name));
            }
            default -> {
                if (UNSUPPORTED_TAGS.contains(name.text())) {
                    throw error("the '" + name.text() + "' tag is not supported", name);
                }
                boolean closing = name.text().startsWith("end") || name.text().equals("else") || name.text().equals("elif");
                String msg = (closing ? "unexpected '" : "unknown tag '") + name.text() + "'";
                if (opener != null) {
                    msg += "; the innermost open block is '" + opener.text() + "' (line " + opener.line()
                            + "), which expects " + expected(ends);
                }
                throw error(msg, name);
            }
        };
    }

    private Stmt ifStatement(Token tag) {
        List<Expr> conditions = new ArrayList<>();
        List<List<Stmt>> bodies = new ArrayList<>();
        List<Stmt> orElse = List.of();
        Set<String> ends = Set.of("elif", "else", "endif");
        conditions.add(tuple(false, Set.of()));
        endOfTag();
        while (true) {
            bodies.add(body(tag, ends));
            next();
            Token t = next();
            if (t.isName("elif")) {
                conditions.add(tuple(false, Set.of()));
                endOfTag();
            } else if (t.isName("else")) {
                endOfTag();
                orElse = body(tag, Set.of("endif"));
                closeTag("endif");
                break;
            } else {
                endOfTag();
                break;
            }
        }
        return new Stmt.If(List.copyOf(conditions), List.copyOf(bodies), orElse);
    }

    private Stmt forStatement(Token tag) {
        Target target = assignTarget(false, Set.of("in"));
        expectName("in");
        Expr iterable = tuple(false, Set.of("recursive"));
        Expr filter = null;
        if (peek().isName("if")) {
            next();
            filter = expression(true);
        }
        if (peek().isName("recursive")) {
            throw error("recursive loops are not supported", peek());
        }
        endOfTag();
        loopDepth++;
        List<Stmt> body = body(tag, Set.of("else", "endfor"));
        loopDepth--;
        List<Stmt> orElse = List.of();
        next();
        if (next().isName("else")) {
            endOfTag();
            orElse = body(tag, Set.of("endfor"));
            closeTag("endfor");
        } else {
            endOfTag();
        }
        return new Stmt.For(target, iterable, filter, body, orElse, pos(tag));
    }

    private Stmt setStatement(Token tag) {
        Target target = assignTarget(true, Set.of());
        if (peek().isOp("=")) {
            next();
            Expr value = tuple(true, Set.of());
            endOfTag();
            return new Stmt.Set(target, value, pos(tag));
        }
        List<Expr.Filter> filters = new ArrayList<>();
        while (peek().isOp("|")) {
            next();
            filters.add(filterCall(null));
        }
        endOfTag();
        List<Stmt> body = body(tag, Set.of("endset"));
        closeTag("endset");
        return new Stmt.SetBlock(target, body, List.copyOf(filters), pos(tag));
    }

    private Stmt macro(Token tag) {
        Token name = expect(Kind.NAME, "a macro name");
        expectOp("(");
        List<String> params = new ArrayList<>();
        List<Expr> defaults = new ArrayList<>();
        while (!peek().isOp(")")) {
            if (!params.isEmpty()) {
                expectOp(",");
                if (peek().isOp(")")) {
                    break;
                }
            }
            params.add(expect(Kind.NAME, "a parameter name").text());
            if (peek().isOp("=")) {
                next();
                defaults.add(expression(true));
            } else {
                defaults.add(null);
            }
        }
        next();
        endOfTag();
        int outerLoops = loopDepth;
        loopDepth = 0;
        List<Stmt> body = body(tag, Set.of("endmacro"));
        loopDepth = outerLoops;
        closeTag("endmacro");
        return new Stmt.Macro(name.text(), List.copyOf(params), Collections.unmodifiableList(defaults), body, pos(tag));
    }

    /** Names (or name.attr for namespaces), possibly a comma-separated tuple, as assignment targets. */
    private Target assignTarget(boolean allowAttr, Set<String> endNames) {
        Token first = peek();
        List<Target> items = new ArrayList<>();
        boolean tuple = false;
        while (true) {
            Token t = peek();
            if (t.isOp("(")) {
                next();
                items.add(assignTarget(false, Set.of()));
                expectOp(")");
            } else {
                Token name = expect(Kind.NAME, "a variable name");
                if (Set.of("true", "false", "none", "True", "False", "None").contains(name.text())) {
                    throw error("cannot assign to '" + name.text() + "'", name);
                }
                if (allowAttr && peek().isOp(".")) {
                    next();
                    Token attr = expect(Kind.NAME, "an attribute name");
                    return new Stmt.AttrTarget(name.text(), attr.text(), pos(name));
                }
                items.add(new Stmt.NameTarget(name.text(), pos(name)));
            }
            allowAttr = false;
            if (!peek().isOp(",")) {
                break;
            }
            next();
            tuple = true;
            Token n = peek();
            if (n.kind() != Kind.NAME && !n.isOp("(") || endNames.contains(n.text())) {
                break;
            }
        }
        return tuple ? new Stmt.TupleTarget(List.copyOf(items), pos(first)) : items.get(0);
    }

    // ---- expressions ----

    /** Comma-separated expressions: one expression, or a tuple when there is a comma. */
    private Expr tuple(boolean withConditional, Set<String> endNames) {
        Token first = peek();
        List<Expr> items = new ArrayList<>();
        boolean isTuple = false;
        while (true) {
            if (!items.isEmpty()) {
                expectOp(",");
            }
            if (isTupleEnd(endNames)) {
                break;
            }
            items.add(expression(withConditional));
            if (peek().isOp(",")) {
                isTuple = true;
            } else {
                break;
            }
        }
        if (!isTuple) {
            if (items.isEmpty()) {
                throw error("expected an expression, got " + peek().describe(), peek());
            }
            return items.get(0);
        }
        return new Expr.TupleExpr(List.copyOf(items), pos(first));
    }

    private boolean isTupleEnd(Set<String> endNames) {
        Token t = peek();
        return t.kind() == Kind.VAR_END || t.kind() == Kind.BLOCK_END || t.isOp(")")
                || t.kind() == Kind.NAME && endNames.contains(t.text());
    }

    private Expr expression(boolean withConditional) {
        Token t = peek();
        if (++expressionDepth > MAX_NESTING) {
            throw error("expression is nested more than " + MAX_NESTING + " deep", t);
        }
        Expr e = withConditional ? conditional() : or();
        expressionDepth--;
        return e;
    }

    private Expr conditional() {
        Expr e = or();
        while (peek().isName("if")) {
            Token t = next();
            Expr cond = or();
            Expr otherwise = null;
            if (peek().isName("else")) {
                next();
                otherwise = conditional();
            }
            e = new Expr.Conditional(cond, e, otherwise, pos(t));
        }
        return e;
    }

    private Expr or() {
        Expr e = and();
        while (peek().isName("or")) {
            Token t = next();
            e = new Expr.Binary("or", e, and(), pos(t));
        }
        return e;
    }

    private Expr and() {
        Expr e = not();
        while (peek().isName("and")) {
            Token t = next();
            e = new Expr.Binary("and", e, not(), pos(t));
        }
        return e;
    }

    private Expr not() {
        if (peek().isName("not")) {
            Token t = next();
            if (++expressionDepth > MAX_NESTING) {
                throw error("expression is nested more than " + MAX_NESTING + " deep", t);
            }
            Expr operand = not();
            expressionDepth--;
            return new Expr.Unary("not", operand, pos(t));
        }
        return compare();
    }

    private Expr compare() {
        Expr first = math1();
        List<String> ops = new ArrayList<>();
        List<Expr> rest = new ArrayList<>();
        while (true) {
            Token t = peek();
            if (t.kind() == Kind.OP && COMPARE_OPS.contains(t.text())) {
                next();
                ops.add(t.text());
            } else if (t.isName("in")) {
                next();
                ops.add("in");
            } else if (t.isName("not") && tokens.get(i + 1).isName("in")) {
                next();
                next();
                ops.add("not in");
            } else {
                break;
            }
            rest.add(math1());
        }
        return ops.isEmpty() ? first : new Expr.Compare(first, List.copyOf(ops), List.copyOf(rest), first.pos());
    }

    private Expr math1() {
        Expr e = concat();
        while (peek().isOp("+") || peek().isOp("-")) {
            Token t = next();
            e = new Expr.Binary(t.text(), e, concat(), pos(t));
        }
        return e;
    }

    private Expr concat() {
        Expr e = math2();
        while (peek().isOp("~")) {
            Token t = next();
            e = new Expr.Binary("~", e, math2(), pos(t));
        }
        return e;
    }

    private Expr math2() {
        Expr e = pow();
        while (peek().isOp("*") || peek().isOp("/") || peek().isOp("//") || peek().isOp("%")) {
            Token t = next();
            e = new Expr.Binary(t.text(), e, pow(), pos(t));
        }
        return e;
    }

    private Expr pow() {
        Expr e = unary(true);
        while (peek().isOp("**")) {
            Token t = next();
            e = new Expr.Binary("**", e, unary(true), pos(t));
        }
        return e;
    }

    private Expr unary(boolean withFilter) {
        Token t = peek();
        Expr e;
        if (t.isOp("-") || t.isOp("+")) {
            next();
            if (++expressionDepth > MAX_NESTING) {
                throw error("expression is nested more than " + MAX_NESTING + " deep", t);
            }
            e = new Expr.Unary(t.text(), unary(false), pos(t));
            expressionDepth--;
        } else {
            e = primary();
        }
        e = postfix(e);
        return withFilter ? filtersAndTests(e) : e;
    }

    private Expr primary() {
        Token t = next();
        return switch (t.kind()) {
            case NAME -> switch (t.text()) {
                case "true", "True" -> new Expr.Literal(Boolean.TRUE, pos(t));
                case "false", "False" -> new Expr.Literal(Boolean.FALSE, pos(t));
                case "none", "None" -> new Expr.Literal(null, pos(t));
                default -> new Expr.Name(t.text(), pos(t));
            };
            case STRING -> {
                // adjacent string literals are joined, as in Python
                StringBuilder s = new StringBuilder(t.text());
                while (peek().kind() == Kind.STRING) {
                    s.append(next().text());
                }
                yield new Expr.Literal(s.toString(), pos(t));
            }
            case INT, FLOAT -> new Expr.Literal(t.number(), pos(t));
            case OP -> switch (t.text()) {
                case "(" -> {
                    if (peek().isOp(")")) {
                        next();
                        yield new Expr.TupleExpr(List.of(), pos(t));
                    }
                    Expr e = tuple(true, Set.of());
                    expectOp(")");
                    yield e;
                }
                case "[" -> {
                    List<Expr> items = new ArrayList<>();
                    while (!peek().isOp("]")) {
                        if (!items.isEmpty()) {
                            expectOp(",");
                            if (peek().isOp("]")) {
                                break;
                            }
                        }
                        items.add(expression(true));
                    }
                    next();
                    yield new Expr.ListExpr(List.copyOf(items), pos(t));
                }
                case "{" -> {
                    List<Expr> keys = new ArrayList<>();
                    List<Expr> values = new ArrayList<>();
                    while (!peek().isOp("}")) {
                        if (!keys.isEmpty()) {
                            expectOp(",");
                            if (peek().isOp("}")) {
                                break;
                            }
                        }
                        keys.add(expression(true));
                        expectOp(":");
                        values.add(expression(true));
                    }
                    next();
                    yield new Expr.DictExpr(List.copyOf(keys), List.copyOf(values), pos(t));
                }
                default -> throw error("unexpected " + t.describe(), t);
            };
            default -> throw error("expected an expression, got " + t.describe(), t);
        };
    }

    private Expr postfix(Expr e) {
        while (true) {
            Token t = peek();
            if (t.isOp(".")) {
                next();
                Token name = next();
                if (name.kind() == Kind.NAME) {
                    e = new Expr.GetAttr(e, name.text(), pos(t));
                } else if (name.kind() == Kind.INT) {
                    e = new Expr.GetItem(e, new Expr.Literal(name.number(), pos(name)), pos(t));
                } else {
                    throw error("expected an attribute name after '.', got " + name.describe(), name);
                }
            } else if (t.isOp("[")) {
                next();
                List<Expr> subs = new ArrayList<>();
                while (!peek().isOp("]")) {
                    if (!subs.isEmpty()) {
                        expectOp(",");
                        if (peek().isOp("]")) {
                            break;
                        }
                    }
                    subs.add(subscript());
                }
                next();
                if (subs.isEmpty()) {
                    throw error("expected an index or a slice inside '[]'", t);
                }
                Expr index = subs.size() == 1 ? subs.get(0) : new Expr.TupleExpr(List.copyOf(subs), pos(t));
                e = new Expr.GetItem(e, index, pos(t));
            } else if (t.isOp("(")) {
                e = call(e);
            } else {
                return e;
            }
        }
    }

    private Expr subscript() {
        Token t = peek();
        Expr start = null;
        if (!t.isOp(":")) {
            start = expression(true);
            if (!peek().isOp(":")) {
                return start;
            }
        }
        next();
        Expr stop = peek().isOp("]") || peek().isOp(",") || peek().isOp(":") ? null : expression(true);
        Expr step = null;
        if (peek().isOp(":")) {
            next();
            step = peek().isOp("]") || peek().isOp(",") ? null : expression(true);
        }
        return new Expr.Slice(start, stop, step, pos(t));
    }

    private Expr call(Expr callee) {
        next();
        List<Expr> args = new ArrayList<>();
        List<Keyword> kwargs = new ArrayList<>();
        arguments(args, kwargs);
        return new Expr.Call(callee, List.copyOf(args), List.copyOf(kwargs), callee.pos());
    }

    /** The arguments after an opening '(' up to and including ')'. */
    private void arguments(List<Expr> args, List<Keyword> kwargs) {
        boolean first = true;
        while (!peek().isOp(")")) {
            if (!first) {
                expectOp(",");
                if (peek().isOp(")")) {
                    break;
                }
            }
            first = false;
            Token t = peek();
            if (t.isOp("*") || t.isOp("**")) {
                throw error("'*args' and '**kwargs' in calls are not supported", t);
            }
            if (t.kind() == Kind.NAME && tokens.get(i + 1).isOp("=")) {
                next();
                next();
                kwargs.add(new Keyword(t.text(), expression(true)));
            } else {
                if (!kwargs.isEmpty()) {
                    throw error("a positional argument follows a keyword argument", t);
                }
                args.add(expression(true));
            }
        }
        next();
    }

    private Expr filtersAndTests(Expr e) {
        while (true) {
            Token t = peek();
            if (t.isOp("|")) {
                next();
                e = filterCall(e);
            } else if (t.isName("is")) {
                e = test(e);
            } else if (t.isOp("(")) {
                e = call(e);
            } else {
                return e;
            }
        }
    }

    /** A filter name and its optional arguments (after the '|'). */
    private Expr.Filter filterCall(Expr value) {
        Token name = expect(Kind.NAME, "a filter name");
        List<Expr> args = new ArrayList<>();
        List<Keyword> kwargs = new ArrayList<>();
        if (peek().isOp("(")) {
            next();
            arguments(args, kwargs);
        }
        return new Expr.Filter(value, name.text(), List.copyOf(args), List.copyOf(kwargs), pos(name));
    }

    private Expr test(Expr value) {
        next();
        boolean negated = false;
        if (peek().isName("not")) {
            next();
            negated = true;
        }
        Token name = expect(Kind.NAME, "a test name");
        List<Expr> args = new ArrayList<>();
        List<Keyword> kwargs = new ArrayList<>();
        Token t = peek();
        if (t.isOp("(")) {
            next();
            arguments(args, kwargs);
        } else if ((t.kind() == Kind.NAME || t.kind() == Kind.STRING || t.kind() == Kind.INT || t.kind() == Kind.FLOAT
                || t.isOp("[") || t.isOp("{")) && !t.isName("else") && !t.isName("or") && !t.isName("and")) {
            // one argument without parentheses: "x is divisibleby 3", "x is sameas false"
            if (t.isName("is")) {
                throw error("tests cannot be chained with 'is'", t);
            }
            args.add(postfix(primary()));
        }
        return new Expr.Test(value, name.text(), List.copyOf(args), List.copyOf(kwargs), negated, pos(name));
    }

    // ---- token helpers ----

    private Token peek() {
        return tokens.get(i);
    }

    private Token next() {
        Token t = tokens.get(i);
        if (t.kind() != Kind.EOF) {
            i++;
        }
        return t;
    }

    private Token expect(Kind kind, String what) {
        Token t = next();
        if (t.kind() != kind) {
            throw error("expected " + what + ", got " + t.describe(), t);
        }
        return t;
    }

    private void expectOp(String op) {
        Token t = next();
        if (!t.isOp(op)) {
            throw error("expected '" + op + "', got " + t.describe(), t);
        }
    }

    private void expectName(String name) {
        Token t = next();
        if (!t.isName(name)) {
            throw error("expected '" + name + "', got " + t.describe(), t);
        }
    }

    private void endOfTag() {
        Token t = next();
        if (t.kind() != Kind.BLOCK_END) {
            throw error("expected end of statement block '%}', got " + t.describe(), t);
        }
    }

    /** Consumes {@code {% name %}} (the caller has stopped at its '{%'). */
    private void closeTag(String name) {
        next();
        expectName(name);
        endOfTag();
    }

    private static Pos pos(Token t) {
        return new Pos(t.line(), t.column());
    }

    private TemplateException error(String message, Token at) {
        return new TemplateException(message, at.line(), at.column());
    }
}
