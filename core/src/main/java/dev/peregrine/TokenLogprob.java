package dev.peregrine;

import java.util.List;
import java.util.Objects;

/**
 * A generated token's log-probability under the model's distribution at its position, with the
 * most likely tokens there ({@link GenerationConfig#logprobs}). The distribution is the softmax of
 * the model's own logits, before the repetition penalty, temperature and the top-k, top-p and min-p
 * filters (what vLLM and OpenAI's API report as logprobs): it says how likely the model found each
 * token, whatever the sampling settings.
 *
 * @param token   the generated token id
 * @param logprob its natural logarithm of probability ({@code -Infinity} for a token the model rules out)
 * @param top     the most likely tokens at that position, most likely first (equal logits by lower
 *                id), as many as the config asked for; the generated token is among them only if it
 *                ranks that high
 */
public record TokenLogprob(int token, double logprob, List<Alternative> top) {
    public TokenLogprob {
        top = List.copyOf(Objects.requireNonNull(top, "top"));
    }

    /** One of the most likely tokens at a position, with its log-probability. */
    public record Alternative(int token, double logprob) {
    }
}
