package dev.peregrine.engine;

import dev.peregrine.PeregrineException;
import dev.peregrine.kv.KvCache;
import dev.peregrine.kv.KvSequence;
import dev.peregrine.model.LlamaGraph;
import dev.peregrine.spi.BatchLayout;

/**
 * Runs forward steps for sequences, one step at a time (the graph's scratch buffers are shared).
 * Turns "evaluate these tokens of this sequence" into ragged-batch layouts of at most
 * {@code maxBatchTokens} tokens: a prompt is one span per step, not one token per step.
 */
public final class Engine {
    private final LlamaGraph graph;
    private final KvCache kv;
    private final int vocabularySize;
    private final int contextLength;
    private final BatchLayout layout;
    private boolean closed;

    public Engine(LlamaGraph graph, KvCache kv, int vocabularySize, int contextLength) {
        this.graph = graph;
        this.kv = kv;
        this.vocabularySize = vocabularySize;
        this.contextLength = contextLength;
        this.layout = new BatchLayout(kv.blockSize());
    }

    public int contextLength() {
        return contextLength;
    }

    public int vocabularySize() {
        return vocabularySize;
    }

    public KvCache kvCache() {
        return kv;
    }

    /**
     * Appends {@code tokens[from .. from+count)} to {@code seq} in the KV cache, in steps of at
     * most the graph's capacity, and writes the logits after the last one into {@code logits}.
     */
    public synchronized void evaluate(KvSequence seq, int[] tokens, int from, int count, float[] logits) {
        if (closed) {
            throw new IllegalStateException("the model is closed");
        }
        if (seq.length() + count > contextLength) {
            throw new PeregrineException("sequence of " + (seq.length() + count)
                    + " tokens exceeds the context length " + contextLength);
        }
        int done = 0;
        while (done < count) {
            int n = Math.min(graph.maxTokens(), count - done);
            int start = seq.length();
            seq.reserve(n);
            layout.clear();
            int s = layout.addSequence(seq.blockTable(), seq.blockCount());
            for (int i = 0; i < n; i++) {
                boolean last = done + i == count - 1;
                layout.addToken(s, tokens[from + done + i], start + i, last);
            }
            graph.forward(layout, logits);
            seq.advance(start + n);
            done += n;
        }
    }

    public synchronized void close() {
        closed = true;
    }
}
