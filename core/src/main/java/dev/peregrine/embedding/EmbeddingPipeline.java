package dev.peregrine.embedding;

import dev.peregrine.EmbeddingOptions;
import dev.peregrine.ModelFormatException;
import dev.peregrine.PeregrineException;
import dev.peregrine.spi.Encoder;
import dev.peregrine.spi.EncoderBatch;
import dev.peregrine.tokenizer.Tokenizer;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import java.util.stream.IntStream;

/**
 * Texts to vectors with an {@link Encoder}: prefix, tokenize, truncate, sort by length, run in
 * padded batches, pool, normalise, and hand the vectors back in the order of the texts.
 * Thread-safe (the encoder serialises its runs).
 */
public final class EmbeddingPipeline {
    /** BERT vocabularies have [PAD] at 0; padding is masked out, so any valid id would do. */
    private static final int PAD_ID = 0;

    private final Encoder encoder;
    private final Tokenizer tokenizer;
    private final int modelMaxLength;
    /** Special tokens the tokenizer puts before and after a text ([CLS] and [SEP] for BERT). */
    private final int leadingSpecial;
    private final int trailingSpecial;
    /** Whether a mean takes in the prompt's tokens ({@link EncoderMetadata#includePrompt}). */
    private final boolean includePrompt;

    /** A pipeline whose pooling takes in every token, the prompt's too. */
    public EmbeddingPipeline(Encoder encoder, Tokenizer tokenizer, int modelMaxLength) {
        this(encoder, tokenizer, modelMaxLength, true);
    }

    /**
     * @param modelMaxLength the most tokens a text may have when the options do not say
     * @param includePrompt  whether mean pooling takes in a prompt's tokens; without, it leaves out
     *                       as many leading positions as sentence-transformers does (the prompt
     *                       encoded alone with its special tokens, less one)
     * @throws ModelFormatException    if the tokenizer's special tokens cannot be told apart from text
     * @throws IllegalArgumentException if {@code modelMaxLength} leaves no room for text next to them
     */
    public EmbeddingPipeline(Encoder encoder, Tokenizer tokenizer, int modelMaxLength, boolean includePrompt) {
        this.encoder = encoder;
        this.tokenizer = tokenizer;
        this.modelMaxLength = modelMaxLength;
        this.includePrompt = includePrompt;
        // Where the tokenizer puts its special tokens, found by comparing one word with and without them.
        int[] bare = tokenizer.encode("a", false, false);
        int[] full = tokenizer.encode("a", true, false);
        int at = indexOf(full, bare);
        if (bare.length == 0 || at < 0) {
            throw new ModelFormatException("the tokenizer's special tokens do not surround the text: 'a' encodes as "
                    + Arrays.toString(bare) + " alone and " + Arrays.toString(full) + " with special tokens");
        }
        this.leadingSpecial = at;
        this.trailingSpecial = full.length - at - bare.length;
        if (modelMaxLength <= leadingSpecial + trailingSpecial) {
            throw new IllegalArgumentException("a maximum length of " + modelMaxLength + " tokens leaves no room for text"
                    + " next to " + (leadingSpecial + trailingSpecial) + " special tokens");
        }
    }

    public int modelMaxLength() {
        return modelMaxLength;
    }

    public List<float[]> embed(List<String> texts, EmbeddingOptions options) {
        Objects.requireNonNull(options, "options");
        int maxLength = maxLength(options);
        int[][] ids = new int[texts.size()][];
        for (int i = 0; i < ids.length; i++) {
            String text = Objects.requireNonNull(texts.get(i), "text " + i + " is null");
            // Special-token text in the input is read as those tokens, as Hugging Face's tokenizers do.
            ids[i] = truncate(tokenizer.encode(options.prefix() + text, true, true), maxLength, options, i);
            if (ids[i].length == 0) {
                throw new IllegalArgumentException("text " + i + " encodes to no tokens");
            }
        }
        // Longest first: similar lengths share a batch (little padding) and the first batch sizes the buffers.
        int[] order = IntStream.range(0, ids.length).boxed()
                .sorted(Comparator.comparingInt((Integer i) -> ids[i].length).reversed())
                .mapToInt(Integer::intValue).toArray();
        int skipped = includePrompt || options.prefix().isEmpty() ? 0
                : tokenizer.encode(options.prefix(), true, true).length - 1;
        float[][] vectors = new float[ids.length][];
        int batchSize = encoder.maxBatchSize() > 0 ? Math.min(options.batchSize(), encoder.maxBatchSize()) : options.batchSize();
        for (int start = 0; start < order.length; start += batchSize) {
            int[] members = Arrays.copyOfRange(order, start, Math.min(order.length, start + batchSize));
            runBatch(members, ids, options, skipped, vectors);
        }
        if (options.normalize()) {
            for (float[] v : vectors) {
                Pooler.normalize(v);
            }
        }
        return List.of(vectors);
    }

    private void runBatch(int[] members, int[][] ids, EmbeddingOptions options, int skipped, float[][] vectors) {
        int size = members.length;
        // Members are sorted longest first; a model with a fixed input length takes nothing shorter.
        int length = encoder.fixedLength() > 0 ? encoder.fixedLength() : ids[members[0]].length;
        int[] inputIds = new int[size * length];
        int[] mask = new int[size * length];
        int[] types = new int[size * length];
        Arrays.fill(inputIds, PAD_ID);
        for (int r = 0; r < size; r++) {
            int[] seq = ids[members[r]];
            System.arraycopy(seq, 0, inputIds, r * length, seq.length);
            Arrays.fill(mask, r * length, r * length + seq.length, 1);
        }
        EncoderBatch batch = new EncoderBatch(size, length, inputIds, mask, types);
        int width = encoder.hiddenSize();
        try {
            encoder.run(batch, hidden -> {
                for (int r = 0; r < size; r++) {
                    vectors[members[r]] = Pooler.pool(options.pooling(), hidden, r, length, width, ids[members[r]].length,
                            skipped);
                }
            });
        } catch (PeregrineException e) {
            if (length <= modelMaxLength) {
                throw e;
            }
            // A maxLength option above the model's: the likely cause is a network with fewer positions.
            throw new PeregrineException(e.getMessage() + " (the batch's " + length + " tokens are more than the model's"
                    + " maximum of " + modelMaxLength + ", which EmbeddingOptions.maxLength raised: the network may have"
                    + " fewer positions)", e);
        }
    }

    private int maxLength(EmbeddingOptions options) {
        if (options.maxLength() == 0) {
            return modelMaxLength;
        }
        if (encoder.fixedLength() > 0 && options.maxLength() > encoder.fixedLength()) {
            throw new IllegalArgumentException("maxLength " + options.maxLength() + " is more than the "
                    + encoder.fixedLength() + " positions the model's inputs have");
        }
        if (options.maxLength() <= leadingSpecial + trailingSpecial) {
            throw new IllegalArgumentException("maxLength " + options.maxLength() + " leaves no room for text next to "
                    + (leadingSpecial + trailingSpecial) + " special tokens");
        }
        return options.maxLength();
    }

    /** Cuts a sequence to {@code max} tokens, keeping its closing special tokens, or fails. */
    private int[] truncate(int[] seq, int max, EmbeddingOptions options, int index) {
        if (seq.length <= max) {
            return seq;
        }
        if (options.truncation() == EmbeddingOptions.Truncation.FAIL) {
            throw new IllegalArgumentException("text " + index + " is " + seq.length + " tokens long, more than the "
                    + "maximum of " + max + " (truncation is FAIL)");
        }
        int[] cut = Arrays.copyOf(seq, max);
        System.arraycopy(seq, seq.length - trailingSpecial, cut, max - trailingSpecial, trailingSpecial);
        return cut;
    }

    private static int indexOf(int[] haystack, int[] needle) {
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            if (Arrays.equals(haystack, i, i + needle.length, needle, 0, needle.length)) {
                return i;
            }
        }
        return -1;
    }
}
