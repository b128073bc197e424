package dev.peregrine.tokenizer;

import java.util.Arrays;

/**
 * Merging of adjacent symbols, best pair first, until no pair merges: the loop shared by
 * SentencePiece BPE (pairs ranked by the merged token's score) and byte-level BPE (pairs ranked by
 * merge rank). Symbols (at first the characters or bytes of a piece of text) form a doubly linked
 * list over that text; candidate pairs sit in a binary min-heap ordered by priority, then by left
 * symbol (leftmost first on ties, as llama.cpp and Hugging Face do). A merge leaves stale pairs
 * behind in the heap; they are recognised by the changed length of their symbols and skipped. A
 * text of n symbols costs O(n log n). Not thread-safe: one per piece of text.
 */
final class SymbolMerger {

    /** How two adjacent symbols merge. */
    @FunctionalInterface
    interface Rule {
        /** No merge. Being the largest long, it also sorts after every real merge. */
        long NONE = Long.MAX_VALUE;

        /**
         * The merge of two adjacent symbols, whose tokens are {@code left} and {@code right} (-1 for
         * a symbol that is no token) and which together cover {@code length} units of the text from
         * {@code start}: {@link #merge(int, int)} of its priority and the merged token, or
         * {@link #NONE}.
         */
        long pair(int left, int right, int start, int length);

        /** A merge into {@code token}; a lower {@code priority} merges first. */
        static long merge(int priority, int token) {
            return (long) priority << 32 | (token & 0xFFFF_FFFFL);
        }
    }

    private int[] start;
    private int[] length; // 0 once merged into the symbol on its left
    private int[] token;
    private int[] next;
    private int[] prev;
    private int count;

    /** Pair keys: priority, then the left symbol. */
    private long[] heapKey;
    /** The pair's merged length when queued; a different current length means it is stale. */
    private int[] heapLength;
    private int[] heapToken;
    private int heapSize;

    SymbolMerger(int capacity) {
        int n = Math.max(4, capacity);
        start = new int[n];
        length = new int[n];
        token = new int[n];
        next = new int[n];
        prev = new int[n];
        // n - 1 pairs to start with, then at most two more per merge: grown on demand.
        heapKey = new long[n];
        heapLength = new int[n];
        heapToken = new int[n];
    }

    /** Appends a symbol covering {@code length} units of the text from {@code start}. */
    void add(int start, int length, int token) {
        if (count == this.start.length) {
            int n = count * 2;
            this.start = Arrays.copyOf(this.start, n);
            this.length = Arrays.copyOf(this.length, n);
            this.token = Arrays.copyOf(this.token, n);
            next = Arrays.copyOf(next, n);
            prev = Arrays.copyOf(prev, n);
        }
        this.start[count] = start;
        this.length[count] = length;
        this.token[count] = token;
        prev[count] = count - 1;
        next[count] = -1;
        if (count > 0) {
            next[count - 1] = count;
        }
        count++;
    }

    /** Merges until no adjacent pair merges under {@code rule}. */
    void run(Rule rule) {
        heapSize = 0;
        if (heapKey.length < count) {
            heapKey = new long[count];
            heapLength = new int[count];
            heapToken = new int[count];
        }
        for (int s = 1; s < count; s++) {
            long merge = rule.pair(token[s - 1], token[s], start[s - 1], length[s - 1] + length[s]);
            if (merge != Rule.NONE) {
                heapKey[heapSize] = key(merge, s - 1);
                heapLength[heapSize] = length[s - 1] + length[s];
                heapToken[heapSize++] = (int) merge;
            }
        }
        for (int i = heapSize / 2 - 1; i >= 0; i--) {
            siftDown(i);
        }
        while (heapSize > 0) {
            int left = (int) heapKey[0];
            int merged = heapLength[0];
            int mergedToken = heapToken[0];
            pop();
            // A pair whose symbols are both unchanged is still adjacent, so its right symbol is
            // next[left]; any merge since it was queued changed one of the two lengths.
            int right = next[left];
            if (length[left] == 0 || right < 0 || length[left] + length[right] != merged) {
                continue;
            }
            length[left] = merged;
            token[left] = mergedToken;
            length[right] = 0;
            next[left] = next[right];
            if (next[right] >= 0) {
                prev[next[right]] = left;
            }
            tryPair(rule, prev[left], left);
            tryPair(rule, left, next[left]);
        }
    }

    /** The first symbol, or -1 if there are none. */
    int first() {
        return count > 0 ? 0 : -1;
    }

    /** The symbol after {@code s}, or -1. */
    int next(int s) {
        return next[s];
    }

    int start(int s) {
        return start[s];
    }

    int length(int s) {
        return length[s];
    }

    /** The symbol's token, or -1 for a single unit that is no token. */
    int token(int s) {
        return token[s];
    }

    private void tryPair(Rule rule, int left, int right) {
        if (left < 0 || right < 0) {
            return;
        }
        long merge = rule.pair(token[left], token[right], start[left], length[left] + length[right]);
        if (merge != Rule.NONE) {
            push(key(merge, left), length[left] + length[right], (int) merge);
        }
    }

    /** Orders by the merge's priority (its high half), then by the left symbol. */
    private static long key(long merge, int left) {
        return merge & 0xFFFF_FFFF_0000_0000L | left;
    }

    private void push(long key, int merged, int mergedToken) {
        if (heapSize == heapKey.length) {
            heapKey = Arrays.copyOf(heapKey, heapSize * 2);
            heapLength = Arrays.copyOf(heapLength, heapSize * 2);
            heapToken = Arrays.copyOf(heapToken, heapSize * 2);
        }
        int i = heapSize++;
        while (i > 0) {
            int parent = (i - 1) >>> 1;
            if (heapKey[parent] <= key) {
                break;
            }
            move(parent, i);
            i = parent;
        }
        heapKey[i] = key;
        heapLength[i] = merged;
        heapToken[i] = mergedToken;
    }

    private void pop() {
        heapSize--;
        if (heapSize > 0) {
            move(heapSize, 0);
            siftDown(0);
        }
    }

    private void siftDown(int i) {
        long key = heapKey[i];
        int merged = heapLength[i];
        int mergedToken = heapToken[i];
        while (true) {
            int child = 2 * i + 1;
            if (child >= heapSize) {
                break;
            }
            if (child + 1 < heapSize && heapKey[child + 1] < heapKey[child]) {
                child++;
            }
            if (heapKey[child] >= key) {
                break;
            }
            move(child, i);
            i = child;
        }
        heapKey[i] = key;
        heapLength[i] = merged;
        heapToken[i] = mergedToken;
    }

    private void move(int from, int to) {
        heapKey[to] = heapKey[from];
        heapLength[to] = heapLength[from];
        heapToken[to] = heapToken[from];
    }
}
