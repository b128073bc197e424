package dev.peregrine;

import java.util.Objects;

/**
 * How {@link Model#embed(java.util.List, EmbeddingOptions)} turns texts into vectors. Immutable;
 * {@code withX} methods return copies. Start from {@link Model#embeddingOptions()}, which holds
 * what the model's metadata says (pooling, normalisation, prefixes, maximum length), rather than
 * from {@link #defaults()}.
 *
 * @param pooling       how token states become one vector
 * @param normalize     scale each vector to unit length (L2), so a dot product is the cosine
 * @param queryPrefix   put before texts embedded as queries (e5: "query: ")
 * @param passagePrefix put before texts embedded as passages (e5: "passage: ")
 * @param input         which prefix applies: none, the query prefix or the passage prefix
 * @param batchSize     the most texts run through the model together; texts are sorted by length
 *                      and padded per batch, so similar lengths share a batch. A model whose results
 *                      would depend on the other texts of a batch (dynamically quantised int8 ONNX
 *                      models) runs one text at a time whatever this says
 * @param truncation    what happens to a text longer than the maximum length
 * @param maxLength     the most tokens (special tokens included) a text may have; 0 = the model's maximum
 */
public record EmbeddingOptions(Pooling pooling, boolean normalize, String queryPrefix, String passagePrefix,
                               Input input, int batchSize, Truncation truncation, int maxLength) {

    /** Which texts these are: e5-style models are trained with "query: " and "passage: " in front. */
    public enum Input { TEXT, QUERY, PASSAGE }

    /** What to do with a text longer than the maximum length. */
    public enum Truncation {
        /** Keep the first tokens (and the closing special token), as Hugging Face's tokenizers do. */
        TRUNCATE,
        /** Throw {@link IllegalArgumentException} naming the text. */
        FAIL
    }

    public EmbeddingOptions {
        Objects.requireNonNull(pooling, "pooling");
        Objects.requireNonNull(queryPrefix, "queryPrefix");
        Objects.requireNonNull(passagePrefix, "passagePrefix");
        Objects.requireNonNull(input, "input");
        Objects.requireNonNull(truncation, "truncation");
        if (batchSize < 1) {
            throw new IllegalArgumentException("batchSize must be >= 1, got " + batchSize);
        }
        if (maxLength < 0) {
            throw new IllegalArgumentException("maxLength must be >= 0 (0 = the model's), got " + maxLength);
        }
    }

    /** Mean pooling, normalised, no prefixes, batches of 32, truncation at the model's maximum length. */
    public static EmbeddingOptions defaults() {
        return new EmbeddingOptions(Pooling.MEAN, true, "", "", Input.TEXT, 32, Truncation.TRUNCATE, 0);
    }

    /** The prefix that {@link #input} puts before each text. */
    public String prefix() {
        return switch (input) {
            case TEXT -> "";
            case QUERY -> queryPrefix;
            case PASSAGE -> passagePrefix;
        };
    }

    public EmbeddingOptions withPooling(Pooling p) {
        return new EmbeddingOptions(p, normalize, queryPrefix, passagePrefix, input, batchSize, truncation, maxLength);
    }

    public EmbeddingOptions withNormalize(boolean on) {
        return new EmbeddingOptions(pooling, on, queryPrefix, passagePrefix, input, batchSize, truncation, maxLength);
    }

    public EmbeddingOptions withPrefixes(String query, String passage) {
        return new EmbeddingOptions(pooling, normalize, query, passage, input, batchSize, truncation, maxLength);
    }

    /** The same options for texts that are queries (the query prefix goes in front). */
    public EmbeddingOptions forQueries() {
        return withInput(Input.QUERY);
    }

    /** The same options for texts that are passages (the passage prefix goes in front). */
    public EmbeddingOptions forPassages() {
        return withInput(Input.PASSAGE);
    }

    public EmbeddingOptions withInput(Input in) {
        return new EmbeddingOptions(pooling, normalize, queryPrefix, passagePrefix, in, batchSize, truncation, maxLength);
    }

    public EmbeddingOptions withBatchSize(int n) {
        return new EmbeddingOptions(pooling, normalize, queryPrefix, passagePrefix, input, n, truncation, maxLength);
    }

    public EmbeddingOptions withTruncation(Truncation t) {
        return new EmbeddingOptions(pooling, normalize, queryPrefix, passagePrefix, input, batchSize, t, maxLength);
    }

    public EmbeddingOptions withMaxLength(int n) {
        return new EmbeddingOptions(pooling, normalize, queryPrefix, passagePrefix, input, batchSize, truncation, n);
    }
}
