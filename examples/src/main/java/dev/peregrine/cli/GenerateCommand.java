package dev.peregrine.cli;

import dev.peregrine.Completion;
import dev.peregrine.FinishReason;
import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.Speculation;
import dev.peregrine.SpeculationStats;
import dev.peregrine.Timings;
import dev.peregrine.TokenLogprob;
import dev.peregrine.cli.Args.Option;
import dev.peregrine.tensor.DType;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** {@code peregrine generate}: one completion of a prompt, streamed to stdout or printed as JSON. */
final class GenerateCommand {
    /** The sampling, stop and model options that {@code generate} and {@code chat} share. */
    static final List<Option> GENERATION_OPTIONS = List.of(
            new Option("max-tokens", true, "-n", "--max-tokens"),
            new Option("temp", true, "--temp", "--temperature"),
            new Option("top-k", true, "--top-k"),
            new Option("top-p", true, "--top-p"),
            new Option("min-p", true, "--min-p"),
            new Option("temp-last", false, "--temp-last"),
            new Option("repeat-penalty", true, "--repeat-penalty"),
            new Option("repeat-last-n", true, "--repeat-last-n"),
            new Option("frequency-penalty", true, "--frequency-penalty"),
            new Option("presence-penalty", true, "--presence-penalty"),
            new Option("logit-bias", true, "--logit-bias"),
            new Option("json-output", false, "--json-output"),
            new Option("seed", true, "--seed"),
            new Option("stop", true, "--stop"),
            new Option("threads", true, "-t", "--threads"),
            new Option("context", true, "-c", "--context"),
            new Option("kv-cache-type", true, "--kv-cache-type"));
    private static final List<Option> OPTIONS = Args.options(GENERATION_OPTIONS,
            Args.HELP,
            new Option("model", true, "-m", "--model"),
            new Option("prompt", true, "-p", "--prompt"),
            new Option("draft-model", true, "--draft-model"),
            new Option("draft-max", true, "--draft-max"),
            new Option("prompt-lookup", false, "--prompt-lookup"),
            new Option("speculate-always", false, "--speculate-always"),
            new Option("lookup-ngram", true, "--lookup-ngram"),
            new Option("logprobs", true, "--logprobs"),
            new Option("prompt-logprobs", true, "--prompt-logprobs"),
            new Option("json", false, "--json"));
    /** Default --draft-max. */
    static final int DEFAULT_DRAFT_MAX = 6;
    /** Default --lookup-ngram: the longest n-gram prompt lookup matches (it tries down to 1). */
    static final int DEFAULT_LOOKUP_NGRAM = 3;

    private GenerateCommand() {
    }

    static int run(String[] argv, PrintStream out, PrintStream err) {
        Args args = Args.parse(argv, 0, OPTIONS);
        if (args.has("help")) {
            out.print(Peregrine.USAGE_TEXT);
            return Peregrine.OK;
        }
        Path modelPath = Path.of(args.required("model", "-m FILE"));
        String prompt = args.required("prompt", "-p PROMPT");
        // Both configs are built (and so checked) before the model loads: a bad option fails fast.
        requestConfig(args, GenerationConfig.defaults());
        ModelOptions options = modelOptions(args);
        boolean json = args.has("json");
        Path draftPath = args.value("draft-model").map(Path::of).orElse(null);
        int draftMax = args.intValue("draft-max", DEFAULT_DRAFT_MAX);
        if (draftPath != null && args.has("prompt-lookup")) {
            throw new UsageException("choose one of --draft-model and --prompt-lookup");
        }
        boolean always = args.has("speculate-always");

        try (Model model = Model.load(modelPath, options);
             Model draft = draftPath == null ? null : Model.load(draftPath, options)) {
            // The options not given take the model's recommended sampling, as in llama.cpp.
            GenerationConfig config = requestConfig(args, model.generationDefaults());
            if (draft != null) {
                config = config.withSpeculation(Speculation.draftModel(draft, draftMax).withFallbackWhenSlower(!always));
            }
            Completion c;
            if (json) {
                c = model.generator().generate(prompt, config);
                out.println(toJson(c, config, model));
            } else {
                c = model.generator().generate(prompt, config, new TokenPrinter(out));
                out.println();
                out.flush();
                err.println(summary(c.timings(), c.finishReason()));
                if (config.speculation().isPresent()) {
                    err.println(speculationSummary(c.speculation()));
                }
            }
        }
        return Peregrine.OK;
    }

    /**
     * The sampling options over {@code base}, then --logprobs, --prompt-logprobs and --prompt-lookup.
     *
     * @throws UsageException if --logprobs or --prompt-logprobs comes without --json
     */
    private static GenerationConfig requestConfig(Args args, GenerationConfig base) {
        GenerationConfig config = generationConfig(args, base);
        if (args.has("logprobs") || args.has("prompt-logprobs")) {
            if (!args.has("json")) {
                throw new UsageException("--logprobs and --prompt-logprobs go with --json (the log-probabilities are written in"
                        + " its output)");
            }
            if (args.has("logprobs")) {
                config = config.logprobs(args.intValue("logprobs", 0));
            }
            if (args.has("prompt-logprobs")) {
                config = config.promptLogprobs(args.intValue("prompt-logprobs", 0));
            }
        }
        if (args.has("prompt-lookup")) {
            int draftMax = args.intValue("draft-max", DEFAULT_DRAFT_MAX);
            int lookupNgram = args.intValue("lookup-ngram", DEFAULT_LOOKUP_NGRAM);
            config = config.withSpeculation(Speculation.promptLookup(1, lookupNgram, draftMax)
                    .withFallbackWhenSlower(!args.has("speculate-always")));
        }
        return config;
    }

    /** -t, -c and --kv-cache-type. */
    static ModelOptions modelOptions(Args args) {
        return ModelOptions.defaults()
                .withThreads(args.intValue("threads", 0))
                .withContextLength(args.intValue("context", 0))
                .withKvCacheType(kvCacheType(args));
    }

    /** --kv-cache-type f32 or f16 (default f32). */
    static DType kvCacheType(Args args) {
        String name = args.value("kv-cache-type").orElse("f32");
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "f32" -> DType.F32;
            case "f16" -> DType.F16;
            default -> throw new UsageException("--kv-cache-type must be f32 or f16, got '" + name + "'");
        };
    }

    /**
     * The config that {@link #GENERATION_OPTIONS} describe, each option not given taking its value
     * from {@code defaults} (the model's {@link Model#generationDefaults()}, or the library's
     * defaults before the model is loaded). Values llama.cpp's command line accepts
     * mean what they mean there: a negative --temp is greedy, --repeat-last-n -1 looks back over the
     * whole context, --seed -1 draws a random seed, and --logit-bias takes llama.cpp's ID+BIAS /
     * ID-BIAS form as well as ID=BIAS, adding up repeated entries for one token.
     */
    static GenerationConfig generationConfig(Args args, GenerationConfig defaults) {
        int lastN = args.intValue("repeat-last-n", defaults.repetitionLastN() == Integer.MAX_VALUE ? -1
                : defaults.repetitionLastN());
        if (lastN < -1) {
            throw new UsageException("--repeat-last-n takes N >= 0, or -1 for the whole context, got " + lastN);
        }
        GenerationConfig c = defaults
                .maxTokens(args.intValue("max-tokens", 256))
                .temperature(Math.max(0f, args.floatValue("temp", defaults.temperature())))
                .topK(args.intValue("top-k", defaults.topK()))
                .topP(args.floatValue("top-p", defaults.topP()))
                .minP(args.floatValue("min-p", defaults.minP()))
                .repetitionPenalty(args.floatValue("repeat-penalty", defaults.repetitionPenalty()),
                        lastN == -1 ? Integer.MAX_VALUE : lastN);
        if (args.has("frequency-penalty") || args.has("presence-penalty")) {
            c = c.frequencyAndPresencePenalty(args.floatValue("frequency-penalty", 0), args.floatValue("presence-penalty", 0));
        }
        List<String> biases = args.all("logit-bias");
        if (!biases.isEmpty()) {
            java.util.Map<Integer, Float> bias = new java.util.TreeMap<>();
            for (String b : biases) {
                LogitBias parsed = LogitBias.parse(b);
                bias.merge(parsed.token(), parsed.bias(), Float::sum);
            }
            c = c.logitBias(bias);
        }
        if (args.has("temp-last")) {
            c = c.temperatureLast(true);
        }
        if (args.has("json-output")) {
            c = c.jsonOutput(true);
        }
        long seed = args.longValue("seed", -1);
        if (seed != -1) {
            c = c.seed(seed);
        }
        List<String> stops = args.all("stop");
        if (!stops.isEmpty()) {
            c = c.stopStrings(stops.toArray(String[]::new));
        }
        return c;
    }

    /** One --logit-bias entry: ID=BIAS, or llama.cpp's ID+BIAS / ID-BIAS; BIAS a number or (-)inf. */
    record LogitBias(int token, float bias) {
        private static final java.util.regex.Pattern FORM =
                java.util.regex.Pattern.compile("\\s*(\\d+)\\s*(?:=\\s*([+-]?[^\\s=]+)|([+-][^\\s=]+))\\s*");

        static LogitBias parse(String entry) {
            java.util.regex.Matcher m = FORM.matcher(entry);
            try {
                if (m.matches()) {
                    String value = m.group(2) != null ? m.group(2) : m.group(3);
                    String magnitude = value.replaceFirst("^[+-]", "");
                    float bias = magnitude.equalsIgnoreCase("inf") || magnitude.equalsIgnoreCase("infinity")
                            ? (value.startsWith("-") ? Float.NEGATIVE_INFINITY : Float.POSITIVE_INFINITY)
                            : Float.parseFloat(value);
                    if (bias != Float.POSITIVE_INFINITY && !Float.isNaN(bias)) {
                        return new LogitBias(Integer.parseInt(m.group(1)), bias);
                    }
                }
            } catch (NumberFormatException e) {
                // reported below
            }
            throw new UsageException("--logit-bias takes ID=BIAS or ID+BIAS / ID-BIAS (BIAS a number, or -inf to ban"
                    + " the token), got '" + entry + "'");
        }
    }

    static String finishReason(FinishReason reason) {
        return reason.name().toLowerCase(Locale.ROOT);
    }

    /**
     * The completion as one JSON object; with speculation in {@code config}, the speculation
     * statistics too; with log-probabilities asked for, each output token's (an empty list when
     * none was generated), with its text as {@code model} decodes it alone.
     */
    static String toJson(Completion c, GenerationConfig config, Model model) {
        boolean speculative = config.speculation().isPresent();
        Timings t = c.timings();
        Json timings = new Json()
                .field("load_ms", t.loadMillis())
                .field("prompt_tokens", t.promptTokens())
                .field("prompt_ms", t.promptMillis())
                .field("prompt_tokens_per_second", t.promptTokensPerSecond())
                .field("generated_tokens", t.generatedTokens())
                .field("generation_ms", t.generationMillis())
                .field("generation_tokens_per_second", t.generationTokensPerSecond());
        Json json = new Json()
                .field("prompt_ids", c.promptTokens())
                .field("output_ids", c.outputTokens())
                .field("text", c.text())
                .field("finish_reason", finishReason(c.finishReason()))
                .field("timings", timings);
        if (speculative) {
            SpeculationStats s = c.speculation();
            json.field("speculation", new Json()
                    .field("drafted_tokens", s.draftedTokens())
                    .field("accepted_tokens", s.acceptedTokens())
                    .field("acceptance_rate", s.acceptanceRate())
                    .field("verifications", s.verifications())
                    .field("mean_accepted_length", s.meanAcceptedLength())
                    .field("forward_passes_saved", s.forwardPassesSaved())
                    .field("plain_steps", s.plainSteps()));
        }
        // The lists asked for are always there, so a client reads one shape (-n 0, a one-token prompt);
        // the perplexity only when there is something to take it of.
        if (config.wantsLogprobs()) {
            json.field("logprobs", logprobsJson(model, c.logprobs()));
        }
        if (config.wantsPromptLogprobs()) {
            json.field("prompt_logprobs", logprobsJson(model, c.promptLogprobs()));
            if (!c.promptLogprobs().isEmpty()) {
                json.precise("prompt_perplexity", c.promptPerplexity());
            }
        }
        return json.toString();
    }

    private static List<Json> logprobsJson(Model model, List<TokenLogprob> logprobs) {
        List<Json> tokens = new ArrayList<>();
        for (TokenLogprob token : logprobs) {
            List<Json> top = new ArrayList<>();
            for (TokenLogprob.Alternative a : token.top()) {
                top.add(tokenJson(model, a.token()).precise("logprob", a.logprob()));
            }
            tokens.add(tokenJson(model, token.token()).precise("logprob", token.logprob()).field("top", top));
        }
        return tokens;
    }

    /** A token's id, its text (bytes that are not whole UTF-8 characters as U+FFFD) and its bytes, as OpenAI's logprobs show them. */
    private static Json tokenJson(Model model, int id) {
        byte[] bytes = model.tokenBytes(id);
        int[] values = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            values[i] = bytes[i] & 0xFF;
        }
        return new Json().field("id", id).field("token", new String(bytes, java.nio.charset.StandardCharsets.UTF_8))
                .field("bytes", values);
    }

    /** One line for stderr on what speculative decoding did. */
    static String speculationSummary(SpeculationStats s) {
        return String.format(Locale.ROOT,
                "speculation: %d drafted, %d accepted (%.1f%%), %.2f accepted per verification, %d forward passes saved, "
                        + "%d steps without drafting (timed slower)",
                s.draftedTokens(), s.acceptedTokens(), 100 * s.acceptanceRate(), s.meanAcceptedLength(), s.forwardPassesSaved(),
                s.plainSteps());
    }

    /** One line for stderr, in the spirit of llama.cpp's timing report. */
    static String summary(Timings t, FinishReason reason) {
        return String.format(Locale.ROOT,
                "load %.1f ms | prompt %d tokens, %.1f ms, %.1f tok/s | generation %d tokens, %.1f ms, %.1f tok/s | finish: %s",
                t.loadMillis(), t.promptTokens(), t.promptMillis(), t.promptTokensPerSecond(),
                t.generatedTokens(), t.generationMillis(), t.generationTokensPerSecond(), finishReason(reason));
    }
}
