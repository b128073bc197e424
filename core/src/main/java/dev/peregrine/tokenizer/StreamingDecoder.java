package dev.peregrine.tokenizer;

import java.util.Objects;

/**
 * Turns generated token ids into text as they arrive, never emitting half a character: a token
 * that ends inside a multi-byte UTF-8 character (byte-fallback tokens such as "&lt;0xF0&gt;") is
 * held back until the tokens completing it arrive. Ill-formed UTF-8 becomes U+FFFD.
 *
 * <p>It decodes a <em>continuation</em>: every token contributes exactly its
 * {@link Tokenizer#tokenBytes bytes}, so the space in front of a word piece such as "▁there" is
 * kept (as llama.cpp's streaming output does). {@link Tokenizer#decode} of a whole sequence may
 * instead drop the one space that encoding put before the first word. For a prompt {@code p}
 * that decodes to some text and ends on a whole character, followed by generated tokens
 * {@code g}: {@code decode(p ++ g) == decode(p) + (accept over g) + flush()}.
 *
 * <p>Apart from the returned Strings it allocates nothing per token. Not thread-safe: use one per
 * generated sequence.
 */
public final class StreamingDecoder {
    private final Tokenizer tokenizer;
    private final Utf8Decoder utf8 = new Utf8Decoder();
    private final StringBuilder text = new StringBuilder(64);

    public StreamingDecoder(Tokenizer tokenizer) {
        this.tokenizer = Objects.requireNonNull(tokenizer, "tokenizer");
    }

    /**
     * Adds one token and returns the text it completes: "" when it adds nothing (a control token,
     * or a byte of a character still incomplete), possibly several characters when it completes
     * held-back bytes.
     *
     * @throws IllegalArgumentException if {@code tokenId} is outside the vocabulary
     */
    public String accept(int tokenId) {
        byte[] bytes = tokenizer.tokenBytes(tokenId);
        utf8.decode(bytes, 0, bytes.length, text);
        return take();
    }

    /** Whether bytes of an unfinished character are held back. */
    public boolean hasPending() {
        return utf8.hasPending();
    }

    /**
     * Ends the sequence: returns U+FFFD for held-back bytes of an unfinished character, or "" when
     * there are none. The decoder can then be used for a new sequence.
     */
    public String flush() {
        utf8.finish(text);
        return take();
    }

    private String take() {
        if (text.isEmpty()) {
            return "";
        }
        String s = text.toString();
        text.setLength(0);
        return s;
    }
}
