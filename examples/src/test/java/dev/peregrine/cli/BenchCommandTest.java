package dev.peregrine.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@code peregrine bench} on stories260K: what it reports, not how fast (timed expectations belong
 * in the benchmarks themselves, recorded in docs/PERFORMANCE.md).
 */
class BenchCommandTest {
    private static final Path MODEL = PeregrineCliTest.sharedDir().resolve("models/stories260K.gguf");

    @BeforeAll
    static void modelPresent() {
        PeregrineCliTest.modelPresent();
    }

    @Test
    @SuppressWarnings("unchecked")
    void jsonReportsColdStartWarmSpeedsAndTheBandwidthLimit() {
        PeregrineCliTest.Result r = PeregrineCliTest.run("bench", "-m", MODEL.toString(), "-p", "16", "-n", "8", "-r", "1",
                "-t", "2", "--json");
        assertThat(r.status()).as(r.err()).isZero();
        Map<String, Object> json = (Map<String, Object>) PeregrineCliTest.MiniJson.parse(r.out().strip());
        assertThat(json).containsKeys("load_s", "cold_prefill_s", "prefill_tok_s", "decode_tok_s", "read_bandwidth_gb_s",
                "bandwidth_limit_tok_s", "decode_fraction_of_bandwidth_limit", "allocated_bytes_per_decode_token");
        assertThat(json.get("prefill_tokens")).isEqualTo(16.0);
        assertThat(json.get("decode_tokens")).isEqualTo(8.0);
        assertThat(json.get("threads")).isEqualTo(2.0);
        for (String positive : new String[] {"load_s", "cold_prefill_s", "prefill_tok_s", "decode_tok_s",
                "read_bandwidth_gb_s", "bandwidth_limit_tok_s"}) {
            assertThat(((Number) json.get(positive)).doubleValue()).as(positive).isPositive();
        }
        // The limit is the bandwidth over the weights read per token (as printed: rounded).
        double limit = ((Number) json.get("read_bandwidth_gb_s")).doubleValue() * 1e9
                / ((Number) json.get("weight_bytes_per_token")).doubleValue();
        assertThat(((Number) json.get("bandwidth_limit_tok_s")).doubleValue()).isCloseTo(limit, within(1e-3 * limit));
        // Decode is compared with the higher of the bandwidth measured before and after it.
        double after = ((Number) json.get("read_bandwidth_after_decode_gb_s")).doubleValue();
        assertThat(after).isPositive();
        double decodeLimit = Math.max(((Number) json.get("read_bandwidth_gb_s")).doubleValue(), after) * 1e9
                / ((Number) json.get("weight_bytes_per_token")).doubleValue();
        assertThat(((Number) json.get("decode_bandwidth_limit_tok_s")).doubleValue()).isCloseTo(decodeLimit,
                within(1e-3 * decodeLimit));
        // The fraction is written with 3 decimals (Json.field), as every figure is: half a unit of
        // the last one, besides the relative error of its rounded inputs.
        double fraction = ((Number) json.get("decode_tok_s")).doubleValue() / decodeLimit;
        assertThat(((Number) json.get("decode_fraction_of_bandwidth_limit")).doubleValue()).isCloseTo(fraction,
                within(5e-4 + 1e-3 * fraction));
        assertThat(((Number) json.get("allocated_bytes_per_decode_token")).longValue()).isNotNegative();
    }

    @Test
    void textReportsTheColdStartLine() {
        PeregrineCliTest.Result r = PeregrineCliTest.run("bench", "-m", MODEL.toString(), "-p", "8", "-n", "4", "-r", "1",
                "-t", "1");
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).containsPattern("load \\d+\\.\\d\\d s; first prompt of 8 tokens \\d+\\.\\d\\d s")
                .contains("prefill pp8:").contains("decode  tg4:");
    }

    /**
     * The bench sizes its model's context from what it measures: no more than the 2,048 positions
     * stories260K was trained for, so the beyond-trained-context warning never shows.
     */
    @Test
    void theBenchsContextStaysWithinTheTrainedOne() {
        PeregrineCliTest.Result r = PeregrineCliTest.run("bench", "-m", MODEL.toString(), "-p", "8", "-n", "4", "-r", "1",
                "-t", "1", "--ttft");
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).contains("context 2048;");
        assertThat(r.err()).doesNotContain("beyond");
    }

    /**
     * Two requests decode through a long prompt's prefill. stories260K decodes a 2,048-position
     * context in about a second, so its decoders fill it and start again rather than stop (which
     * left nothing decoding while the prompt was prefilled).
     */
    @Test
    @SuppressWarnings("unchecked")
    void decodingDuringAPrefillReportsBothRates() {
        PeregrineCliTest.Result r = PeregrineCliTest.run("bench", "-m", MODEL.toString(), "-p", "8", "-n", "4", "-r", "1",
                "-t", "1", "--decode-during-prefill", "1500", "--json");
        assertThat(r.status()).as(r.err()).isZero();
        Map<String, Object> json = (Map<String, Object>) PeregrineCliTest.MiniJson.parse(r.out().strip());
        assertThat(json.get("prefill_while_decoding_tokens")).isEqualTo(1500.0);
        for (String positive : new String[] {"decoding_2_requests_idle_tok_s", "decoding_2_requests_during_prefill_tok_s",
                "prefill_while_decoding_tok_s"}) {
            assertThat(((Number) json.get(positive)).doubleValue()).as(positive).isPositive();
        }
        assertThat(r.err()).doesNotContain("beyond");
    }
}
