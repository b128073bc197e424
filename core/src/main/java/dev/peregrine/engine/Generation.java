package dev.peregrine.engine;

import dev.peregrine.Completion;
import dev.peregrine.FinishReason;
import dev.peregrine.GeneratedToken;
import dev.peregrine.GenerationConfig;
import dev.peregrine.SpeculationStats;
import dev.peregrine.Timings;
import dev.peregrine.TokenLogprob;
import dev.peregrine.sampling.JsonConstraint;
import dev.peregrine.sampling.Sampler;
import dev.peregrine.tokenizer.StreamingDecoder;
import dev.peregrine.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The per-request logic of one generation, apart from running the model: given the logits that
 * follow the sequence, it samples, appends the token, checks the stop conditions and releases the
 * text that is safe to print (whole UTF-8 characters, and nothing that could still turn out to be
 * the start of a stop string). The {@link Scheduler} evaluates the sequence and calls it.
 *
 * <p>With speculative decoding the scheduler appends a {@link Speculator}'s draft to the sequence
 * and evaluates it with the last token in one span; {@link #acceptDrafts} then keeps the drafts
 * the model agrees with and the model's own next token, exactly as sampling them one at a time.
 */
public final class Generation {
    private final SequenceState seq;
    private final GenerationConfig config;
    private final Tokenizer tokenizer;
    private final Sampler sampler;
    private final Speculator speculator;
    private final StreamingDecoder decoder;
    private final int[] promptTokens;
    private final long loadNanos;
    private final int[] stopTokens;
    private final List<String> stopStrings;
    private final int longestStop;
    /** Rows kept for log-probabilities, when the config asks for them; null otherwise. */
    private final LogprobRecorder logprobs;
    private final List<TokenLogprob> outputLogprobs = new ArrayList<>();
    /** The log-probability of the token being committed (null without logprobs). */
    private TokenLogprob pendingLogprob;
    /** Prompt rows, when the config asks for the prompt's log-probabilities; null otherwise. */
    private final LogprobRecorder promptRecorder;
    private final List<TokenLogprob> promptLogprobs = new ArrayList<>();
    /** Where the prompt ends in the sequence, and the position of the next prompt token to score. */
    private final int promptEnd;
    private int nextPromptScored = -1;

    private final StringBuilder text = new StringBuilder();
    private int released;          // chars of text handed out so far
    private int[] output = new int[16];
    private int outputCount;
    private FinishReason finish;
    private int finalTextLength = -1;
    private int promptEvaluated;
    private boolean admitted;
    private final long startNanos = System.nanoTime();
    private long firstLogitsNanos;
    private long finishNanos;

    /**
     * @param promptTokens the tokens appended to {@code seq} for this generation (reported in the
     *                     completion; they may already be in the sequence)
     */
    public Generation(SequenceState seq, int[] promptTokens, GenerationConfig config, Tokenizer tokenizer, long loadNanos) {
        this(seq, promptTokens, config, tokenizer, loadNanos, null);
    }

    /** A generation that speculates with {@code speculator} (null: never). */
    public Generation(SequenceState seq, int[] promptTokens, GenerationConfig config, Tokenizer tokenizer, long loadNanos,
                      Speculator speculator) {
        this.seq = seq;
        this.config = config;
        this.tokenizer = tokenizer;
        this.sampler = new Sampler(config, tokenizer.vocabularySize(), config.isJsonOutput()
                ? new JsonConstraint(tokenizer.vocabularySize(), tokenizer::tokenBytes, tokenizer::isEndOfGeneration,
                        tokenizer::isControlToken, seq.length())
                : null);
        this.speculator = speculator;
        if (speculator != null) {
            speculator.bind(seq, config, sampler);
        }
        this.decoder = tokenizer.streamingDecoder();
        this.promptTokens = promptTokens.clone();
        this.loadNanos = loadNanos;
        this.stopTokens = config.stopTokens();
        this.stopStrings = config.stopStrings();
        this.longestStop = stopStrings.stream().mapToInt(String::length).max().orElse(0);
        this.logprobs = config.wantsLogprobs() ? new LogprobRecorder(tokenizer.vocabularySize(), config.topLogprobs()) : null;
        this.promptRecorder = config.wantsPromptLogprobs()
                ? new LogprobRecorder(tokenizer.vocabularySize(), config.topPromptLogprobs()) : null;
        this.promptEnd = seq.length();
        this.promptEvaluated = seq.prepareForGeneration();
    }

    public SequenceState sequence() {
        return seq;
    }

    /**
     * Called when the scheduler first admits the request, after it took what the prefix cache
     * held: the prompt tokens left to evaluate are the ones its timings count (tokens found in the
     * cache are not evaluated). A readmission after preemption changes nothing.
     */
    public void admitted() {
        if (!admitted) {
            admitted = true;
            promptEvaluated = Math.max(0, seq.length() - seq.kv().length());
        }
    }

    public GenerationConfig config() {
        return config;
    }

    /** The request's speculative decoding, or null. */
    Speculator speculator() {
        return speculator;
    }

    /**
     * Most tokens to draft for the next step: the adaptive draft length, kept small enough that
     * the drafts plus the model's own token fit in both max tokens and the context.
     */
    int draftLimit() {
        if (speculator == null || finish != null) {
            return 0;
        }
        int tokensLeft = config.maxTokens() - outputCount - 1;
        int contextLeft = seq.contextLength() - seq.length() - 1;
        return Math.max(0, Math.min(speculator.nextLength(), Math.min(tokensLeft, contextLeft)));
    }

    public boolean isFinished() {
        return finish != null;
    }

    /** Whether any token has been generated. */
    public boolean hasOutput() {
        return outputCount > 0;
    }

    /**
     * Checks the limits that end a generation before anything more is evaluated (max tokens,
     * context full). Returns true, with the generation finished, when one is reached.
     */
    public boolean reachedLimit() {
        if (finish != null) {
            return true;
        }
        if (promptRecorder != null && seq.kv().length() < promptEnd) {
            return false; // the prompt is scored first, even where no token may follow (maxTokens 0, a full context)
        }
        if (outputCount >= config.maxTokens()) {
            finish(FinishReason.MAX_TOKENS, -1);
            return true;
        }
        if (seq.length() >= seq.contextLength()) {
            finish(FinishReason.CONTEXT_FULL, -1);
            return true;
        }
        return false;
    }

    /**
     * How many best candidates per logit row this step's sampling can do with instead of whole
     * rows ({@link Sampler#candidatesNeeded}), 0 for whole rows. Verifying drafts by sampling needs
     * the model's whole distribution at each position, and so do log-probabilities; greedy
     * verification needs the argmax only.
     */
    int candidatesNeeded(boolean verifyingDrafts) {
        return (verifyingDrafts && !config.isGreedy()) || logprobs != null || promptRecorder != null ? 0
                : sampler.candidatesNeeded();
    }

    /** Whether every prompt position wants a logits row ({@link GenerationConfig#promptLogprobs}). */
    boolean wantsPromptRows() {
        return promptRecorder != null;
    }

    /** Where the prompt ends in the sequence. */
    int promptEnd() {
        return promptEnd;
    }

    /**
     * Scores the prompt tokens that rows {@code firstRow ..} (one per position from {@code start},
     * {@code count} of them) predict: row p gives the log-probability of the token at p + 1, for the
     * prompt's tokens only, each once (a preempted prompt is evaluated again).
     */
    void scorePrompt(LogitRows rows, int firstRow, int count, int start) {
        for (int j = 0; j < count; j++) {
            int next = start + j + 1;
            if (next >= promptEnd) {
                break;
            }
            if (nextPromptScored < 0) {
                nextPromptScored = next; // the first position evaluated: its token has no row before it
            }
            if (next != nextPromptScored) {
                continue;
            }
            promptRecorder.save(rows.logits(), rows.offset(firstRow + j), 0);
            promptLogprobs.add(promptRecorder.of(0, seq.token(next)));
            nextPromptScored++;
        }
    }

    /**
     * Takes row {@code row} of the step's output, which follows the sequence (whole logits may be
     * modified), samples the next token and returns it with the text it makes printable; returns
     * null when the generation ended without a token to hand out. After the generation has
     * finished, {@link #isFinished()} is true and {@link #completion()} is ready.
     */
    GeneratedToken accept(LogitRows rows, int row) {
        beforeSampling();
        keepForLogprobs(rows, row, 0);
        int token = rows.sample(sampler, row, seq.tokenArray(), seq.length());
        seq.append(token);
        pendingLogprob = logprobs == null ? null : logprobs.of(0, token);
        return commit(token);
    }

    /** Keeps row {@code row} as the model made it, before sampling changes it, when log-probabilities are wanted. */
    private void keepForLogprobs(LogitRows rows, int row, int slot) {
        if (logprobs != null) {
            logprobs.save(rows.logits(), rows.offset(row), slot);
        }
    }

    private void beforeSampling() {
        if (finish != null) {
            throw new IllegalStateException("the generation has finished");
        }
        if (firstLogitsNanos == 0) {
            firstLogitsNanos = System.nanoTime();
        }
    }

    /**
     * Verifies the {@code drafted} tokens at the end of the sequence (the speculator's draft,
     * appended and evaluated together with the token before them) against the model's logits for
     * each of their positions and the one after ({@code drafted + 1} rows from {@code firstRow};
     * candidates will do for greedy decoding, sampling needs whole rows).
     *
     * <p>Greedy: the drafts are kept while each is the model's argmax, then the model's own token
     * follows. Sampling: draft x at position i is kept with probability min(1, p(x) / q(x)),
     * where p is the model's distribution after the history up to i (temperature, filters and
     * the repetition penalty over that very history, as plain sampling would apply them) and q
     * the draft's; at the first rejection a token is drawn from max(0, p - q) normalised, and if
     * all are kept, from p after the last. Each output token is thereby distributed exactly as
     * in plain sampling. A draft token without a distribution (q one-hot) is tested by a plain
     * draw from p, kept if the draw is that token, else the draw comes next: the same rule, and
     * the very tokens plain sampling with the same seed gives (so prompt lookup and drafters that
     * give no probabilities never change a seeded output). Rejected drafts leave the sequence and
     * the KV cache.
     *
     * <p>Hands each output token to {@code sink}, as {@link #accept} returns them, and returns
     * how many it handed out.
     */
    int acceptDrafts(LogitRows rows, int firstRow, int drafted, Scheduler.Sink sink) {
        beforeSampling();
        int start = seq.length() - drafted;
        int[] history = seq.tokenArray();
        int accepted = 0;
        int next = -1;
        if (config.isGreedy()) {
            while (next < 0) {
                keepForLogprobs(rows, firstRow + accepted, accepted);
                int t = rows.sample(sampler, firstRow + accepted, history, start + accepted);
                if (accepted < drafted && t == history[start + accepted]) {
                    accepted++;
                } else {
                    next = t;
                }
            }
        } else {
            DraftBuffer draft = speculator.draft();
            float[] p = speculator.row();
            for (; accepted < drafted; accepted++) {
                keepForLogprobs(rows, firstRow + accepted, accepted);
                int x = history[start + accepted];
                if (!draft.hasProbabilities(accepted)) {
                    // A token proposed alone (q one-hot at x): draw from p as plain sampling does,
                    // with its one random number, and keep the draft if that draw is x. x is kept
                    // with probability p(x) and any other token comes from p without x: the rule
                    // below for a one-hot q, and every token is the one plain sampling with the same
                    // seed would give, whatever was drafted.
                    int y = rows.sample(sampler, firstRow + accepted, history, start + accepted);
                    if (y != x) {
                        next = y;
                        break;
                    }
                    continue;
                }
                sampler.distribution(rows.logits(), rows.offset(firstRow + accepted), history, start + accepted, p);
                // Accept with probability min(1, p/q): q(x) > 0 for a token drawn from q.
                if (!(sampler.nextUniform() * draft.probability(accepted, x) < p[x])) {
                    next = draft.drawResidual(accepted, p, sampler.nextUniform());
                    break;
                }
            }
            if (next < 0) {
                keepForLogprobs(rows, firstRow + drafted, drafted);
                next = rows.sample(sampler, firstRow + drafted, history, start + drafted);
            }
        }
        seq.rewind(drafted - accepted);

        int handedOut = 0;
        int committed = 0;
        while (finish == null && committed <= accepted) {
            int token;
            if (committed < accepted) {
                token = history[start + committed]; // a kept draft, already in the sequence
            } else {
                token = next;
                seq.append(token);
            }
            // Each token's row is the one at its position: slot c for the c-th token out.
            pendingLogprob = logprobs == null ? null : logprobs.of(committed, token);
            committed++;
            GeneratedToken out = commit(token);
            if (out != null) {
                sink.onToken(out);
                handedOut++;
            }
        }
        // A stop condition among the kept drafts: the sequence ends where plain decoding would.
        if (committed < accepted) {
            seq.rewind(accepted - committed);
        }
        speculator.recordVerification(drafted, accepted, committed);
        return handedOut;
    }

    /**
     * Takes a token just appended to the sequence: checks the stop conditions and returns it with
     * the text it makes printable, or null when the generation ended without a token to hand out.
     */
    private GeneratedToken commit(int token) {
        if (!config.ignoreEos() && tokenizer.isEndOfGeneration(token)) {
            return finish(FinishReason.END_OF_SEQUENCE, token);
        }
        if (contains(stopTokens, token)) {
            return finish(FinishReason.STOP_TOKEN, token);
        }
        if (outputCount == output.length) {
            output = Arrays.copyOf(output, output.length * 2);
        }
        output[outputCount++] = token;
        if (logprobs != null) {
            outputLogprobs.add(pendingLogprob);
        }
        text.append(decoder.accept(token));

        int stopAt = findStopString();
        if (stopAt >= 0) {
            text.setLength(stopAt);
            return finish(FinishReason.STOP_STRING, token);
        }
        // Finish as soon as the limit is known, so the last token carries all remaining text.
        if (outputCount >= config.maxTokens()) {
            return finish(FinishReason.MAX_TOKENS, token);
        }
        if (seq.length() >= seq.contextLength()) {
            return finish(FinishReason.CONTEXT_FULL, token);
        }
        return new GeneratedToken(token, release(text.length() - heldBackForStop()), pendingLogprob);
    }

    /** Ends the generation from outside (cancelled, timed out); returns the text still held back, if any. */
    public GeneratedToken abort(FinishReason reason) {
        if (finish != null) {
            return null;
        }
        // Any text still held back goes out with the last token, whose log-probability went out already.
        pendingLogprob = null;
        return finish(reason, outputCount > 0 ? output[outputCount - 1] : -1);
    }

    /**
     * Ends the generation and hands out the text still held back, attached to {@code token} (the
     * last generated token, or the end/stop token that ended the generation); returns null when
     * there is nothing left to hand out for an end/stop token or no token.
     */
    private GeneratedToken finish(FinishReason reason, int token) {
        finish = reason;
        finishNanos = System.nanoTime();
        if (reason != FinishReason.STOP_STRING) {
            text.append(decoder.flush());
        }
        finalTextLength = text.length();
        String rest = release(finalTextLength);
        boolean endedByThisToken = reason == FinishReason.END_OF_SEQUENCE || reason == FinishReason.STOP_TOKEN;
        if (token < 0 || ((endedByThisToken || reason == FinishReason.CANCELLED || reason == FinishReason.TIMEOUT)
                && rest.isEmpty())) {
            return null;
        }
        return new GeneratedToken(token, rest, pendingLogprob);
    }

    public Completion completion() {
        if (finish == null) {
            throw new IllegalStateException("the generation has not finished");
        }
        long firstLogits = firstLogitsNanos == 0 ? finishNanos : firstLogitsNanos;
        Timings timings = new Timings(loadNanos, promptEvaluated, firstLogits - startNanos, outputCount, finishNanos - firstLogits);
        SpeculationStats speculation = speculator == null ? SpeculationStats.NONE : speculator.stats();
        return new Completion(promptTokens, Arrays.copyOf(output, outputCount), text.substring(0, finalTextLength),
                finish, timings, speculation, outputLogprobs, promptLogprobs);
    }

    private String release(int upTo) {
        if (upTo <= released) {
            return "";
        }
        String s = text.substring(released, upTo);
        released = upTo;
        return s;
    }

    /** Start of the first stop string in the text, looking only where a new one can have appeared. */
    private int findStopString() {
        if (longestStop == 0) {
            return -1;
        }
        int from = Math.max(0, released - longestStop);
        int best = -1;
        for (String stop : stopStrings) {
            int at = text.indexOf(stop, from);
            if (at >= 0 && (best < 0 || at < best)) {
                best = at;
            }
        }
        return best;
    }

    /** Length of the longest end of the text that is a proper prefix of some stop string. */
    private int heldBackForStop() {
        int held = 0;
        for (String stop : stopStrings) {
            for (int k = Math.min(stop.length() - 1, text.length() - released); k > held; k--) {
                if (regionMatches(text, text.length() - k, stop, k)) {
                    held = k;
                    break;
                }
            }
        }
        return held;
    }

    private static boolean regionMatches(StringBuilder s, int at, String other, int length) {
        for (int i = 0; i < length; i++) {
            if (s.charAt(at + i) != other.charAt(i)) {
                return false;
            }
        }
        return true;
    }

    private static boolean contains(int[] a, int v) {
        for (int x : a) {
            if (x == v) {
                return true;
            }
        }
        return false;
    }
}
