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
 */
public record Completion(int[] promptTokens, int[] outputTokens, String text, FinishReason finishReason, Timings timings,
                         SpeculationStats speculation, List<TokenLogprob> logprobs) {
    public Completion {
        promptTokens = promptTokens.clone();
        outputTokens = outputTokens.clone();
        Objects.requireNonNull(speculation, "speculation");
        logprobs = List.copyOf(logprobs);
        if (!logprobs.isEmpty() && logprobs.size() != outputTokens.length) {
            throw new IllegalArgumentException(logprobs.size() + " logprobs for " + outputTokens.length + " output tokens");
        }
    }

    /** A completion without log-probabilities. */
    public Completion(int[] promptTokens, int[] outputTokens, String text, FinishReason finishReason, Timings timings,
                      SpeculationStats speculation) {
        this(promptTokens, outputTokens, text, finishReason, timings, speculation, List.of());
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
                + ", speculation=" + speculation + (logprobs.isEmpty() ? "" : ", logprobs=" + logprobs) + "]";
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Completion c && Arrays.equals(c.promptTokens, promptTokens)
                && Arrays.equals(c.outputTokens, outputTokens) && c.text.equals(text)
                && c.finishReason == finishReason && c.timings.equals(timings) && c.speculation.equals(speculation)
                && c.logprobs.equals(logprobs);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(outputTokens) * 31 + text.hashCode();
    }
}
