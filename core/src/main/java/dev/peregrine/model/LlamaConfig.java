package dev.peregrine.model;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufMetadata;
import java.nio.file.Path;

/**
 * Hyper-parameters of a Llama-family decoder.
 *
 * @param ropeDimensions how many leading elements of each head are rotated (usually headDim)
 * @param contextLength  the context the model was trained with, as its file states it
 */
public record LlamaConfig(
        int dim,
        int layers,
        int heads,
        int kvHeads,
        int headDim,
        int ffnDim,
        int vocabularySize,
        int contextLength,
        float rmsEps,
        float ropeTheta,
        int ropeDimensions) {

    public LlamaConfig {
        check(dim > 0 && layers > 0 && heads > 0 && kvHeads > 0 && headDim > 0 && ffnDim > 0
                && vocabularySize > 0 && contextLength > 0, "sizes must be positive: " + this);
        check(heads % kvHeads == 0, "head count " + heads + " is not a multiple of the KV head count " + kvHeads);
        check(ropeDimensions > 0 && ropeDimensions % 2 == 0 && ropeDimensions <= headDim,
                "rope dimension count " + ropeDimensions + " must be even and at most the head size " + headDim);
        check(rmsEps > 0 && Float.isFinite(rmsEps), "rms epsilon must be positive, got " + rmsEps);
        check(ropeTheta > 0 && Float.isFinite(ropeTheta), "rope base must be positive, got " + ropeTheta);
        check((long) heads * headDim <= Integer.MAX_VALUE / 4 && (long) dim * ffnDim < (1L << 40),
                "sizes are implausibly large: " + this);
    }

    public int queryDim() {
        return heads * headDim;
    }

    public int kvDim() {
        return kvHeads * headDim;
    }

    /** Reads the {@code llama.*} keys llama.cpp writes. */
    public static LlamaConfig fromGguf(Path file, GgufMetadata m, int vocabularySize) {
        String arch = m.getString("general.architecture");
        if (!arch.equals("llama")) {
            throw new ModelFormatException(file, -1,
                    "architecture '" + arch + "' is not supported (supported: llama)");
        }
        int dim = m.getInt("llama.embedding_length");
        int heads = m.getInt("llama.attention.head_count");
        if (heads <= 0 || dim <= 0 || dim % heads != 0) {
            throw new ModelFormatException(file, -1, "llama.embedding_length " + dim
                    + " is not a positive multiple of llama.attention.head_count " + heads);
        }
        int headDim = m.optInt("llama.attention.key_length").orElse(dim / heads);
        int ropeDims = m.optInt("llama.rope.dimension_count").orElse(headDim);
        try {
            return new LlamaConfig(
                    dim,
                    m.getInt("llama.block_count"),
                    heads,
                    m.optInt("llama.attention.head_count_kv").orElse(heads),
                    headDim,
                    m.getInt("llama.feed_forward_length"),
                    vocabularySize,
                    m.optInt("llama.context_length").orElse(2048),
                    m.optFloat("llama.attention.layer_norm_rms_epsilon").orElse(1e-5f),
                    m.optFloat("llama.rope.freq_base").orElse(10000f),
                    ropeDims);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(file, -1, "invalid llama hyper-parameters: " + e.getMessage());
        }
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }
}
