package dev.peregrine.template;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/** Engine behaviour that the jinja2 data files cannot hold (CR characters) or that is specific to Java callers. */
class TemplateEngineTest {

    private static String render(String source, Map<String, ?> context) {
        return Template.compile(source).render(context);
    }

    @Test
    void lineEndingsAreNormalizedAsJinja2Does() {
        // outputs of jinja2 3.1.6 in Hugging Face's environment
        assertThat(render("a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc\r\n", Map.of())).isEqualTo("a\nb\nc");
        assertThat(render("x\ry\r\n", Map.of())).isEqualTo("x\ny");
        assertThat(render("{{ 'p\r\nq' }}", Map.of())).isEqualTo("p\nq");
        assertThat(render("{% for x in [1,2] %}\n  {{ x }}\n{% endfor %}\n", Map.of())).isEqualTo("  1\n  2\n");
    }

    @Test
    void generationBlockOfTransformersRendersItsBody() {
        // transformers' AssistantTracker extension marks assistant text with {% generation %}
        assertThat(render("{% for m in ['a', 'b'] %}{% generation %}<{{ m }}>{% endgeneration %}{% endfor %}", Map.of()))
                .isEqualTo("<a><b>");
    }

    @Test
    void javaValuesOfCallers() {
        Map<String, Object> ctx = Map.of("i", 3, "f", 1.5f, "list", List.of(1, 2), "map", Map.of(1, "one"));
        assertThat(render("{{ i + 1 }} {{ i == 3.0 }} {{ f * 2 }} {{ list|sum }} {{ map[1] }} {{ 2 in list }}", ctx))
                .isEqualTo("4 True 3.0 3 one True");
    }

    @Test
    void templateFunctionsCanBePassedIn() {
        TemplateFunction shout = (args, kwargs) -> ((String) args.get(0)).toUpperCase() + kwargs.getOrDefault("end", "!");
        assertThat(render("{{ shout('hi') }} {{ shout('yo', end='?') }}", Map.of("shout", shout))).isEqualTo("HI! YO?");
    }

    @Test
    void strftimeNowFormatsTheCurrentDate() {
        assertThat(render("{{ strftime_now('%Y-%m-%d') }}", Map.of())).matches("\\d{4}-\\d{2}-\\d{2}");
        assertThat(render("{{ strftime_now('%d %b %Y') }}", Map.of())).matches("\\d{2} [A-Z][a-z]{2} \\d{4}");
    }

    @Test
    void compiledTemplateIsSharedByThreads() throws Exception {
        Template t = Template.compile("{% set ns = namespace(n=0) %}{% for x in xs %}{% set ns.n = ns.n + x %}{% endfor %}"
                + "{{ ns.n }}");
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<String>> results = new ArrayList<>();
            for (int i = 0; i < 64; i++) {
                List<Integer> xs = List.of(i, i, i);
                results.add(pool.submit(() -> t.render(Map.of("xs", xs))));
            }
            for (int i = 0; i < 64; i++) {
                assertThat(results.get(i).get()).isEqualTo(Integer.toString(3 * i));
            }
        } finally {
            pool.shutdown();
        }
    }
}
