package dev.peregrine;

/**
 * One generated token as it streams out.
 *
 * @param id      the token id; for the last token of a generation that ended on an end-of-generation
 *                or stop token, that token's id (it carries only text held back until then)
 * @param text    the text that became printable with this token: may be empty (the token holds only
 *                part of a UTF-8 character, or text held back because it may begin a stop string)
 *                or hold more than the token's own characters (text released from earlier tokens)
 * @param logprob the token's log-probability and the most likely alternatives, when the config asked
 *                for them ({@link GenerationConfig#logprobs}); null otherwise
 */
public record GeneratedToken(int id, String text, TokenLogprob logprob) {
    /** A token without log-probabilities. */
    public GeneratedToken(int id, String text) {
        this(id, text, null);
    }
}
