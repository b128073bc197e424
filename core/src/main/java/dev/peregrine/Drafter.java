package dev.peregrine;

/**
 * Proposes tokens for speculative decoding from the host's own knowledge: a cache of earlier
 * answers, a retrieved document, a template. Use it with {@link Speculation#drafter}. The model
 * checks every proposal, so a drafter can only make generation faster or slower, never change
 * what it produces.
 *
 * <p>Called on the model's scheduler thread, once per step for each request that speculates:
 * keep it quick and non-blocking (the whole batch waits for it); a call that waits for the same
 * model (a blocking {@code generate}, closing it) is refused with {@link IllegalStateException},
 * since it would wait for itself. Closing the model waits for a call in progress; after 5 seconds
 * it interrupts the scheduler thread, so a drafter blocked in an interruptible wait should give up
 * when interrupted. If one drafter serves several models at once, it must be thread-safe. An
 * exception (or error) thrown here fails that request only.
 */
@FunctionalInterface
public interface Drafter {
    /**
     * Proposes up to {@link Draft#maxTokens()} tokens to follow {@code tokens[0 .. length)} (the
     * request's prompt and the tokens generated so far), by calling {@link Draft#add} for each;
     * proposing nothing is fine. {@code tokens} is a copy for the drafter: read it, don't keep it.
     */
    void propose(int[] tokens, int length, Draft draft);
}
