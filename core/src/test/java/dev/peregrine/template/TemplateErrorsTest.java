package dev.peregrine.template;

import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.PeregrineException;
import dev.peregrine.TemplateException;
import dev.peregrine.TemplateRaisedException;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Errors name the line and column where the template went wrong (jinja2 only gives the line). */
class TemplateErrorsTest {

    private static TemplateException compileError(String source) {
        try {
            Template.compile(source);
        } catch (TemplateException e) {
            return e;
        }
        throw new AssertionError("compiled: " + source);
    }

    private static TemplateException renderError(String source, Map<String, ?> context) {
        Template t = Template.compile(source);
        try {
            t.render(context);
        } catch (TemplateException e) {
            return e;
        }
        throw new AssertionError("rendered: " + source);
    }

    private static void assertAt(TemplateException e, int line, int column, String messagePart) {
        assertThat(e).isInstanceOf(PeregrineException.class);
        assertThat(e.line()).as("line of: %s", e.getMessage()).isEqualTo(line);
        assertThat(e.column()).as("column of: %s", e.getMessage()).isEqualTo(column);
        assertThat(e.getMessage()).startsWith("line " + line + ", column " + column + ": ").contains(messagePart);
    }

    @Test
    void unclosedBlockNamesTheOpeningTag() {
        assertAt(compileError("{% if x %}\n{{ y }}\n  {% for a in b %}"), 3, 6, "'for' tag is never closed");
        assertAt(compileError("{% if x %}\n{{ y }}\n  {% for a in b %}"), 3, 6, "'{% endfor %}'");
        assertAt(compileError("{% if x %}{% else %}open"), 1, 4, "'{% endif %}'");
        assertAt(compileError("{% macro m() %}body"), 1, 4, "'macro' tag is never closed");
        assertAt(compileError("{% set x %}body"), 1, 4, "'{% endset %}'");
    }

    @Test
    void unclosedTagsAndLiterals() {
        assertAt(compileError("text\n  {{ x "), 2, 3, "missing '}}'");
        assertAt(compileError("text {% if x"), 1, 6, "missing '%}'");
        assertAt(compileError("a\n{# never closed"), 2, 1, "missing end of comment tag");
        assertAt(compileError("{{ 'abc }}"), 1, 4, "unterminated string literal");
        assertAt(compileError("{% raw %}never ended"), 1, 1, "endraw");
    }

    @Test
    void unknownFilterTestAndTag() {
        assertAt(compileError("{{ a }}\n  {{ b|nosuch }}"), 2, 8, "no filter named 'nosuch'");
        assertAt(compileError("{{ b is nosuch }}"), 1, 9, "no test named 'nosuch'");
        assertAt(compileError("x {% frobnicate %}"), 1, 6, "unknown tag 'frobnicate'");
        assertAt(compileError("{% include 'x.jinja' %}"), 1, 4, "the 'include' tag is not supported");
        assertAt(compileError("{% for x in y recursive %}{% endfor %}"), 1, 15, "recursive loops are not supported");
    }

    @Test
    void misplacedTags() {
        assertAt(compileError("{{ a }}\n{% if x %}{% endfor %}"), 2, 14, "unexpected 'endfor'");
        assertAt(compileError("{{ a }}\n{% if x %}{% endfor %}"), 2, 14, "innermost open block is 'if'");
        assertAt(compileError("text{% endif %}"), 1, 8, "unexpected 'endif'");
        assertAt(compileError("{% break %}"), 1, 4, "'break' outside of a loop");
        assertAt(compileError("{% for x in y %}{% macro m() %}{% continue %}{% endmacro %}{% endfor %}"), 1, 35,
                "'continue' outside of a loop");
    }

    @Test
    void badExpressions() {
        assertAt(compileError("line\n{{ 1 +\n}}"), 3, 1, "expected an expression, got end of print statement");
        assertAt(compileError("{{ (1 }}"), 1, 7, "unexpected '}', expected ')'");
        assertAt(compileError("{{ a b }}"), 1, 6, "expected end of print statement");
        assertAt(compileError("{{ .5 }}"), 1, 4, "unexpected '.'");
        assertAt(compileError("{{ f(a=1, 2) }}"), 1, 11, "positional argument follows a keyword argument");
        assertAt(compileError("{% set true = 1 %}"), 1, 8, "cannot assign to 'true'");
        assertAt(compileError("{{ 1 ? 2 }}"), 1, 6, "unexpected character '?'");
    }

    @Test
    void runtimeErrorsPointAtTheFailingOperation() {
        Map<String, Object> ctx = Map.of("d", Map.of(), "n", 3L);
        assertAt(renderError("{{ n }}\n{{ missing.attr }}", ctx), 2, 11, "'missing' is undefined");
        assertAt(renderError("{{ d.x.y }}", ctx), 1, 7, "'dict object' has no attribute 'x'");
        assertAt(renderError("{{ 'a' +\n n }}", ctx), 1, 8, "unsupported operand type(s) for +: 'str' and 'int'");
        assertAt(renderError("{{ 1 / 0 }}", ctx), 1, 6, "division by zero");
        assertAt(renderError("{{ n < 'a' }}", ctx), 1, 8, "'<' not supported between instances of 'int' and 'str'");
        assertAt(renderError("{% set n.a = 1 %}", ctx), 1, 8, "cannot assign attribute on non-namespace object");
        assertAt(renderError("{{ n() }}", ctx), 1, 4, "'int' object is not callable");
        assertAt(renderError("{{ 'x'.split(1) }}", ctx), 1, 7, "expected a string");
        assertAt(renderError("{{ d|tojson }}{{ n|join }}", ctx), 1, 20, "'int' object is not iterable");
        assertAt(renderError("{% for a, b in [1] %}{% endfor %}", ctx), 1, 8, "cannot unpack non-iterable int");
    }

    @Test
    void raiseExceptionCarriesTheTemplatesMessage() {
        String source = "{% for m in messages %}\n"
                + "  {% if m.role not in ['user', 'assistant'] %}\n"
                + "    {{ raise_exception('Only user and assistant roles are supported, not ' ~ m.role ~ '!') }}\n"
                + "  {% endif %}\n"
                + "{% endfor %}";
        TemplateException e = renderError(source, Map.of("messages", List.of(Map.of("role", "tool"))));
        assertThat(e).isInstanceOf(TemplateRaisedException.class)
                .hasMessage("Only user and assistant roles are supported, not tool!");
        assertThat(e.line()).isEqualTo(3);
        assertThat(e.column()).isEqualTo(8);
    }

    @Test
    void runawayTemplatesFailCleanly() {
        assertThat(renderError("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", Map.of()))
                .hasMessageContaining("recursion is deeper than");
        String deep = "{{ " + "(".repeat(100_000) + "1" + ")".repeat(100_000) + " }}";
        assertAt(compileError(deep), 1, 4 + Parser.MAX_NESTING, "nested more than");
        assertAt(compileError("{{ " + "-".repeat(10_000) + "1 }}"), 1, 4 + Parser.MAX_NESTING - 1, "nested more than");
        assertAt(compileError("{{ " + "not ".repeat(10_000) + "1 }}"), 1, 4 + 4 * (Parser.MAX_NESTING - 1), "nested more than");
        assertThat(compileError("{% if x %}".repeat(10_000))).hasMessageContaining("blocks are nested more than");
        assertThat(Template.compile("{{ " + "(".repeat(50) + "1" + ")".repeat(50) + " }}").render(Map.of())).isEqualTo("1");
        assertThat(renderError("{{ range(200000)|length }}", Map.of())).hasMessageContaining("range too big");
    }
    /**
     * A template comes from the model's files: what would build a gigantic string or list, or loop
     * for hours, is a TemplateException at its place, not an OutOfMemoryError, an
     * ArithmeticException or a hang (cases from a fuzzing pass).
     */
    @Test
    void sizesAndLoopsAreBounded() {
        Map<String, Object> none = Map.of();
        assertAt(renderError("{{ 'a' * 1000000000 }}", none), 1, 8, "the repeated string would be 1000000000 long");
        assertAt(renderError("{{ ''.join(['a'] * 100000) * 100000 }}", none), 1, 28, "more than a template may build");
        assertAt(renderError("{% set x = [1] * 3000000000 %}", none), 1, 16, "the repeated list");
        assertAt(renderError("{{ '{:>2000000000}'.format('a') }}", none), 1, 20, "the format's width is larger");
        assertAt(renderError("{{ '%2000000000s' % 'a' }}", none), 1, 19, "the format's width");
        assertAt(renderError("{{ '%.2000000000f' % 1.5 }}", none), 1, 20, "the format's precision");
        assertAt(renderError("{{ '{:.2000000000f}'.format(1.5) }}", none), 1, 21, "the format's precision");
        assertAt(renderError("{{ 'x' | indent(2000000000) }}", none), 1, 10, "indent's width");
        assertAt(renderError("{{ 'x' | tojson(indent=2000000000) }}", none), 1, 10, "tojson's indent");
        assertAt(renderError("{% set s = namespace(t='ab') %}{% for i in range(40) %}{% set s.t = s.t ~ s.t %}{% endfor %}",
                none), 1, 73, "the string would be");
        assertAt(renderError("{% set s = namespace(t='ab') %}{% for i in range(40) %}{% set s.t = s.t + s.t %}{% endfor %}",
                none), 1, 73, "the string would be");
        assertAt(renderError("{{ ('a' * 10000000).replace('a', 'aaaa') }}", none), 1, 20, "the replaced string");
        assertAt(renderError("{{ (['aaaaaaaa'] * 10000000) | join }}", none), 1, 32, "the joined string");
        assertAt(renderError("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", none),
                1, 32, "more than 10000000 loop iterations");
        assertAt(renderError("{% for i in range(10000) %}{{ 'a' * 10000 }}{% endfor %}", none), 1, 35, "the output would be");
        // Printing, joining or dumping a list of big strings (from a review).
        String big = "{% set s = 'x' * 16000000 %}";
        assertThat(renderError(big + "{% set l = [s] * 1000 %}{{ (l ~ '') | length }}", none).getMessage())
                .contains("the printed value would be");
        assertThat(renderError(big + "{{ ([s] * 1000) | tojson | length }}", none).getMessage()).contains("the JSON text would be");
        assertThat(renderError(big + "{{ ''.join([s] * 100) | length }}", none).getMessage()).contains("the joined string would be");
        // Recursion fanning out (2^60 calls within depth 100) counts against the same budget as loops.
        assertThat(renderError("{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}",
                none).getMessage()).contains("more than 10000000 loop iterations, macro calls and filtered items");
        // So does a filter's work over a long list, in a loop.
        assertThat(renderError("{% set l = range(100000) | list %}{% for i in range(1000) %}{{ l | select('odd') | list | length }}"
                + "{% endfor %}", none).getMessage()).contains("more than 10000000 loop iterations");
        // What real templates do stays well inside: a long conversation renders.
        List<Map<String, String>> messages = java.util.Collections.nCopies(20_000, Map.of("role", "user", "content", "hello"));
        String rendered = Template.compile("{% for m in messages %}{{ m.role }}: {{ m.content | trim }}\n{% endfor %}")
                .render(Map.of("messages", messages));
        assertThat(rendered).hasSize(20_000 * "user: hello\n".length());
    }
}
