package dev.peregrine.tokenizer;

import dev.peregrine.ModelFormatException;
import java.util.Arrays;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * BPE merge ranks by pair of tokens: the "a b" strings of {@code tokenizer.ggml.merges} resolved to
 * token ids once, so that the merge loop looks a pair up by two ints, without building a String.
 * Open addressing with linear probing on a long key. Immutable and thread-safe.
 */
final class MergeTable {
    static final String KEY_MERGES = "tokenizer.ggml.merges";
    private static final Logger LOG = LoggerFactory.getLogger(MergeTable.class);
    private static final long EMPTY = -1L; // (-1, -1): no token pair

    /**
     * Slots of two longs: the key (left token, right token), then its merge ({@link
     * SymbolMerger.Rule#merge} of its rank and the merged token). Side by side, so that a lookup
     * touches one cache line: the table of a large vocabulary is megabytes.
     */
    private final long[] slots;
    private final int mask;
    private final int shift;

    /**
     * @param merges the merges, highest priority first, each two token texts separated by the first
     *               space after the first character
     * @throws ModelFormatException if a merge has no separating space
     */
    MergeTable(String[] merges, TokenIndex index) {
        this(merges.length);
        int skipped = 0;
        for (int rank = 0; rank < merges.length; rank++) {
            String merge = merges[rank];
            int space = merge.indexOf(' ', 1);
            if (space < 0) {
                throw new ModelFormatException("'" + KEY_MERGES + "'[" + rank + "] = '" + merge
                        + "' is not two tokens separated by a space");
            }
            int left = index.find(merge.substring(0, space));
            int right = index.find(merge.substring(space + 1));
            int merged = index.find(merge.substring(0, space) + merge.substring(space + 1));
            if (left < 0 || right < 0 || merged < 0) {
                skipped++; // it could only make a symbol that is no token
                continue;
            }
            put(left, right, rank, merged, false); // a repeated pair keeps its first rank, as in llama.cpp
        }
        if (skipped > 0) {
            LOG.warn("{} of {} entries of '{}' name texts that are not tokens; they are ignored",
                    skipped, merges.length, KEY_MERGES);
        }
    }

    /**
     * Merges already resolved to token ids, rank {@code i} merging {@code left[i]} and
     * {@code right[i]} into {@code merged[i]}. A repeated pair keeps its last rank, as in Hugging
     * Face's tokenizers.
     */
    MergeTable(int[] left, int[] right, int[] merged) {
        this(left.length);
        for (int rank = 0; rank < left.length; rank++) {
            put(left[rank], right[rank], rank, merged[rank], true);
        }
    }

    private MergeTable(int count) {
        int capacity = Integer.highestOneBit(Math.max(2, count) * 2 - 1) << 1; // load <= 1/2
        this.slots = new long[2 * capacity];
        this.mask = capacity - 1;
        this.shift = 64 - Integer.numberOfTrailingZeros(capacity);
        Arrays.fill(slots, EMPTY);
    }

    private void put(int left, int right, int rank, int merged, boolean replace) {
        long key = key(left, right);
        int slot = slot(key);
        while (slots[2 * slot] != EMPTY && slots[2 * slot] != key) {
            slot = (slot + 1) & mask;
        }
        if (slots[2 * slot] == EMPTY || replace) {
            slots[2 * slot] = key;
            slots[2 * slot + 1] = SymbolMerger.Rule.merge(rank, merged);
        }
    }

    /** The merge of tokens {@code left} and {@code right}, or {@link SymbolMerger.Rule#NONE}. */
    long find(int left, int right) {
        if (left < 0 || right < 0) {
            return SymbolMerger.Rule.NONE;
        }
        long key = key(left, right);
        for (int slot = slot(key); slots[2 * slot] != EMPTY; slot = (slot + 1) & mask) {
            if (slots[2 * slot] == key) {
                return slots[2 * slot + 1];
            }
        }
        return SymbolMerger.Rule.NONE;
    }

    private static long key(int left, int right) {
        return (long) left << 32 | right;
    }

    private int slot(long key) {
        return (int) ((key * 0x9E37_79B9_7F4A_7C15L) >>> shift);
    }
}
