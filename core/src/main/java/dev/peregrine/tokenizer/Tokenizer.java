package dev.peregrine.tokenizer;

import java.util.Arrays;

/**
 * Text to token ids and back. Implementations are immutable and thread-safe.
 */
public interface Tokenizer {

    /**
     * Encodes text.
     *
     * @param addSpecial   add the tokens the vocabulary asks for around a sequence (BOS, and EOS
     *                     when the model wants it), as llama.cpp's {@code add_special}
     * @param parseSpecial recognise the text of control / user-defined tokens (e.g. "&lt;s&gt;")
     *                     as those tokens instead of encoding their characters, as llama.cpp's
     *                     {@code parse_special}
     */
    int[] encode(String text, boolean addSpecial, boolean parseSpecial);

    /** Encodes plain user text: special tokens added, special-token text not parsed. */
    default int[] encode(String text) {
        return encode(text, true, false);
    }

    /**
     * Encodes a prompt as {@code Model.encode} does: special-token text parsed and, with
     * {@code addSpecial}, the tokens the vocabulary asks for added, but BOS only once. A chat
     * template's output usually starts with the BOS token's text; parsed, that is a BOS, and adding
     * another one would give two. llama.cpp's chat path strips the BOS text in that case; dropping
     * the added BOS gives the same ids.
     */
    default int[] encodePrompt(String text, boolean addSpecial) {
        int[] ids = encode(text, addSpecial, true);
        int bos = bosId();
        if (addSpecial && bos >= 0 && ids.length >= 2 && ids[0] == bos && ids[1] == bos
                && text.startsWith(piece(bos))) {
            return Arrays.copyOfRange(ids, 1, ids.length);
        }
        return ids;
    }

    /**
     * The bytes token {@code id} contributes to decoded text (UTF-8, possibly a partial
     * character for byte tokens). Control tokens such as BOS/EOS contribute nothing, except in a
     * Hugging Face tokenizer, whose decoding shows special tokens ({@link HfTokenizer}). The array
     * is shared, so that streaming allocates nothing per token: do not modify it.
     *
     * @throws IllegalArgumentException if {@code id} is outside the vocabulary
     */
    byte[] tokenBytes(int id);

    /** The token's piece as stored in the vocabulary, for display (e.g. "▁Hello", "&lt;0x0A&gt;"). */
    String piece(int id);

    /**
     * Decodes a whole sequence to text (invalid UTF-8 becomes U+FFFD). A space that encoding puts
     * in front of the text (SentencePiece's dummy prefix) is removed again.
     *
     * @throws IllegalArgumentException if an id is outside the vocabulary
     */
    String decode(int[] ids);

    /**
     * A decoder for streaming output that never emits half a character. It decodes text that
     * continues a prompt, so it keeps the space in front of the first piece.
     */
    default StreamingDecoder streamingDecoder() {
        return new StreamingDecoder(this);
    }

    int vocabularySize();

    /** Beginning-of-sequence id, or -1. */
    int bosId();

    /** End-of-sequence id, or -1. */
    int eosId();

    /** Whether generating {@code id} ends a generation (EOS, end-of-turn and similar tokens). */
    boolean isEndOfGeneration(int id);

    /**
     * Whether {@code id} is a control token (BOS, EOS, a chat template's turn markers): text
     * constraints such as JSON output never allow one, whatever text it shows as.
     */
    default boolean isControlToken(int id) {
        return false;
    }
}
