package dev.peregrine;

import dev.peregrine.engine.GenerationLoop;
import dev.peregrine.engine.SequenceState;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.function.Consumer;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;

/**
 * Generates text with a {@link Model}. Thread-safe: any number of threads may generate at once;
 * each request gets its own sequence in the shared paged KV cache.
 *
 * <p>Prompts given as text are encoded with {@link Model#encode}: BOS added as the model wants it,
 * and the text of special tokens (e.g. from a chat template) recognised as those tokens.
 */
public final class Generator {
    private final Model model;

    Generator(Model model) {
        this.model = model;
    }

    /** Generates a completion of {@code prompt}. */
    public Completion generate(String prompt, GenerationConfig config) {
        return generate(model.encode(prompt), config, t -> { });
    }

    /** Generates a completion of {@code prompt}, passing each token to {@code onToken} as it is made. */
    public Completion generate(String prompt, GenerationConfig config, Consumer<GeneratedToken> onToken) {
        return generate(model.encode(prompt), config, onToken);
    }

    /** Generates a completion of a tokenised prompt (used as given: no BOS is added). */
    public Completion generate(int[] promptTokens, GenerationConfig config, Consumer<GeneratedToken> onToken) {
        model.ensureOpen();
        try (SequenceState seq = new SequenceState(model.engine())) {
            seq.append(promptTokens);
            GenerationLoop loop = new GenerationLoop(seq, promptTokens, config, model.tokenizer(), model.loadNanos());
            for (GeneratedToken t = loop.next(); t != null; t = loop.next()) {
                onToken.accept(t);
            }
            return loop.completion();
        }
    }

    /**
     * Streams the tokens of a completion as they are generated; generation runs in the thread
     * that consumes the stream. Close the stream (try-with-resources) if you stop early, so its
     * KV-cache blocks are freed at once.
     */
    public Stream<GeneratedToken> stream(String prompt, GenerationConfig config) {
        model.ensureOpen();
        int[] prompt0 = model.encode(prompt);
        SequenceState seq = new SequenceState(model.engine());
        seq.append(prompt0);
        GenerationLoop loop = new GenerationLoop(seq, prompt0, config, model.tokenizer(), model.loadNanos());
        Iterator<GeneratedToken> it = new Iterator<>() {
            private GeneratedToken next;
            private boolean done;

            @Override
            public boolean hasNext() {
                if (next == null && !done) {
                    next = loop.next();
                    if (next == null) {
                        done = true;
                        seq.close();
                    }
                }
                return next != null;
            }

            @Override
            public GeneratedToken next() {
                if (!hasNext()) {
                    throw new NoSuchElementException();
                }
                GeneratedToken t = next;
                next = null;
                return t;
            }
        };
        return StreamSupport.stream(Spliterators.spliteratorUnknownSize(it, Spliterator.ORDERED | Spliterator.NONNULL), false)
                .onClose(seq::close);
    }
}
