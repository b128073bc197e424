package dev.peregrine.tokenizer;

import dev.peregrine.ModelFormatException;

/**
 * Token text to id, looked up by a region of a char array so that the merge loop of a tokenizer
 * can test every candidate pair without building a String for it. Open addressing with linear
 * probing; the hash is {@link String#hashCode()}'s, so each token's hash comes from its String.
 */
final class TokenIndex {
    private final String[] tokens;
    private final int[] slots; // token id + 1; 0 marks an empty slot
    /** The hash of each slot's token: most probes that miss are told apart without touching a String. */
    private final int[] slotHashes;
    private final int mask;
    private final int maxLength;

    /** @throws ModelFormatException if two tokens have the same text (llama.cpp refuses that too) */
    TokenIndex(String[] tokens) {
        this.tokens = tokens;
        int capacity = Integer.highestOneBit(Math.max(2, tokens.length) * 2 - 1) << 1; // load <= 1/2
        this.slots = new int[capacity];
        this.slotHashes = new int[capacity];
        this.mask = capacity - 1;
        int longest = 0;
        for (int id = 0; id < tokens.length; id++) {
            String text = tokens[id];
            longest = Math.max(longest, text.length());
            int hash = text.hashCode();
            int slot = spread(hash) & mask;
            while (slots[slot] != 0) {
                int other = slots[slot] - 1;
                if (slotHashes[slot] == hash && tokens[other].equals(text)) {
                    throw new ModelFormatException("'" + Vocabulary.KEY_TOKENS + "' holds '" + text
                            + "' twice, as ids " + other + " and " + id);
                }
                slot = (slot + 1) & mask;
            }
            slots[slot] = id + 1;
            slotHashes[slot] = hash;
        }
        this.maxLength = longest;
    }

    /** The longest token text, in chars: no longer region can be a token. */
    int maxLength() {
        return maxLength;
    }

    /** The id of the token whose text is {@code text[from, from + length)}, or -1. */
    int find(char[] text, int from, int length) {
        if (length > maxLength) {
            return -1;
        }
        int hash = 0;
        for (int i = from; i < from + length; i++) {
            hash = 31 * hash + text[i];
        }
        for (int slot = spread(hash) & mask; slots[slot] != 0; slot = (slot + 1) & mask) {
            int id = slots[slot] - 1;
            if (slotHashes[slot] == hash && regionEquals(tokens[id], text, from, length)) {
                return id;
            }
        }
        return -1;
    }

    /** The id of the token whose text is {@code text}, or -1. */
    int find(String text) {
        int hash = text.hashCode();
        for (int slot = spread(hash) & mask; slots[slot] != 0; slot = (slot + 1) & mask) {
            int id = slots[slot] - 1;
            if (slotHashes[slot] == hash && tokens[id].equals(text)) {
                return id;
            }
        }
        return -1;
    }

    private static boolean regionEquals(String token, char[] text, int from, int length) {
        if (token.length() != length) {
            return false;
        }
        for (int i = 0; i < length; i++) {
            if (token.charAt(i) != text[from + i]) {
                return false;
            }
        }
        return true;
    }

    /** String hashes of similar texts differ mostly in low bits; mix the high bits in too. */
    private static int spread(int h) {
        h *= 0x9E3779B9;
        return h ^ (h >>> 16);
    }
}
