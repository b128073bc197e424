package dev.peregrine.template;

import dev.peregrine.TemplateException;
import java.util.List;
import java.util.Map;

/**
 * A compiled Jinja template, in the subset that chat templates use, rendering exactly as Python's
 * jinja2 does in Hugging Face's environment (trim_blocks, lstrip_blocks, loop controls,
 * raise_exception, strftime_now, json.dumps-style tojson). Immutable; render from any thread.
 *
 * <p>Context values are plain Java values: String, Integer/Long, Double, Boolean, null (None),
 * List, Map (with String keys, in the order the template should see them) and
 * {@link TemplateFunction}.
 */
public final class Template {
    private final String source;
    private final List<Stmt> body;

    private Template(String source, List<Stmt> body) {
        this.source = source;
        this.body = body;
    }

    /** @throws TemplateException for a syntax error, an unknown tag, filter or test */
    public static Template compile(String source) {
        try {
            return new Template(source, Parser.parse(source));
        } catch (StackOverflowError e) {
            throw new TemplateException("template is nested too deeply", 1, 1);
        }
    }

    /**
     * @throws TemplateException when rendering fails (wrong types, undefined values used, ...)
     * @throws dev.peregrine.TemplateRaisedException when the template calls raise_exception
     */
    public String render(Map<String, ?> context) {
        try {
            return Interpreter.render(body, context);
        } catch (EvalError e) {
            // the interpreter places errors at their node; this only guards against a missed path
            throw e.at(new Pos(1, 1));
        } catch (StackOverflowError e) {
            throw new TemplateException("template is nested too deeply", 1, 1);
        }
    }

    public String source() {
        return source;
    }
}
