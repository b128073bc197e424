package dev.peregrine.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** {@code peregrine generate --draft-model / --prompt-lookup}: same tokens as plain greedy decoding, plus statistics. */
class SpeculationCliTest {
    private static final Path SHARED = Path.of(System.getProperty("peregrine.shared.dir", "../shared")).resolve("models");
    private static final String MODEL = SHARED.resolve("stories260K.gguf").toString();
    private static final String DRAFT = SHARED.resolve("tinyllamas-stories-260k-q8_0.gguf").toString();

    private static List<?> outputIds(PeregrineCliTest.Result r) {
        assertThat(r.status()).as(r.err()).isZero();
        return (List<?>) ((Map<?, ?>) PeregrineCliTest.MiniJson.parse(r.out().strip())).get("output_ids");
    }

    @Test
    void speculativeGenerateGivesThePlainTokensAndReportsStatistics() {
        String[] greedy = {"generate", "-m", MODEL, "-p", "Once upon a time", "--temp", "0", "-n", "40"};
        List<?> plain = outputIds(PeregrineCliTest.run(append(greedy, "--json")));
        for (String[] how : List.of(new String[] {"--draft-model", DRAFT, "--draft-max", "4"},
                new String[] {"--prompt-lookup", "--lookup-ngram", "2"})) {
            PeregrineCliTest.Result json = PeregrineCliTest.run(append(append(greedy, how), "--json"));
            assertThat(outputIds(json)).isEqualTo(plain);
            @SuppressWarnings("unchecked")
            Map<String, Object> stats = (Map<String, Object>) ((Map<?, ?>) PeregrineCliTest.MiniJson.parse(json.out().strip()))
                    .get("speculation");
            assertThat(stats).containsOnlyKeys("drafted_tokens", "accepted_tokens", "acceptance_rate", "verifications",
                    "mean_accepted_length", "forward_passes_saved", "plain_steps");

            PeregrineCliTest.Result streamed = PeregrineCliTest.run(append(greedy, how));
            assertThat(streamed.status()).as(streamed.err()).isZero();
            assertThat(streamed.errLines()).hasSize(2);
            assertThat(streamed.errLines().get(1)).startsWith("speculation: ").contains("drafted").contains("accepted");
        }
        assertThat((Double) ((Map<?, ?>) ((Map<?, ?>) PeregrineCliTest.MiniJson.parse(PeregrineCliTest.run(
                append(greedy, "--draft-model", DRAFT, "--json")).out().strip())).get("speculation")).get("drafted_tokens"))
                .as("the draft model drafted").isPositive();
    }

    @Test
    void draftModelAndPromptLookupTogetherIsAUsageError() {
        PeregrineCliTest.Result r = PeregrineCliTest.run("generate", "-m", MODEL, "-p", "hi", "--draft-model", DRAFT, "--prompt-lookup");
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.err()).contains("choose one of --draft-model and --prompt-lookup");
    }

    @Test
    void aDraftModelWithAnotherTokenizerIsOneLineAndExit1() {
        String other = SHARED.resolve("TinyLLama-v0-Q4_0.gguf").toString();
        PeregrineCliTest.Result r = PeregrineCliTest.run("generate", "-m", MODEL, "-p", "hi", "--draft-model", other, "-n", "4");
        assertThat(r.status()).isEqualTo(1);
        assertThat(r.errLines()).hasSize(1);
        assertThat(r.err()).contains("must share the target's tokenizer");
    }

    private static String[] append(String[] a, String... more) {
        String[] all = Arrays.copyOf(a, a.length + more.length);
        System.arraycopy(more, 0, all, a.length, more.length);
        return all;
    }
}
