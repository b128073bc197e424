package dev.peregrine.cuda;

import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.kv.KvCache;
import dev.peregrine.model.LlamaConfig;
import dev.peregrine.model.LlamaGraph;
import dev.peregrine.model.LlamaWeights;
import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BatchLayout;
import dev.peregrine.spi.Candidates;
import dev.peregrine.tensor.DType;
import java.lang.foreign.Arena;
import java.nio.file.Path;

/**
 * A model's forward pass on one backend, driven step by step with hand-made batch layouts: each
 * sequence owns a fixed run of KV blocks, so steps can mix prompts and decodes of several sequences
 * freely. Allocates nothing per step once the layout's arrays have grown.
 */
final class GraphRun implements AutoCloseable {
    static final int BLOCK_SIZE = 16;

    final Arena arena = Arena.ofShared();
    final GgufFile file;
    final LlamaConfig config;
    final Backend backend;
    final LlamaGraph graph;
    private final int[][] tables;
    private final BatchLayout layout = new BatchLayout(BLOCK_SIZE);
    private final float[] logits;

    GraphRun(Path model, Backend backend, int maxTokens, int sequences, int contextPerSequence) {
        this(model, backend, maxTokens, sequences, contextPerSequence, DType.F32);
    }

    /** With a KV cache of {@code kvType} values (F32 or F16). */
    GraphRun(Path model, Backend backend, int maxTokens, int sequences, int contextPerSequence, DType kvType) {
        this.backend = backend;
        try {
            file = GgufFile.open(model, arena);
            int vocab = (int) file.tensor("token_embd.weight").dim(1);
            config = LlamaConfig.fromGguf(model, file.metadata(), vocab);
            int blocksPerSequence = (contextPerSequence + BLOCK_SIZE - 1) / BLOCK_SIZE;
            tables = new int[sequences][blocksPerSequence];
            for (int s = 0; s < sequences; s++) {
                for (int b = 0; b < blocksPerSequence; b++) {
                    tables[s][b] = s * blocksPerSequence + b;
                }
            }
            LlamaWeights weights = LlamaWeights.load(file, config, backend);
            KvCache kv = new KvCache(backend, config.layers(), config.kvHeads(), config.headDim(),
                    sequences * blocksPerSequence, BLOCK_SIZE, kvType);
            graph = new LlamaGraph(config, weights, backend, kv, maxTokens);
            logits = new float[Math.max(sequences, maxTokens) * vocab];
        } catch (RuntimeException | Error e) {
            close();
            throw e;
        }
    }

    /**
     * One step: for each sequence s with {@code counts[s] > 0}, tokens {@code tokens[s][0 .. counts[s])}
     * at positions {@code starts[s]} onwards. Returns the logits of each such sequence's last token,
     * one row of vocabulary size each, in sequence order (the array is reused by the next step).
     */
    float[] step(int[][] tokens, int[] counts, int[] starts) {
        return step(tokens, counts, starts, false);
    }

    /** As {@link #step(int[][], int[], int[])}; with {@code allLogits}, every token's logits, in row order. */
    float[] step(int[][] tokens, int[] counts, int[] starts, boolean allLogits) {
        buildLayout(tokens, counts, starts, allLogits);
        graph.forward(layout, logits);
        return logits;
    }

    /**
     * As {@link #step(int[][], int[], int[])}, but the logits stay on the backend: {@code out}
     * (sized by the caller) receives the best candidates of each sequence's last token, in sequence order.
     */
    void stepCandidates(int[][] tokens, int[] counts, int[] starts, Candidates out) {
        buildLayout(tokens, counts, starts, false);
        graph.forwardCandidates(layout, vocabulary(), out);
    }

    private void buildLayout(int[][] tokens, int[] counts, int[] starts, boolean allLogits) {
        fill(layout, tokens, counts, starts, allLogits);
    }

    /**
     * A layout of its own for one step (laid out as {@link #step(int[][], int[], int[])} lays it
     * out), for a caller that drives {@link #graph} itself, e.g. a step inside another's pause.
     */
    BatchLayout newLayout(int[][] tokens, int[] counts, int[] starts) {
        BatchLayout own = new BatchLayout(BLOCK_SIZE);
        fill(own, tokens, counts, starts, false);
        return own;
    }

    private void fill(BatchLayout layout, int[][] tokens, int[] counts, int[] starts, boolean allLogits) {
        layout.clear();
        for (int s = 0; s < tokens.length; s++) {
            if (counts[s] == 0) {
                continue;
            }
            int blocks = (starts[s] + counts[s] + BLOCK_SIZE - 1) / BLOCK_SIZE;
            int seq = layout.addSequence(tables[s], blocks);
            for (int i = 0; i < counts[s]; i++) {
                layout.addToken(seq, tokens[s][i], starts[s] + i, allLogits || i == counts[s] - 1);
            }
        }
    }

    /** One sequence's tokens {@code tokens[0 .. count)} from position {@code start}; its last token's logits. */
    float[] step(int[] tokens, int count, int start) {
        return step(new int[][] {tokens}, new int[] {count}, new int[] {start});
    }

    int vocabulary() {
        return config.vocabularySize();
    }

    @Override
    public void close() {
        backend.close();
        arena.close();
    }
}
