package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.Completion;
import dev.peregrine.FinishReason;
import dev.peregrine.GenerationConfig;
import dev.peregrine.Speculation;
import dev.peregrine.format.json.Json;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Output constrained to a JSON object on the real stories260K (which never saw JSON): whatever it
 * generates, greedy or sampled, the text is an object that the project's JSON parser reads once the
 * generation ends on its own, and a prefix of one when max tokens cut it short; speculation does not
 * change the output.
 */
class JsonOutputTest extends Stories260KTest {

    @Test
    void everyOutputIsAJsonObjectOrAPrefixOfOne() {
        int closed = 0;
        for (int seed = 0; seed < 12; seed++) {
            // A bias towards the closing brace and quote lets the tiny story model finish objects.
            GenerationConfig config = GenerationConfig.defaults().seed(seed).maxTokens(80).jsonOutput(true)
                    .logitBias(Map.of(tokenOf("}"), 12f, tokenOf("\""), 3f));
            Completion c = model.generator().generate("Once upon a time", config);
            if (c.finishReason() == FinishReason.END_OF_SEQUENCE) {
                closed++;
                assertThat(Json.parse(c.text(), null)).as(c.text()).isInstanceOf(Map.class);
            } else {
                assertThat(c.finishReason()).isEqualTo(FinishReason.MAX_TOKENS);
                assertThat(c.text()).startsWith("{").doesNotContain("\\u0000");
            }
        }
        assertThat(closed).as("generations that closed their object").isPositive();
    }

    /** The token that is exactly {@code text}. */
    private static int tokenOf(String text) {
        for (int id = 0; id < model.vocabularySize(); id++) {
            if (new String(model.tokenBytes(id), StandardCharsets.UTF_8).equals(text)) {
                return id;
            }
        }
        throw new AssertionError("no token " + text);
    }

    @Test
    void greedyJsonIsTheSameWithSpeculation() {
        GenerationConfig config = GenerationConfig.greedy().maxTokens(60).jsonOutput(true);
        Completion plain = model.generator().generate("Lily said", config);
        assertThat(plain.text()).startsWith("{");
        Completion speculative = model.generator().generate("Lily said",
                config.withSpeculation(Speculation.promptLookup(1, 3, 4).withFallbackWhenSlower(false)));
        assertThat(speculative.outputTokens()).containsExactly(plain.outputTokens());
        // Without the constraint the story model does not write JSON at all.
        assertThat(model.generator().generate("Lily said", config.jsonOutput(false)).text()).doesNotStartWith("{");
    }
}
