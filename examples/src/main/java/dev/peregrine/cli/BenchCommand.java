package dev.peregrine.cli;

import dev.peregrine.Completion;
import dev.peregrine.GeneratedToken;
import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.Speculation;
import dev.peregrine.SpeculationStats;
import dev.peregrine.cli.Args.Option;
import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.gguf.GgufTensorInfo;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

/**
 * {@code peregrine bench}: prefill and decode speed of a model, the machine's memory bandwidth
 * measured in the same run, decode as a fraction of the bandwidth limit, and optionally aggregate
 * throughput at several concurrency levels and time to first token under load; with a draft model
 * or prompt lookup, speculative against plain greedy decoding of a text prompt, in the same run.
 */
final class BenchCommand {
    private static final List<Option> OPTIONS = List.of(
            Args.HELP,
            new Option("model", true, "-m", "--model"),
            new Option("prompt-tokens", true, "-p", "--prompt-tokens"),
            new Option("gen-tokens", true, "-n", "--gen-tokens"),
            new Option("threads", true, "-t", "--threads"),
            new Option("reps", true, "-r", "--reps"),
            new Option("depth", true, "-d", "--depth"),
            new Option("kv-cache-type", true, "--kv-cache-type"),
            new Option("concurrency", true, "--concurrency"),
            new Option("ttft", false, "--ttft"),
            new Option("decode-during-prefill", true, "--decode-during-prefill"),
            new Option("draft-model", true, "--draft-model"),
            new Option("draft-max", true, "--draft-max"),
            new Option("prompt-lookup", false, "--prompt-lookup"),
            new Option("speculate-always", false, "--speculate-always"),
            new Option("lookup-ngram", true, "--lookup-ngram"),
            new Option("spec-prompt", true, "--spec-prompt"),
            new Option("spec-max-batch", true, "--spec-max-batch"),
            new Option("prefill-step-ms", true, "--prefill-step-ms"),
            new Option("prefill-chunk", true, "--prefill-chunk"),
            new Option("json", false, "--json"));
    /** Default --spec-prompt: a story opening that small story models continue (and repeat). */
    static final String DEFAULT_SPEC_PROMPT = "Once upon a time, there was a little girl named Lily. She loved to play outside.";

    private BenchCommand() {
    }

    static int run(String[] argv, PrintStream out, PrintStream err) {
        Args args = Args.parse(argv, 0, OPTIONS);
        if (args.has("help")) {
            out.print(Peregrine.USAGE_TEXT);
            return Peregrine.OK;
        }
        Path path = Path.of(args.required("model", "-m FILE"));
        int promptTokens = positive(args.intValue("prompt-tokens", 512), "prompt-tokens");
        int genTokens = positive(args.intValue("gen-tokens", 128), "gen-tokens");
        int threads = args.intValue("threads", 0);
        int reps = positive(args.intValue("reps", 3), "reps");
        int depth = args.intValue("depth", 0);
        if (depth < 0) {
            throw new UsageException("--depth must be >= 0, got " + depth);
        }
        int[] concurrency = args.value("concurrency").map(BenchCommand::intList).orElse(new int[0]);
        boolean json = args.has("json");
        Path draftPath = args.value("draft-model").map(Path::of).orElse(null);
        boolean promptLookup = args.has("prompt-lookup");
        if (draftPath != null && promptLookup) {
            throw new UsageException("choose one of --draft-model and --prompt-lookup");
        }
        int draftMax = positive(args.intValue("draft-max", GenerateCommand.DEFAULT_DRAFT_MAX), "draft-max");
        int lookupNgram = positive(args.intValue("lookup-ngram", GenerateCommand.DEFAULT_LOOKUP_NGRAM), "lookup-ngram");
        int specMaxBatch = positive(args.intValue("spec-max-batch", Speculation.DEFAULT_MAX_BATCH_SEQUENCES), "spec-max-batch");
        String specPrompt = args.value("spec-prompt").orElse(DEFAULT_SPEC_PROMPT);
        int effectiveThreads = threads > 0 ? threads : Runtime.getRuntime().availableProcessors();

        long weightBytes = weightBytesPerToken(path);
        Json result = new Json().field("model", path.toString()).field("threads", effectiveThreads)
                .field("weight_bytes_per_token", weightBytes);

        // Bandwidth first, with nothing else running.
        double bandwidth = MemoryBandwidth.measure(1L << 30, effectiveThreads, 5);
        double limit = bandwidth / weightBytes;
        result.field("read_bandwidth_gb_s", bandwidth / 1e9).field("bandwidth_limit_tok_s", limit);
        if (!json) {
            out.printf(Locale.ROOT, "model %s, %d threads, %.3f GB of weights read per token%n", path, effectiveThreads, weightBytes / 1e9);
            out.printf(Locale.ROOT, "memory read bandwidth %.1f GB/s -> decode limit %.1f tok/s%n", bandwidth / 1e9, limit);
            out.flush();
        }

        ModelOptions options = ModelOptions.defaults().withThreads(threads).withPrefixCaching(false)
                .withPrefillStepMillis(args.intValue("prefill-step-ms", ModelOptions.defaults().prefillStepMillis()))
                .withPrefillChunkTokens(positive(args.intValue("prefill-chunk", ModelOptions.defaults().prefillChunkTokens()), "prefill-chunk"))
                .withContextLength(contextLength(args, promptTokens, depth, specPrompt, genTokens))
                .withKvCacheType(GenerateCommand.kvCacheType(args));
        try (Model model = Model.load(path, options);
             Model draft = draftPath == null ? null : Model.load(draftPath, options)) {
            // The host's bandwidth bounds decode only where the weights are read from host memory.
            boolean hostMemory = model.backendName().equals("cpu");
            result.field("backend", model.backendName());
            if (!json) {
                out.println(model.describe());
                if (draft != null) {
                    out.println("draft: " + draft.describe());
                }
            }
            Speculation speculation = draft != null ? Speculation.draftModel(draft, draftMax)
                    : promptLookup ? Speculation.promptLookup(1, lookupNgram, draftMax) : null;
            if (speculation != null) {
                speculation = speculation.withMaxBatchSequences(specMaxBatch).withFallbackWhenSlower(!args.has("speculate-always"));
            }
            Random random = new Random(1);
            // Cold start, as a command-line user meets it: the model's load, then its first prompt
            // while the JIT has compiled none of the kernels yet (every figure below is warm).
            Completion cold = model.generator().generate(randomPrompt(model, random, promptTokens),
                    GenerationConfig.greedy().maxTokens(1), t -> { });
            double loadSeconds = cold.timings().loadNanos() / 1e9;
            double coldPrefillSeconds = cold.timings().promptNanos() / 1e9;
            result.field("load_s", loadSeconds).field("cold_prefill_s", coldPrefillSeconds);
            if (!json) {
                out.printf(Locale.ROOT, "load %.2f s; first prompt of %d tokens %.2f s (before the JIT's warm-up)%n",
                        loadSeconds, promptTokens, coldPrefillSeconds);
                out.flush();
            }
            // Prefill: a fresh random prompt per repetition, one token generated.
            double[] prefill = new double[reps];
            warmUp(() -> model.generator().generate(randomPrompt(model, random, promptTokens),
                    GenerationConfig.greedy().maxTokens(1), t -> { }));
            for (int r = 0; r < reps; r++) {
                Completion c = model.generator().generate(randomPrompt(model, random, promptTokens),
                        GenerationConfig.greedy().maxTokens(1), t -> { });
                prefill[r] = c.timings().promptTokensPerSecond();
            }
            // Decode: a short prompt (or one of depth + 8 tokens: decode with that much context
            // before it, as llama-bench's -d), then genTokens tokens.
            GenerationConfig decodeConfig = GenerationConfig.greedy().maxTokens(genTokens).ignoreEos(true);
            int decodePrompt = depth + 8;
            warmUp(() -> model.generator().generate(randomPrompt(model, random, decodePrompt), decodeConfig, t -> { }));
            double[] decode = new double[reps];
            // Bytes per token of each repetition: the median is the steady state, as for the
            // speed; the maximum shows a repetition that ran while the JIT recompiled a kernel
            // (a deoptimised method allocates every vector until it is compiled again).
            // Counted from the first generated token on, so that the prompt's prefill (which may
            // grow buffers for a chunk larger than any before) is not charged to decoding.
            double[] allocated = new double[reps];
            long[] peregrineThreads = peregrineThreadIds();
            for (int r = 0; r < reps; r++) {
                long[] atFirstToken = {-1};
                Completion c = model.generator().generate(randomPrompt(model, random, decodePrompt), decodeConfig, t -> {
                    if (atFirstToken[0] < 0) {
                        atFirstToken[0] = allocatedBytes(peregrineThreads);
                    }
                });
                long fromFirstToken = atFirstToken[0] < 0 ? 0 : allocatedBytes(peregrineThreads) - atFirstToken[0];
                allocated[r] = (double) fromFirstToken / Math.max(1, c.outputTokens().length - 1);
                decode[r] = c.timings().generationTokensPerSecond();
            }
            // The host's bandwidth moves from minute to minute (as much as 30 to 50 GB/s on a shared
            // VM), so it is measured again right after decoding, and decode is compared with the
            // higher of the two: a decode faster than the limit only says the first was low.
            double bandwidthAfter = hostMemory ? MemoryBandwidth.measure(1L << 30, effectiveThreads, 5) : bandwidth;
            double decodeLimit = Math.max(bandwidth, bandwidthAfter) / weightBytes;
            long allocatedPerToken = Math.round(median(allocated));
            long allocatedMaximum = Math.round(Arrays.stream(allocated).max().orElse(0));
            double pp = median(prefill);
            double tg = median(decode);
            result.field("prefill_tokens", promptTokens).field("prefill_tok_s", pp)
                    .field("decode_tokens", genTokens).field("decode_depth", depth).field("decode_tok_s", tg)
                    .field("kv_cache_type", options.kvCacheType().name())
                    .field("allocated_bytes_per_decode_token", allocatedPerToken)
                    .field("allocated_bytes_per_decode_token_max", allocatedMaximum);
            if (hostMemory) {
                result.field("read_bandwidth_after_decode_gb_s", bandwidthAfter / 1e9)
                        .field("decode_bandwidth_limit_tok_s", decodeLimit)
                        .field("decode_fraction_of_bandwidth_limit", tg / decodeLimit);
            }
            if (!json) {
                out.printf(Locale.ROOT, "prefill pp%d: %.1f tok/s (median of %d)%n", promptTokens, pp, reps);
                String ofLimit = hostMemory ? String.format(Locale.ROOT,
                        " = %.0f%% of the bandwidth limit (%.1f tok/s: the higher of %.1f GB/s before and %.1f after)",
                        100 * tg / decodeLimit, decodeLimit, bandwidth / 1e9, bandwidthAfter / 1e9)
                        : " (on " + model.backendName() + ": the host's memory bandwidth is not its limit)";
                out.printf(Locale.ROOT, "decode  tg%d%s: %.1f tok/s (median of %d)%s; "
                        + "%d bytes allocated per token by Peregrine's threads (median%s)%n", genTokens,
                        depth > 0 ? " after " + depth + " tokens" : "", tg, reps, ofLimit, allocatedPerToken,
                        allocatedMaximum > 2 * allocatedPerToken + 1024 ? "; " + allocatedMaximum + " in one repetition" : "");
                out.flush();
            }

            int[] specTokens = model.encode(specPrompt);
            if (speculation != null) {
                result.field("speculation", speculativeDecode(model, speculation, specTokens, genTokens, reps, json, out));
            }

            List<Json> levels = new ArrayList<>();
            double single = 0;
            for (int c : concurrency) {
                double aggregate = aggregateThroughput(model, random, c, genTokens, reps);
                if (c == 1) {
                    single = aggregate;
                }
                Json level = new Json().field("concurrency", c).field("aggregate_tok_s", aggregate);
                if (single > 0) { // known once concurrency 1 has been measured, earlier in the list
                    level.field("vs_single", aggregate / single);
                }
                if (!json) {
                    out.printf(Locale.ROOT, "concurrency %3d: %.1f tok/s aggregate%s%n", c, aggregate,
                            single > 0 ? String.format(Locale.ROOT, " (%.2fx one sequence)", aggregate / single) : "");
                    out.flush();
                }
                if (speculation != null) {
                    // The same text prompt for every request, plain and speculative: where speculation stops paying.
                    GenerationConfig plain = GenerationConfig.greedy().maxTokens(genTokens).ignoreEos(true);
                    double p = aggregateThroughput(model, c, specTokens, plain, reps);
                    double f = aggregateThroughput(model, c, specTokens, plain.withSpeculation(speculation), reps);
                    level.field("text_prompt_plain_tok_s", p).field("text_prompt_speculative_tok_s", f);
                    if (!json) {
                        out.printf(Locale.ROOT, "  text prompt: plain %.1f tok/s, speculative %.1f tok/s (%.2fx)%n", p, f, f / p);
                        out.flush();
                    }
                }
                levels.add(level);
            }
            if (!levels.isEmpty()) {
                result.field("concurrency", levels);
            }
            if (args.has("ttft")) {
                double idle = timeToFirstTokenMillis(model, random, 5);
                // Up to 5 short requests per long prefill, over -r prefills: one prefill's few
                // samples moved the median by tens of ms from run to run.
                double[] samples = new double[0];
                for (int r = 0; r < reps; r++) {
                    double[] more = timeToFirstTokenUnderLoadMillis(model, random, 2000, idle);
                    samples = Arrays.copyOf(samples, samples.length + more.length);
                    System.arraycopy(more, 0, samples, samples.length - more.length, more.length);
                }
                double loaded = median(samples);
                result.field("ttft_idle_ms", idle).field("ttft_during_2000_token_prefill_ms", loaded)
                        .field("ttft_during_prefill_samples", samples.length);
                if (!json) {
                    out.printf(Locale.ROOT, "time to first token (16-token prompt): %.1f ms idle, %.1f ms while a "
                            + "2000-token prompt is prefilled (%.2fx; median of %d requests over %d prefills)%n",
                            idle, loaded, loaded / idle, samples.length, reps);
                }
            }
            if (args.has("decode-during-prefill")) {
                int longPrompt = positive(args.intValue("decode-during-prefill", 0), "decode-during-prefill");
                double[][] runs = new double[3][reps];
                for (int r = 0; r < reps; r++) {
                    double[] one = decodeDuringPrefill(model, random, longPrompt);
                    for (int i = 0; i < 3; i++) {
                        runs[i][r] = one[i];
                    }
                }
                double idle = median(runs[0]);
                double loaded = median(runs[1]);
                double prompt = median(runs[2]);
                result.field("decoding_2_requests_idle_tok_s", idle).field("decoding_2_requests_during_prefill_tok_s", loaded)
                        .field("prefill_while_decoding_tok_s", prompt).field("prefill_while_decoding_tokens", longPrompt);
                if (!json) {
                    out.printf(Locale.ROOT, "2 requests decoding: %.1f tok/s together idle, %.1f tok/s while a %d-token prompt "
                            + "is prefilled, at %.1f tok/s (medians of %d)%n", idle, loaded, longPrompt, prompt, reps);
                }
            }
        }
        if (json) {
            out.println(result);
        }
        return Peregrine.OK;
    }

    /**
     * The context the measurements asked for need: the longest prompt (the prefill's, the decode's
     * depth + 8, the text prompt's, which has at most a token per UTF-8 byte, plus BOS and a
     * SentencePiece prefix) and the
     * tokens generated after it; 2,048 positions for the 2,000-token prompt of --ttft, and as many
     * for --decode-during-prefill (its two decoders run until the long prompt's first token). No
     * more: a context beyond the model's trained one draws a warning that is not the user's doing.
     */
    private static int contextLength(Args args, int promptTokens, int depth, String specPrompt, int genTokens) {
        int textTokens = specPrompt.getBytes(java.nio.charset.StandardCharsets.UTF_8).length + 2;
        int longestPrompt = Math.max(Math.max(promptTokens, depth + 8), textTokens);
        int needed = longestPrompt + genTokens + 16;
        if (args.has("ttft")) {
            needed = Math.max(needed, 2048);
        }
        if (args.has("decode-during-prefill")) {
            needed = Math.max(needed, Math.max(2048, args.intValue("decode-during-prefill", 0) + 48));
        }
        return needed;
    }

    /**
     * Two requests decoding, then a prompt of {@code longPrompt} tokens: the two's tokens per
     * second together before the prompt (over one second) and from its submission to its first
     * token, and the prompt's tokens per second meanwhile.
     */
    private static double[] decodeDuringPrefill(Model model, Random random, int longPrompt) {
        AtomicLong decoded = new AtomicLong();
        AtomicBoolean stop = new AtomicBoolean();
        CountDownLatch bothDecoding = new CountDownLatch(2);
        GenerationConfig endless = GenerationConfig.greedy().maxTokens(1 << 20).ignoreEos(true);
        List<Thread> decoders = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            String prompt = "Once upon a time " + i;
            decoders.add(Thread.startVirtualThread(() -> {
                boolean first = true;
                // A decoder that fills the context (a small model runs through 2,048 positions in
                // well under the measured second) starts again, so both keep decoding until stopped.
                while (!stop.get()) {
                    try (Stream<GeneratedToken> tokens = model.generator().stream(prompt, endless)) {
                        Iterator<GeneratedToken> it = tokens.iterator();
                        while (!stop.get() && it.hasNext()) {
                            it.next();
                            decoded.incrementAndGet();
                            if (first) {
                                bothDecoding.countDown();
                                first = false;
                            }
                        }
                    }
                }
            }));
        }
        try {
            if (!bothDecoding.await(5, TimeUnit.MINUTES)) {
                throw new IllegalStateException("the two decoding requests produced no tokens within 5 minutes");
            }
            long d0 = decoded.get();
            long t0 = System.nanoTime();
            Thread.sleep(1000);
            double idle = (decoded.get() - d0) / ((System.nanoTime() - t0) / 1e9);
            long d1 = decoded.get();
            long t1 = System.nanoTime();
            long[] firstToken = new long[1];
            model.generator().generate(randomPrompt(model, random, longPrompt), GenerationConfig.greedy().maxTokens(1),
                    token -> firstToken[0] = System.nanoTime());
            double seconds = (firstToken[0] - t1) / 1e9;
            return new double[] {idle, (decoded.get() - d1) / seconds, longPrompt / seconds};
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        } finally {
            stop.set(true);
            for (Thread t : decoders) {
                try {
                    t.join();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }

    /**
     * Greedy decoding of a text prompt, plain and speculative alternately, {@code reps} times each
     * after a warm-up of each: median speeds, the speed-up, and the speculation statistics.
     */
    private static Json speculativeDecode(Model model, Speculation speculation, int[] prompt, int n, int reps,
                                          boolean json, PrintStream out) {
        GenerationConfig plain = GenerationConfig.greedy().maxTokens(n).ignoreEos(true);
        GenerationConfig fast = plain.withSpeculation(speculation);
        warmUp(() -> model.generator().generate(prompt, plain, t -> { }));
        warmUp(() -> model.generator().generate(prompt, fast, t -> { }));
        double[] plainSpeed = new double[reps];
        double[] fastSpeed = new double[reps];
        long drafted = 0;
        long accepted = 0;
        long verifications = 0;
        long saved = 0;
        long plainSteps = 0;
        boolean identical = true;
        long allocated = 0;
        long fastTokens = 0;
        for (int r = 0; r < reps; r++) {
            Completion a = model.generator().generate(prompt, plain, t -> { });
            long before = peregrineThreadsAllocatedBytes();
            Completion b = model.generator().generate(prompt, fast, t -> { });
            allocated += peregrineThreadsAllocatedBytes() - before;
            fastTokens += b.outputTokens().length;
            plainSpeed[r] = a.timings().generationTokensPerSecond();
            fastSpeed[r] = b.timings().generationTokensPerSecond();
            identical &= Arrays.equals(a.outputTokens(), b.outputTokens());
            SpeculationStats s = b.speculation();
            drafted += s.draftedTokens();
            accepted += s.acceptedTokens();
            verifications += s.verifications();
            saved += s.forwardPassesSaved();
            plainSteps += s.plainSteps();
        }
        SpeculationStats total = new SpeculationStats(drafted, accepted, verifications, saved, plainSteps);
        double p = median(plainSpeed);
        double f = median(fastSpeed);
        if (!json) {
            out.printf(Locale.ROOT, "speculative decode tg%d (%s, %d-token text prompt): plain %.1f tok/s, speculative %.1f tok/s "
                            + "= %.2fx (median of %d); acceptance %.1f%%, %.2f accepted per verification, "
                            + "%.0f%% of forward passes saved; %d steps without drafting (timed slower); same tokens: %s; "
                            + "%d bytes allocated per token%n",
                    n, speculation, prompt.length, p, f, f / p, reps, 100 * total.acceptanceRate(),
                    total.meanAcceptedLength(), 100.0 * saved / Math.max(1, saved + verifications), plainSteps / reps,
                    identical, allocated / Math.max(1, fastTokens));
            out.flush();
        }
        return new Json().field("speculation", speculation.toString()).field("plain_tok_s", p)
                .field("speculative_tok_s", f).field("speedup", f / p)
                .field("acceptance_rate", total.acceptanceRate())
                .field("mean_accepted_length", total.meanAcceptedLength())
                .field("forward_passes_saved", saved).field("plain_steps_per_run", plainSteps / reps)
                .field("same_tokens", identical ? "yes" : "no")
                .field("allocated_bytes_per_token", allocated / Math.max(1, fastTokens));
    }

    /**
     * Generated tokens per second over all sequences, {@code c} requests of {@code n} tokens
     * submitted at once: the median of {@code reps} runs after a warm-up (batched steps run kernels
     * that one sequence does not, and those must be compiled first too).
     */
    private static double aggregateThroughput(Model model, Random random, int c, int n, int reps) {
        GenerationConfig cfg = GenerationConfig.greedy().maxTokens(n).ignoreEos(true);
        List<int[]> prompts = new ArrayList<>();
        for (int i = 0; i < c; i++) {
            prompts.add(randomPrompt(model, random, 8));
        }
        return aggregateThroughput(model, prompts, cfg, reps);
    }

    /** The same, with {@code c} copies of one prompt. */
    private static double aggregateThroughput(Model model, int c, int[] prompt, GenerationConfig cfg, int reps) {
        List<int[]> prompts = new ArrayList<>();
        for (int i = 0; i < c; i++) {
            prompts.add(prompt);
        }
        return aggregateThroughput(model, prompts, cfg, reps);
    }

    private static double aggregateThroughput(Model model, List<int[]> prompts, GenerationConfig cfg, int reps) {
        warmUp(() -> runConcurrently(model, prompts, cfg).processedTokens());
        double[] speeds = new double[reps];
        for (int r = 0; r < reps; r++) {
            ConcurrentRun run = runConcurrently(model, prompts, cfg);
            speeds[r] = run.generatedTokens() * 1e9 / run.nanos();
        }
        return median(speeds);
    }

    private record ConcurrentRun(long generatedTokens, long processedTokens, long nanos) {
    }

    /** All prompts submitted at once, each from its own virtual thread. */
    private static ConcurrentRun runConcurrently(Model model, List<int[]> prompts, GenerationConfig cfg) {
        long t0 = System.nanoTime();
        List<CompletableFuture<Completion>> futures = new ArrayList<>();
        for (int[] p : prompts) {
            futures.add(CompletableFuture.supplyAsync(() -> model.generator().generate(p, cfg, t -> { }),
                    Thread::startVirtualThread));
        }
        long generated = 0;
        long processed = 0;
        for (CompletableFuture<Completion> f : futures) {
            Completion c = f.join();
            generated += c.outputTokens().length;
            processed += processedTokens(c);
        }
        return new ConcurrentRun(generated, processed, System.nanoTime() - t0);
    }

    private static double timeToFirstTokenMillis(Model model, Random random, int reps) {
        double[] t = new double[reps];
        for (int r = 0; r < reps; r++) {
            Completion c = model.generator().generate(randomPrompt(model, random, 16), GenerationConfig.greedy().maxTokens(1), x -> { });
            t[r] = c.timings().promptMillis();
        }
        return median(t);
    }

    /**
     * The times to first token of up to 5 short requests made one after another, each after a
     * random pause of up to 10 idle first-token times (several of the long prompt's steps), while a
     * long prompt is prefilled (requests that end after the long prompt has finished do not count).
     */
    private static double[] timeToFirstTokenUnderLoadMillis(Model model, Random random, int longPrompt, double idleMillis) {
        int[] big = randomPrompt(model, random, longPrompt);
        CompletableFuture<Completion> background = CompletableFuture.supplyAsync(
                () -> model.generator().generate(big, GenerationConfig.greedy().maxTokens(1), x -> { }), Thread::startVirtualThread);
        long steps = model.generator().metrics().steps();
        while (model.generator().metrics().steps() < steps + 1 && !background.isDone()) {
            Thread.onSpinWait(); // wait until the long prefill is under way
        }
        double[] samples = new double[5];
        int n = 0;
        while (n < samples.length && !background.isDone()) {
            try {
                // Arrive at any point of the long prompt's steps, not just after the previous short request
                // (after which the long prompt takes one short step: that would flatter the figure).
                Thread.sleep(random.nextInt(Math.max(1, (int) (10 * idleMillis))));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            double ttft = timeToFirstTokenMillis(model, random, 1);
            if (!background.isDone()) {
                samples[n++] = ttft;
            }
        }
        background.join();
        if (n == 0) {
            throw new IllegalStateException("the " + longPrompt + "-token prompt finished before a short request could be timed");
        }
        return Arrays.copyOf(samples, n);
    }

    /** Bytes of weights one decode step reads: every tensor, except that only one row of an untied embedding table is read. */
    static long weightBytesPerToken(Path path) {
        try (Arena arena = Arena.ofConfined()) {
            GgufFile file = GgufFile.open(path, arena);
            long total = 0;
            for (GgufTensorInfo t : file.tensorInfos()) {
                total += t.byteSize();
            }
            boolean tied = file.findTensor("output.weight").isEmpty();
            if (!tied) {
                GgufTensorInfo embedding = file.tensorInfos().stream()
                        .filter(t -> t.name().equals("token_embd.weight")).findFirst().orElseThrow();
                total -= embedding.byteSize() - embedding.byteSize() / embedding.shape()[1];
            }
            return total;
        }
    }

    /** Longest warm-up per measurement. */
    private static final long WARM_UP_NANOS = 30_000_000_000L;

    /**
     * Runs {@code run} until the JIT has compiled the kernels it uses, seen as its allocation
     * dropping under 2 KB per token (code that C2 has not compiled yet boxes its vectors, and runs
     * several times slower), or for at most 30 seconds; at least once.
     */
    private static void warmUp(java.util.function.Supplier<Completion> run) {
        warmUp((java.util.function.LongSupplier) () -> processedTokens(run.get()));
    }

    /** {@link #warmUp(java.util.function.Supplier)} for a run that returns the tokens it processed. */
    private static void warmUp(java.util.function.LongSupplier run) {
        long deadline = System.nanoTime() + WARM_UP_NANOS;
        while (true) {
            long before = peregrineThreadsAllocatedBytes();
            long tokens = run.getAsLong();
            long perToken = (peregrineThreadsAllocatedBytes() - before) / Math.max(1, tokens);
            if (perToken < 2048 || System.nanoTime() > deadline) {
                return;
            }
        }
    }

    private static long processedTokens(Completion c) {
        return c.promptTokens().length + c.outputTokens().length;
    }

    /** Ids of the threads Peregrine has started (named peregrine-*). */
    private static long[] peregrineThreadIds() {
        return Thread.getAllStackTraces().keySet().stream().filter(t -> t.getName().startsWith("peregrine-"))
                .mapToLong(Thread::threadId).toArray();
    }

    /** Bytes allocated so far by these threads (a small array; no stack traces, unlike listing the threads). */
    private static long allocatedBytes(long[] threads) {
        var bean = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long total = 0;
        for (long bytes : bean.getThreadAllocatedBytes(threads)) {
            total += Math.max(0, bytes); // -1 for a thread that has ended
        }
        return total;
    }

    /** Bytes allocated so far by the threads Peregrine has started at this moment. */
    private static long peregrineThreadsAllocatedBytes() {
        return allocatedBytes(peregrineThreadIds());
    }

    private static int[] randomPrompt(Model model, Random random, int length) {
        int[] p = new int[length];
        int bos = model.encode("", true).length > 0 ? model.encode("", true)[0] : -1;
        for (int i = 0; i < length; i++) {
            p[i] = i == 0 && bos >= 0 ? bos : 3 + random.nextInt(model.vocabularySize() - 3);
        }
        return p;
    }

    private static double median(double[] values) {
        double[] s = values.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    private static int positive(int v, String name) {
        if (v <= 0) {
            throw new IllegalArgumentException("--" + name + " must be positive, got " + v);
        }
        return v;
    }

    private static int[] intList(String s) {
        try {
            return Arrays.stream(s.split(",")).map(String::trim).mapToInt(Integer::parseInt).peek(v -> positive(v, "concurrency")).toArray();
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--concurrency expects a list like 1,4,16,64, got '" + s + "'");
        }
    }
}
