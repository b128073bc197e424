package dev.peregrine.template;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.TemplateException;
import dev.peregrine.TemplateRaisedException;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Templates rendered against what jinja2 renders in Hugging Face's environment, character for
 * character: the hand-written language features of features.jinja (with features.context.json),
 * 400 random nestings of text, whitespace and tags with '-' and '+' modifiers
 * (whitespace-fuzz.jinja) and 1500 random expressions over the same context
 * (expressions-fuzz.jinja). Where jinja2 fails, the engine must fail too, with a
 * {@link TemplateException} (and the template's own message for raise_exception).
 */
class TemplateFeaturesTest {
    private static final Map<String, Object> CONTEXT =
            TemplateTestData.json(TemplateTestData.resource("features.context.json"));
    private static final Map<String, String> FEATURES = TemplateTestData.sections("features.jinja");
    private static final Map<String, String> FEATURES_EXPECTED = TemplateTestData.sections("features.expected");
    private static final Map<String, String> WHITESPACE = TemplateTestData.sections("whitespace-fuzz.jinja");
    private static final Map<String, String> WHITESPACE_EXPECTED = TemplateTestData.sections("whitespace-fuzz.expected");
    private static final Map<String, String> EXPRESSIONS = TemplateTestData.sections("expressions-fuzz.jinja");
    private static final Map<String, String> EXPRESSIONS_EXPECTED = TemplateTestData.sections("expressions-fuzz.expected");

    static Stream<Arguments> features() {
        return FEATURES.entrySet().stream().map(e -> Arguments.of(e.getKey(), e.getValue()));
    }

    static Stream<Arguments> whitespace() {
        return WHITESPACE.entrySet().stream().map(e -> Arguments.of(e.getKey(), e.getValue()));
    }

    static Stream<Arguments> expressions() {
        return EXPRESSIONS.entrySet().stream().map(e -> Arguments.of(e.getKey(), e.getValue()));
    }

    @Test
    void everyCaseHasAnExpectation() {
        assertThat(FEATURES_EXPECTED.keySet()).containsExactlyElementsOf(FEATURES.keySet());
        assertThat(WHITESPACE_EXPECTED.keySet()).containsExactlyElementsOf(WHITESPACE.keySet());
        assertThat(EXPRESSIONS_EXPECTED.keySet()).containsExactlyElementsOf(EXPRESSIONS.keySet());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("features")
    void rendersFeaturesAsJinja2(String name, String source) {
        assertRendersAs(source, CONTEXT, FEATURES_EXPECTED.get(name));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("whitespace")
    void controlsWhitespaceAsJinja2(String name, String source) {
        assertRendersAs(source, Map.of("t", true), WHITESPACE_EXPECTED.get(name));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("expressions")
    void evaluatesExpressionsAsJinja2(String name, String source) {
        assertRendersAs(source, CONTEXT, EXPRESSIONS_EXPECTED.get(name));
    }

    private static void assertRendersAs(String source, Map<String, ?> context, String expected) {
        if (!expected.startsWith(TemplateTestData.ERROR)) {
            assertThat(Template.compile(source).render(context)).isEqualTo(expected);
            return;
        }
        String error = expected.substring(TemplateTestData.ERROR.length());
        if (error.startsWith("TemplateError: ")) {
            // raise_exception: the template's own message, unchanged
            assertThatThrownBy(() -> Template.compile(source).render(context))
                    .isInstanceOf(TemplateRaisedException.class)
                    .hasMessage(error.substring("TemplateError: ".length()));
        } else {
            assertThatThrownBy(() -> Template.compile(source).render(context))
                    .as("jinja2 fails with %s", error)
                    .isInstanceOf(TemplateException.class)
                    .isNotInstanceOf(TemplateRaisedException.class)
                    .hasMessageStartingWith("line ");
        }
    }
}
