package dev.peregrine;

import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * The result of one generation.
 *
 * @param promptTokens the prompt's token ids (for a session: the tokens appended since the last generation)
 * @param outputTokens the generated token ids (a stop token or end-of-generation token is not included)
 * @param text         the generated text (a stop string that ended it is not included)
 * @param speculation  what speculative decoding did ({@link SpeculationStats#NONE} without it)
 * @param logprobs     each output token's log-probability and most likely alternatives, in the order
 *                     of {@code outputTokens}, when the config asked for them
 *                     ({@link GenerationConfig#logprobs}); empty otherwise
 * @param promptLogprobs the log-probability of each prompt token given the ones before it, when the
 *                     config asked for them ({@link GenerationConfig#promptLogprobs}); empty otherwise.
 *                     From the prompt's second token on: a sequence's first token has nothing before
 *                     it. A session's text appended after earlier tokens is scored from its first token
 */
public record Completion(int[] promptTokens, int[] outputTokens, String text, FinishReason finishReason, Timings timings,
                         SpeculationStats speculation, List<TokenLogprob> logprobs, List<TokenLogprob> promptLogprobs) {
    public Completion {
        promptTokens = promptTokens.clone();
        outputTokens = outputTokens.clone();
        Objects.requireNonNull(speculation, "speculation");
        logprobs = List.copyOf(logprobs);
        promptLogprobs = List.copyOf(promptLogprobs);
        if (!logprobs.isEmpty() && logprobs.size() != outputTokens.length) {
            throw new IllegalArgumentException(logprobs.size() + " logprobs for " + outputTokens.length + " output tokens");
        }
    }

    /** A completion without log-probabilities. */
    public Completion(int[] promptTokens, int[] outputTokens, String text, FinishReason finishReason, Timings timings,
                      SpeculationStats speculation) {
        this(promptTokens, outputTokens, text, finishReason, timings, speculation, List.of(), List.of());
    }

    /**
     * The perplexity of the prompt under the model, exp of the mean negative log-probability of
     * its scored tokens ({@link #promptLogprobs}); NaN when none were scored.
     */
    public double promptPerplexity() {
        if (promptLogprobs.isEmpty()) {
            return Double.NaN;
        }
        double sum = 0;
        for (TokenLogprob t : promptLogprobs) {
            sum += t.logprob();
        }
        return Math.exp(-sum / promptLogprobs.size());
    }

    /** A completion without speculative decoding or log-probabilities. */
    public Completion(int[] promptTokens, int[] outputTokens, String text, FinishReason finishReason, Timings timings) {
        this(promptTokens, outputTokens, text, finishReason, timings, SpeculationStats.NONE);
    }

    @Override
    public int[] promptTokens() {
        return promptTokens.clone();
    }

    @Override
    public int[] outputTokens() {
        return outputTokens.clone();
    }

    @Override
    public String toString() {
        return "Completion[text=" + text + ", finishReason=" + finishReason + ", promptTokens="
                + Arrays.toString(promptTokens) + ", outputTokens=" + Arrays.toString(outputTokens) + ", timings=" + timings
                + ", speculation=" + speculation + (logprobs.isEmpty() ? "" : ", logprobs=" + logprobs)
                + (promptLogprobs.isEmpty() ? "" : ", promptLogprobs=" + promptLogprobs) + "]";
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Completion c && Arrays.equals(c.promptTokens, promptTokens)
                && Arrays.equals(c.outputTokens, outputTokens) && c.text.equals(text)
                && c.finishReason == finishReason && c.timings.equals(timings) && c.speculation.equals(speculation)
                && c.logprobs.equals(logprobs) && c.promptLogprobs.equals(promptLogprobs);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(outputTokens) * 31 + text.hashCode();
    }
}
