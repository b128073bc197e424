package dev.peregrine.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.synth.ModelShape;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Runs the command line in-process ({@link Peregrine#run}) on the small stories260K model. */
class PeregrineCliTest {
    private static final Path MODEL = sharedDir().resolve("models/stories260K.gguf");

    /** @param err the command's error output and the log's lines ({@code [thread] LEVEL logger - message}) */
    record Result(int status, String out, String err) {
        private static final java.util.regex.Pattern LOG_LINE =
                java.util.regex.Pattern.compile("^\\[[^\\]]+\\] (TRACE|DEBUG|INFO|WARN|ERROR) .*");

        /** The command's own lines of error output, without the log's. */
        List<String> errLines() {
            return err.lines().filter(line -> !LOG_LINE.matcher(line).matches()).toList();
        }
    }

    static Result run(String... args) {
        return runWithInput("", args);
    }

    /** Runs with {@code stdin} as the standard input (UTF-8); the error output includes the log. */
    static Result runWithInput(String stdin, String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status;
        try (PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8);
             PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            // The log (slf4j-simple writes to whatever System.err is at the time) goes with the
            // command's own error output, as in a terminal.
            PrintStream systemErr = System.err;
            System.setErr(e);
            try {
                status = Peregrine.run(args, new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8)), o, e);
            } finally {
                System.setErr(systemErr);
            }
        }
        return new Result(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    /** Maven sets peregrine.shared.dir; an IDE may run from the project root or from this module. */
    static Path sharedDir() {
        String configured = System.getProperty("peregrine.shared.dir");
        if (configured != null) {
            return Path.of(configured);
        }
        Path fromRoot = Path.of("../shared");
        return Files.isDirectory(fromRoot) ? fromRoot : Path.of("../../shared");
    }

    @BeforeAll
    static void modelPresent() {
        assertThat(MODEL).as("the shared test model (../shared beside the checkout)").isRegularFile();
    }

    @Test
    void generateJsonGreedy() {
        Result r = run("generate", "-m", MODEL.toString(), "-p", "Once upon a time", "--temp", "0", "-n", "20", "--json");
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out().lines().toList()).as("exactly one line of JSON").hasSize(1);

        @SuppressWarnings("unchecked")
        Map<String, Object> json = (Map<String, Object>) MiniJson.parse(r.out().strip());
        assertThat(json).containsOnlyKeys("prompt_ids", "output_ids", "text", "finish_reason", "timings");
        assertThat(json.get("finish_reason")).isEqualTo("max_tokens");
        int[] promptIds = ints(json.get("prompt_ids"));
        int[] outputIds = ints(json.get("output_ids"));
        assertThat(promptIds).isNotEmpty();
        assertThat(outputIds).hasSize(20);
        @SuppressWarnings("unchecked")
        Map<String, Object> timings = (Map<String, Object>) json.get("timings");
        assertThat(timings).containsOnlyKeys("load_ms", "prompt_tokens", "prompt_ms", "prompt_tokens_per_second",
                "generated_tokens", "generation_ms", "generation_tokens_per_second");
        assertThat(timings.get("generated_tokens")).isEqualTo(20.0);
        assertThat(timings.get("prompt_tokens")).isEqualTo((double) promptIds.length);

        try (Model model = Model.load(MODEL)) {
            assertThat(promptIds).isEqualTo(model.encode("Once upon a time"));
            assertThat(json.get("text")).isEqualTo(model.decode(outputIds));
        }
    }

    @Test
    void logprobsComeInTheJsonOutput() {
        Result r = run("generate", "-m", MODEL.toString(), "-p", "Once upon a time", "--temp", "0", "-n", "5", "--json",
                "--logprobs", "2");
        assertThat(r.status()).as(r.err()).isZero();
        Map<?, ?> json = (Map<?, ?>) MiniJson.parse(r.out().strip());
        int[] outputIds = ints(json.get("output_ids"));
        List<?> logprobs = (List<?>) json.get("logprobs");
        assertThat(logprobs).hasSize(outputIds.length);
        try (Model model = Model.load(MODEL)) {
            for (int i = 0; i < outputIds.length; i++) {
                @SuppressWarnings("unchecked")
                Map<String, Object> token = (Map<String, Object>) logprobs.get(i);
                assertThat(token).containsOnlyKeys("id", "token", "bytes", "logprob", "top");
                assertThat(token.get("id")).isEqualTo((double) outputIds[i]);
                assertThat(token.get("token")).isEqualTo(new String(model.tokenBytes(outputIds[i]), StandardCharsets.UTF_8));
                assertThat((double) token.get("logprob")).isLessThanOrEqualTo(0);
                List<?> top = (List<?>) token.get("top");
                assertThat(top).hasSize(2);
                // Greedy: the generated token is the most likely one.
                assertThat(((Map<?, ?>) top.getFirst()).get("id")).isEqualTo(token.get("id"));
                assertThat(((Map<?, ?>) top.getFirst()).get("logprob")).isEqualTo(token.get("logprob"));
            }
        }
        Result withoutJson = run("generate", "-m", MODEL.toString(), "-p", "hi", "--logprobs", "2");
        assertThat(withoutJson.status()).isEqualTo(2);
        assertThat(withoutJson.err()).contains("--logprobs and --prompt-logprobs go with --json");
        Result prompt = run("generate", "-m", MODEL.toString(), "-p", "Once upon a time", "-n", "1", "--json",
                "--prompt-logprobs", "0");
        assertThat(prompt.status()).as(prompt.err()).isZero();
        Map<?, ?> scored = (Map<?, ?>) MiniJson.parse(prompt.out().strip());
        assertThat((List<?>) scored.get("prompt_logprobs")).hasSize(ints(scored.get("prompt_ids")).length - 1);
        assertThat((double) scored.get("prompt_perplexity")).isGreaterThan(1);
        // Asked for but none made (nothing generated, a prompt of BOS alone): an empty list, not a missing key.
        Result none = run("generate", "-m", MODEL.toString(), "-p", "", "-n", "0", "--json", "--logprobs", "2",
                "--prompt-logprobs", "0");
        assertThat(none.status()).as(none.err()).isZero();
        Map<?, ?> empty = (Map<?, ?>) MiniJson.parse(none.out().strip());
        assertThat((List<?>) empty.get("logprobs")).isEmpty();
        assertThat((List<?>) empty.get("prompt_logprobs")).isEmpty();
        assertThat(empty.containsKey("prompt_perplexity")).isFalse();
    }

    @Test
    void logitBiasBansATokenAndABadOneIsAUsageError() {
        String[] common = {"generate", "-m", MODEL.toString(), "-p", "Once upon a time", "--temp", "0", "-n", "10", "--json"};
        int first = ints(((Map<?, ?>) MiniJson.parse(run(common).out().strip())).get("output_ids"))[0];
        Result banned = run(append(common, "--logit-bias", first + "=-inf", "--frequency-penalty", "0.5"));
        assertThat(banned.status()).as(banned.err()).isZero();
        assertThat(ints(((Map<?, ?>) MiniJson.parse(banned.out().strip())).get("output_ids"))).doesNotContain(first);
        Result bad = run("generate", "-m", MODEL.toString(), "-p", "hi", "--logit-bias", "12:3");
        assertThat(bad.status()).isEqualTo(2);
        assertThat(bad.err()).contains("--logit-bias takes ID=BIAS or ID+BIAS / ID-BIAS (BIAS a number, or -inf to ban"
                + " the token), got '12:3'");
        // llama.cpp's form bans the same token.
        Result llamaForm = run(append(common, "--logit-bias", first + "-inf"));
        assertThat(ints(((Map<?, ?>) MiniJson.parse(llamaForm.out().strip())).get("output_ids"))).doesNotContain(first);
    }

    /** Values llama.cpp's command line takes, and what they mean there. */
    @Test
    void samplingOptionsTakeLlamaCppsValues() {
        GenerationConfig c = config("--temp", "-0.5", "--repeat-penalty", "1.1", "--repeat-last-n", "-1",
                "--logit-bias", "7+1.5", "--logit-bias", "7=0.25", "--logit-bias", "9-2", "--logit-bias", " 11 = -INF ",
                "--seed", "-1");
        assertThat(c.isGreedy()).as("a negative temperature is greedy").isTrue();
        assertThat(c.repetitionLastN()).as("-1: the whole context").isEqualTo(Integer.MAX_VALUE);
        assertThat(c.logitBias()).as("entries for one token add up")
                .containsExactlyInAnyOrderEntriesOf(Map.of(7, 1.75f, 9, -2f, 11, Float.NEGATIVE_INFINITY));
        assertThat(c.isSeeded()).as("--seed -1: a random seed").isFalse();
        GenerationConfig seeded = config("--seed", "42", "--repeat-last-n", "0");
        assertThat(seeded.isSeeded()).isTrue();
        assertThat(seeded.seed()).isEqualTo(42);
        assertThat(seeded.repetitionLastN()).isZero();
        assertThat(config().repetitionLastN()).isEqualTo(64);
        for (String bad : List.of("7", "7=", "x=1", "7+inf", "7=nan", "7=1=2", "-7=1", "7:1")) {
            assertThatThrownBy(() -> config("--logit-bias", bad)).as(bad).isInstanceOf(UsageException.class)
                    .hasMessageContaining("got '" + bad + "'");
        }
        assertThatThrownBy(() -> config("--repeat-last-n", "-2")).isInstanceOf(UsageException.class)
                .hasMessage("--repeat-last-n takes N >= 0, or -1 for the whole context, got -2");
    }

    /**
     * A model whose file recommends sampling settings (general.sampling.*, as llama.cpp reads them):
     * generate without those options samples exactly as with them given on the original file (same
     * seed), differently from the library's defaults; an option given wins; info shows the settings.
     */
    @Test
    void generateStartsFromTheModelsRecommendedSampling(@TempDir Path dir) throws IOException {
        Path recommending = ChatCommandTest.withMetadata(MODEL, dir.resolve("recommending.gguf"),
                w -> w.putFloat32("general.sampling.temp", 1.5f).putInt32("general.sampling.top_k", 0)
                        .putFloat32("general.sampling.top_p", 1f));
        try (Model model = Model.load(recommending)) {
            assertThat(model.generationDefaults().temperature()).isEqualTo(1.5f);
            assertThat(model.generationDefaults().topK()).isZero();
        }
        String[] common = {"-p", "Once upon a time", "-n", "32", "--json", "--seed", "3"};
        int[] recommended = outputIds(run(append(new String[] {"generate", "-m", recommending.toString()}, common)));
        int[] given = outputIds(run(append(append(new String[] {"generate", "-m", MODEL.toString()}, common),
                "--temp", "1.5", "--top-k", "0", "--top-p", "1")));
        int[] defaults = outputIds(run(append(new String[] {"generate", "-m", MODEL.toString()}, common)));
        assertThat(recommended).containsExactly(given);
        assertThat(recommended).as("the settings matter for this seed").isNotEqualTo(defaults);

        GenerationConfig overridden = GenerateCommand.generationConfig(
                Args.parse(new String[] {"--temp", "0.2"}, 0, GenerateCommand.GENERATION_OPTIONS),
                GenerationConfig.defaults().temperature(1.5f).topK(0));
        assertThat(overridden.temperature()).isEqualTo(0.2f);
        assertThat(overridden.topK()).isZero();
        Result info = run("info", "-m", recommending.toString());
        assertThat(info.out()).contains("recommended sampling (generate and chat start from it): temp 1.5, top-k 0, top-p 1.0");
    }

    private static int[] outputIds(Result r) {
        assertThat(r.status()).as(r.err()).isZero();
        return ints(((Map<?, ?>) MiniJson.parse(r.out().strip())).get("output_ids"));
    }

    private static GenerationConfig config(String... options) {
        return GenerateCommand.generationConfig(Args.parse(options, 0, GenerateCommand.GENERATION_OPTIONS),
                GenerationConfig.defaults());
    }

    @Test
    void perplexityScoresTheSecondHalfOfEachChunkAsLlamaCpp(@TempDir Path dir) throws Exception {
        Path text = dir.resolve("story.txt");
        String story = "Once upon a time, there was a little girl named Lily. She loved to play in the park with"
                + " her friends. One day she saw a big red ball under a tree. ";
        Files.writeString(text, story.repeat(8));
        Result r = run("perplexity", "-m", MODEL.toString(), "-f", text.toString(), "-c", "64", "--chunks", "3");
        assertThat(r.status()).as(r.err()).isZero();
        List<String> lines = r.out().lines().toList();
        assertThat(lines.getFirst()).matches("\\[1\\][0-9.]+,\\[2\\][0-9.]+,\\[3\\][0-9.]+,");
        // llama-perplexity's final line, with its standard error; 3 chunks of 64: tokens 33..63 of each, 31 a chunk.
        assertThat(lines.get(1)).matches("Final estimate: PPL = [0-9]+\\.[0-9]{4} \\+/- [0-9]+\\.[0-9]{5}");
        assertThat(r.err()).contains("93 tokens scored in 3 chunks of 64");
        double ppl = Double.parseDouble(lines.get(1).split(" ")[4]);
        assertThat(ppl).isGreaterThan(1).isLessThan(20);
        Result tooShort = run("perplexity", "-m", MODEL.toString(), "-f", text.toString(), "-c", "1000");
        assertThat(tooShort.status()).isEqualTo(1);
        assertThat(tooShort.err()).contains("you need at least 2000 tokens to evaluate perplexity with a context of 1000")
                .containsPattern("tokenizes to only [0-9]+ tokens");
        Result zero = run("perplexity", "-m", MODEL.toString(), "-f", text.toString(), "-c", "64", "--chunks", "0");
        assertThat(zero.status()).isEqualTo(2);
        assertThat(zero.err()).startsWith("peregrine: --chunks must be at least 1 (or negative for every chunk, the default), got 0");
        Result all = run("perplexity", "-m", MODEL.toString(), "-f", text.toString(), "-c", "64", "--chunks", "-1");
        assertThat(all.err()).containsPattern("tokens scored in ([4-9]|[1-9][0-9]+) chunks of 64");
        // As llama-perplexity: one trailing newline is dropped, and special-token text is text: "</s>"
        // scores as the three tokens of its characters, not as EOS (which would make it cheaper here).
        Files.writeString(text, story.repeat(4) + "</s>" + story.repeat(4) + "\n");
        Result special = run("perplexity", "-m", MODEL.toString(), "-f", text.toString(), "-c", "64", "--chunks", "-1");
        Files.writeString(text, story.repeat(4) + "</s>" + story.repeat(4));
        assertThat(special.out()).isEqualTo(run("perplexity", "-m", MODEL.toString(), "-f", text.toString(), "-c", "64",
                "--chunks", "-1").out());
        try (Model model = Model.load(MODEL)) {
            assertThat(model.encode("a</s>b", true, false)).as("plain text").doesNotContain(2).hasSizeGreaterThan(3);
            assertThat(model.encode("a</s>b", true, true)).as("special-token text recognised").contains(2);
        }
        // A chunk as long as the trained context (stories260K: 2,048) fits it: no beyond-context warning.
        Files.writeString(text, story.repeat(140));
        Result trained = run("perplexity", "-m", MODEL.toString(), "-f", text.toString(), "-c", "2048", "--chunks", "1");
        assertThat(trained.status()).as(trained.err()).isZero();
        assertThat(trained.err()).doesNotContain("beyond").contains("in 1 chunks of 2048");
        // Text that is not UTF-8 is named as such, with the offset of the first invalid byte.
        Files.write(text, new byte[] {'O', 'n', 'c', 'e', ' ', (byte) 0xFF, (byte) 0xFE, ' ', 'u', 'p'});
        Result binary = run("perplexity", "-m", MODEL.toString(), "-f", text.toString(), "-c", "64");
        assertThat(binary.status()).isEqualTo(1);
        assertThat(binary.err()).contains("is not UTF-8 text: invalid byte sequence at byte offset 5");
        // An empty file has BOS alone.
        Files.writeString(text, "");
        assertThat(run("perplexity", "-m", MODEL.toString(), "-f", text.toString(), "-c", "64").err())
                .contains("tokenizes to only 1 tokens");
        assertThat(run("perplexity", "-m", MODEL.toString(), "-f", dir.resolve("missing.txt").toString()).err())
                .contains("no such file: " + dir.resolve("missing.txt"));
    }

    /** Output that goes away (a closed pipe: `| head`) stops the generation, quietly, with status 0. */
    @Test
    void aClosedOutputStopsTheGeneration() {
        int[] writes = {0};
        OutputStream closesAfterOneWrite = new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                if (writes[0]++ > 0) {
                    throw new IOException("Broken pipe");
                }
            }
        };
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = Peregrine.run(new String[] {"generate", "-m", MODEL.toString(), "-p", "Once upon a time", "--temp", "0",
                        "-n", "200"}, new PrintStream(closesAfterOneWrite, false, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        assertThat(status).isZero();
        assertThat(err.toString(StandardCharsets.UTF_8)).isEmpty();
        assertThat(writes[0]).as("writes tried: the generation stopped at the first failed one").isEqualTo(2);
    }

    @Test
    void generateStreamsTheSameTextAsJson() {
        String[] common = {"generate", "-m", MODEL.toString(), "-p", "Once upon a time", "--temp", "0", "-n", "20"};
        Result streamed = run(common);
        Result json = run(append(common, "--json"));
        assertThat(streamed.status()).as(streamed.err()).isZero();
        String text = (String) ((Map<?, ?>) MiniJson.parse(json.out().strip())).get("text");
        assertThat(streamed.out()).isEqualTo(text + System.lineSeparator());
        assertThat(streamed.errLines()).hasSize(1);
        assertThat(streamed.err()).contains("tok/s").contains("finish: max_tokens");
    }

    /** {@code --temp-last} samples as {@code GenerationConfig.temperatureLast(true)} does, seed for seed. */
    @Test
    void tempLastSamplesAsTheConfigOption() {
        Result r = run("generate", "-m", MODEL.toString(), "-p", "Once upon a time", "--temp", "0.5", "--top-p", "0.9",
                "--temp-last", "--seed", "11", "-n", "30", "--json");
        assertThat(r.status()).as(r.err()).isZero();
        int[] outputIds = ints(((Map<?, ?>) MiniJson.parse(r.out().strip())).get("output_ids"));
        try (Model model = Model.load(MODEL)) {
            GenerationConfig c = GenerationConfig.defaults().maxTokens(30).temperature(0.5f).topP(0.9f).seed(11);
            assertThat(outputIds).containsExactly(model.generator().generate("Once upon a time", c.temperatureLast(true))
                    .outputTokens());
        }
    }

    @Test
    void kvCacheTypeF16GeneratesAndOtherTypesAreAUsageError() {
        // Keys and values rounded to halves: the same greedy tokens here, log-probabilities a little apart.
        Map<?, ?> full = kvCacheRun("f32");
        Map<?, ?> half = kvCacheRun("f16");
        assertThat(ints(half.get("output_ids"))).hasSize(20).containsExactly(ints(full.get("output_ids")));
        double largest = 0;
        for (int i = 0; i < 20; i++) {
            double a = (double) ((Map<?, ?>) ((List<?>) full.get("logprobs")).get(i)).get("logprob");
            double b = (double) ((Map<?, ?>) ((List<?>) half.get("logprobs")).get(i)).get("logprob");
            largest = Math.max(largest, Math.abs(a - b));
        }
        assertThat(largest).as("the option takes effect, and halves are close to floats").isGreaterThan(0).isLessThan(0.01);
        Result bad = run("generate", "-m", MODEL.toString(), "-p", "hi", "--kv-cache-type", "q8_0");
        assertThat(bad.status()).isEqualTo(2);
        assertThat(bad.err()).contains("--kv-cache-type must be f32 or f16, got 'q8_0'");
    }

    private static Map<?, ?> kvCacheRun(String type) {
        Result r = run("generate", "-m", MODEL.toString(), "-p", "Once upon a time", "--temp", "0", "-n", "20",
                "--kv-cache-type", type, "--json", "--logprobs", "0");
        assertThat(r.status()).as(r.err()).isZero();
        return (Map<?, ?>) MiniJson.parse(r.out().strip());
    }

    @Test
    void stopStringEndsGeneration() {
        Result r = run("generate", "-m", MODEL.toString(), "-p", "Once upon a time", "--temp", "0", "-n", "50",
                "--stop", "Lily", "--stop", "never-generated", "--json");
        assertThat(r.status()).as(r.err()).isZero();
        Map<?, ?> json = (Map<?, ?>) MiniJson.parse(r.out().strip());
        // Greedy stories260K names Lily within its first sentence.
        assertThat(json.get("finish_reason")).isEqualTo("stop_string");
        assertThat((String) json.get("text")).doesNotContain("Lily");
    }

    @Test
    void missingFileIsOneLineAndExit1() {
        Result r = run("generate", "-m", "no/such/model.gguf", "-p", "hi");
        assertThat(r.status()).isEqualTo(1);
        assertThat(r.errLines()).hasSize(1);
        assertThat(r.err()).startsWith("peregrine: ").contains("model.gguf");
        assertThat(r.out()).isEmpty();
    }

    @Test
    void garbageFilesAreOneLineAndExit1(@TempDir Path dir) throws IOException {
        Random random = new Random(42);
        byte[] noise = new byte[4096];
        random.nextBytes(noise);
        Path garbage = Files.write(dir.resolve("garbage.gguf"), noise);
        // The same noise behind a valid magic and version, so the parser gets further in.
        byte[] withMagic = noise.clone();
        System.arraycopy(new byte[] {'G', 'G', 'U', 'F', 3, 0, 0, 0}, 0, withMagic, 0, 8);
        Path pseudo = Files.write(dir.resolve("pseudo.gguf"), withMagic);
        Path empty = Files.write(dir.resolve("empty.gguf"), new byte[0]);

        for (Path p : List.of(garbage, pseudo, empty)) {
            for (String command : List.of("generate", "info")) {
                Result r = command.equals("generate")
                        ? run(command, "-m", p.toString(), "-p", "hi")
                        : run(command, "-m", p.toString());
                assertThat(r.status()).as(command + " " + p.getFileName() + ": " + r.err()).isEqualTo(1);
                assertThat(r.errLines()).as(r.err()).hasSize(1);
                assertThat(r.err()).startsWith("peregrine: ");
            }
        }
    }

    @Test
    void usageErrorsExit2() {
        Result unknownOption = run("generate", "-m", MODEL.toString(), "-p", "hi", "--bogus");
        assertThat(unknownOption.status()).isEqualTo(2);
        assertThat(unknownOption.err()).startsWith("peregrine: unknown option --bogus")
                .contains("usage: peregrine generate -m FILE -p PROMPT").contains("--max-tokens")
                .as("only generate's part of the help").doesNotContain("peregrine embed");
        assertThat(run("frobnicate").err()).contains("commands:"); // an unknown command: the whole help

        assertThat(run("frobnicate").status()).isEqualTo(2);
        assertThat(run().status()).isEqualTo(2);
        assertThat(run("generate", "-p", "hi").err()).startsWith("peregrine: missing -m FILE");
        assertThat(run("generate", "-m", MODEL.toString(), "-p").status()).isEqualTo(2);
    }

    @Test
    void badOptionValuesExit1() {
        for (String[] bad : List.of(new String[] {"-n", "many"}, new String[] {"--temp", "NaN"}, new String[] {"--top-k", "-3"},
                new String[] {"--top-p", "0"})) {
            Result r = run(append(new String[] {"generate", "-m", MODEL.toString(), "-p", "hi"}, bad));
            assertThat(r.status()).as(r.err()).isEqualTo(1);
            assertThat(r.errLines()).hasSize(1);
            assertThat(r.err()).startsWith("peregrine: ");
        }
    }

    @Test
    void helpGoesToStdout() {
        Result r = run("help");
        assertThat(r.status()).isZero();
        assertThat(r.out()).contains("peregrine generate").contains("peregrine info");
        assertThat(run("generate", "--help").status()).isZero();
    }

    @Test
    void synthHelpListsEveryNamedShape() {
        String help = run("help").out();
        for (String shape : ModelShape.namedShapes().keySet()) {
            assertThat(help).as("synth --shape's list").containsPattern("[ ,]" + Pattern.quote(shape) + "[,;\\s]");
        }
    }

    @Test
    void infoShowsMetadataTensorsAndModel() {
        Result r = run("info", "-m", MODEL.toString());
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out())
                .contains("GGUF version ")
                .contains("general.architecture = llama")
                .contains("token_embd.weight")
                .contains("tokenizer.ggml.tokens = [STRING x ")
                .contains("model: stories260K.gguf: llama");
    }

    @Test
    void jsonEscaping() {
        assertThat(Json.quote("a\"b\\c\nd\te\u0001\u007f é 日本"))
                .isEqualTo("\"a\\\"b\\\\c\\nd\\te\\u0001\\u007f é 日本\"");
        assertThat(Json.quote("lone \ud800 surrogate")).isEqualTo("\"lone \\ud800 surrogate\"");
        assertThat(MiniJson.parse(new Json().field("s", "x\u0002\"\\").field("n", 1.5).field("ids", new int[] {1, 2}).toString()))
                .isEqualTo(Map.of("s", "x\u0002\"\\", "n", 1.5, "ids", List.of(1.0, 2.0)));
    }

    private static String[] append(String[] a, String... more) {
        String[] r = new String[a.length + more.length];
        System.arraycopy(a, 0, r, 0, a.length);
        System.arraycopy(more, 0, r, a.length, more.length);
        return r;
    }

    private static int[] ints(Object jsonArray) {
        return ((List<?>) jsonArray).stream().mapToInt(v -> {
            double d = (Double) v;
            assertThat(d).isEqualTo(Math.rint(d));
            return (int) d;
        }).toArray();
    }

    /** A strict little JSON reader (objects, arrays, strings, numbers, literals) for checking the CLI's output. */
    static final class MiniJson {
        private final String s;
        private int i;

        private MiniJson(String s) {
            this.s = s;
        }

        static Object parse(String text) {
            MiniJson p = new MiniJson(text);
            Object v = p.value();
            p.skipSpace();
            if (p.i != text.length()) {
                throw p.error("trailing text");
            }
            return v;
        }

        private Object value() {
            skipSpace();
            if (i >= s.length()) {
                throw error("unexpected end");
            }
            char c = s.charAt(i);
            return switch (c) {
                case '{' -> object();
                case '[' -> array();
                case '"' -> string();
                case 't' -> literal("true", Boolean.TRUE);
                case 'f' -> literal("false", Boolean.FALSE);
                case 'n' -> literal("null", null);
                default -> number();
            };
        }

        private Map<String, Object> object() {
            Map<String, Object> m = new LinkedHashMap<>();
            i++;
            skipSpace();
            if (peek('}')) {
                return m;
            }
            do {
                skipSpace();
                String key = string();
                skipSpace();
                expect(':');
                if (m.put(key, value()) != null) {
                    throw error("duplicate key " + key);
                }
                skipSpace();
            } while (peek(','));
            expect('}');
            return m;
        }

        private List<Object> array() {
            List<Object> l = new ArrayList<>();
            i++;
            skipSpace();
            if (peek(']')) {
                return l;
            }
            do {
                l.add(value());
                skipSpace();
            } while (peek(','));
            expect(']');
            return l;
        }

        private String string() {
            expect('"');
            StringBuilder sb = new StringBuilder();
            while (true) {
                char c = s.charAt(i++);
                if (c == '"') {
                    return sb.toString();
                } else if (c < 0x20) {
                    throw error("raw control character in string");
                } else if (c != '\\') {
                    sb.append(c);
                    continue;
                }
                char e = s.charAt(i++);
                switch (e) {
                    case '"', '\\', '/' -> sb.append(e);
                    case 'n' -> sb.append('\n');
                    case 'r' -> sb.append('\r');
                    case 't' -> sb.append('\t');
                    case 'b' -> sb.append('\b');
                    case 'f' -> sb.append('\f');
                    case 'u' -> {
                        sb.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                        i += 4;
                    }
                    default -> throw error("bad escape \\" + e);
                }
            }
        }

        private Double number() {
            int start = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) {
                i++;
            }
            if (start == i || !s.substring(start, i).matches("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?")) {
                throw error("bad number");
            }
            return Double.parseDouble(s.substring(start, i));
        }

        private Object literal(String word, Object value) {
            if (!s.startsWith(word, i)) {
                throw error("bad literal");
            }
            i += word.length();
            return value;
        }

        private boolean peek(char c) {
            if (i < s.length() && s.charAt(i) == c) {
                i++;
                return true;
            }
            return false;
        }

        private void expect(char c) {
            if (!peek(c)) {
                throw error("expected '" + c + "'");
            }
        }

        private void skipSpace() {
            while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
                i++;
            }
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException(what + " at " + i + " in " + s);
        }
    }
}
