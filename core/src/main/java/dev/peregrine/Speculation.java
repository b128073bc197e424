package dev.peregrine;

import dev.peregrine.engine.PromptLookup;
import dev.peregrine.engine.Speculator;
import dev.peregrine.tokenizer.Tokenizer;
import java.util.Map;
import java.util.Objects;
import java.util.WeakHashMap;

/**
 * Speculative decoding for a request ({@link GenerationConfig#withSpeculation}): a cheap drafter
 * proposes several tokens, the model scores them all in one forward step and keeps the longest
 * run it agrees with, plus one token of its own. Lossless: greedy decoding gives exactly the
 * tokens it gives without speculation, and sampling draws from exactly the same distribution
 * (rejection sampling, Leviathan et al. 2023 / Chen et al. 2023, with the config's temperature,
 * filters and penalties applied to both the model's and the drafter's distributions).
 *
 * <p>Drafters: a smaller model sharing the tokenizer ({@link #draftModel}), n-gram matches
 * against the text so far ({@link #promptLookup}), or the host's own ({@link #drafter}).
 *
 * <p>The draft length adapts to how well drafts do (it shrinks after a rejection and grows after
 * a fully accepted draft, between 1 and {@code maxDraft}), a request speculates only while the
 * batch holds at most {@link #maxBatchSequences()} sequences (a large batch already reads each
 * weight once for many tokens, so verifying drafts stops paying), and it stops drafting while its
 * speculative steps are timed slower per token than plain ones ({@link #withFallbackWhenSlower}).
 *
 * <p>With sampling and drafts that come with their distributions (a draft model's), speculation
 * uses the request's random generator for its accept/reject decisions, so a seeded request gives
 * different (equally distributed) tokens with and without it, and reproduces its tokens only when
 * it speculates the same way (same drafter, same batch regime, no drafts dropped for want of KV
 * cache room, and, since the fallback decides from measured times,
 * {@code withFallbackWhenSlower(false)}). Draft tokens without a distribution (prompt lookup, a
 * {@link Drafter} that adds tokens alone) are verified with the draws plain sampling makes, so a
 * seeded request gives exactly its tokens without speculation, however much was drafted.
 */
public final class Speculation {
    /**
     * Default for {@link #maxBatchSequences()}: measured on the CPU backend (see
     * docs/PERFORMANCE.md), speculation stops paying once a handful of sequences share a step.
     */
    public static final int DEFAULT_MAX_BATCH_SEQUENCES = 4;
    /**
     * The most tokens a step may draft: each is a row the target verifies in the step (and, for
     * sampled drafts, a vocabulary-sized row of probabilities kept per request).
     */
    public static final int MAX_DRAFT = 64;

    private final Model draftModel;
    private final Drafter drafter;
    private final String description;
    private final int maxDraft;
    private final boolean adaptive;
    private final int maxBatchSequences;
    private final boolean fallbackWhenSlower;

    private Speculation(Model draftModel, Drafter drafter, String description, int maxDraft, boolean adaptive,
                        int maxBatchSequences, boolean fallbackWhenSlower) {
        if (maxDraft < 1 || maxDraft > MAX_DRAFT) {
            throw new IllegalArgumentException("maxDraft must be 1 to " + MAX_DRAFT + ", got " + maxDraft);
        }
        if (maxBatchSequences < 1) {
            throw new IllegalArgumentException("maxBatchSequences must be >= 1, got " + maxBatchSequences);
        }
        this.draftModel = draftModel;
        this.drafter = drafter;
        this.description = description;
        this.maxDraft = maxDraft;
        this.adaptive = adaptive;
        this.maxBatchSequences = maxBatchSequences;
        this.fallbackWhenSlower = fallbackWhenSlower;
    }

    /**
     * Drafts with a smaller model that shares the target's tokenizer (same vocabulary size, same
     * token pieces; checked when a request using it is submitted). The draft model keeps its own
     * KV state per request and runs its forward steps on the target's scheduler thread, never at
     * the same time as its own generations. Requests submitted after it is closed fail; requests
     * running when it is closed go on without speculation (the same tokens, at plain speed).
     *
     * @param maxDraft the most tokens drafted per step
     */
    public static Speculation draftModel(Model draft, int maxDraft) {
        Objects.requireNonNull(draft, "draft");
        draft.ensureOpen();
        draft.scheduler(); // fails here, clearly, for a model that cannot generate
        return new Speculation(draft, null, "draftModel(" + draft.path().getFileName() + ", " + maxDraft + ")",
                maxDraft, true, DEFAULT_MAX_BATCH_SEQUENCES, true);
    }

    /**
     * Drafts by prompt lookup: the longest n-gram ({@code maxNgram} down to {@code minNgram}
     * tokens) that ends the sequence and occurred earlier in it (prompt or output) proposes the
     * tokens that followed it then. No second model; pays off when the output repeats its input
     * (summaries, code edits, extraction, quoting).
     */
    public static Speculation promptLookup(int minNgram, int maxNgram, int maxDraft) {
        return new Speculation(null, new PromptLookup(minNgram, maxNgram),
                "promptLookup(" + minNgram + ".." + maxNgram + ", " + maxDraft + ")", maxDraft, true,
                DEFAULT_MAX_BATCH_SEQUENCES, true);
    }

    /** Drafts with the host's own {@link Drafter}. */
    public static Speculation drafter(Drafter drafter, int maxDraft) {
        Objects.requireNonNull(drafter, "drafter");
        return new Speculation(null, drafter, "drafter(" + drafter + ", " + maxDraft + ")", maxDraft, true,
                DEFAULT_MAX_BATCH_SEQUENCES, true);
    }

    /** Whether the draft length adapts (default true); without it every step drafts {@code maxDraft} tokens. */
    public Speculation withAdaptiveLength(boolean on) {
        return new Speculation(draftModel, drafter, description, maxDraft, on, maxBatchSequences, fallbackWhenSlower);
    }

    /** Speculate only while the batch holds at most {@code n} sequences (default {@link #DEFAULT_MAX_BATCH_SEQUENCES}). */
    public Speculation withMaxBatchSequences(int n) {
        return new Speculation(draftModel, drafter, description, maxDraft, adaptive, n, fallbackWhenSlower);
    }

    /**
     * Whether a request stops drafting while speculation makes it slower (default true): its
     * decoding steps are timed, drafting included, and compared per committed token with plain
     * steps, timed now and then; while speculation is the slower, the request decodes plainly and
     * tries again after a wait that doubles each time it loses again ({@link
     * SpeculationStats#plainSteps()} counts those steps). Off, it drafts at every step it can.
     */
    public Speculation withFallbackWhenSlower(boolean on) {
        return new Speculation(draftModel, drafter, description, maxDraft, adaptive, maxBatchSequences, on);
    }

    public boolean fallbackWhenSlower() {
        return fallbackWhenSlower;
    }

    public int maxDraft() {
        return maxDraft;
    }

    public boolean adaptiveLength() {
        return adaptive;
    }

    public int maxBatchSequences() {
        return maxBatchSequences;
    }

    /** The per-request state for a generation with {@code target}; checks a draft model's tokenizer. */
    Speculator newSpeculator(Model target) {
        int vocabulary = target.vocabularySize();
        if (draftModel == null) {
            return Speculator.withDrafter(drafter, vocabulary, maxDraft, adaptive, maxBatchSequences, fallbackWhenSlower);
        }
        draftModel.ensureOpen();
        checkSameTokenizer(target, draftModel);
        return Speculator.withDraftModel(draftModel.scheduler(), draftModel.contextLength(), vocabulary, maxDraft,
                adaptive, maxBatchSequences, fallbackWhenSlower);
    }

    /** Draft models whose tokenizer was found equal to a target's, per target (weak keys: closed models go). */
    private static final Map<Model, Map<Model, Boolean>> CHECKED = new WeakHashMap<>();

    /** Rejects a draft model whose tokens are not the target's: its drafts would be meaningless. */
    static void checkSameTokenizer(Model target, Model draft) {
        synchronized (CHECKED) {
            Map<Model, Boolean> ok = CHECKED.get(target);
            if (ok != null && ok.containsKey(draft)) {
                return;
            }
        }
        Tokenizer t = target.tokenizer();
        Tokenizer d = draft.tokenizer();
        if (t.vocabularySize() != d.vocabularySize()) {
            throw new IllegalArgumentException("the draft model " + draft.path().getFileName() + " has "
                    + d.vocabularySize() + " tokens but the target " + target.path().getFileName() + " has "
                    + t.vocabularySize() + ": a draft model must share the target's tokenizer");
        }
        for (int id = 0; id < t.vocabularySize(); id++) {
            if (!t.piece(id).equals(d.piece(id))) {
                throw new IllegalArgumentException("the draft model " + draft.path().getFileName() + " has token "
                        + id + " = '" + d.piece(id) + "' where the target " + target.path().getFileName() + " has '"
                        + t.piece(id) + "': a draft model must share the target's tokenizer");
            }
        }
        synchronized (CHECKED) {
            CHECKED.computeIfAbsent(target, k -> new WeakHashMap<>()).put(draft, Boolean.TRUE);
        }
    }

    @Override
    public String toString() {
        return "Speculation[" + description + (adaptive ? ", adaptive" : ", fixed length")
                + ", maxBatchSequences=" + maxBatchSequences + (fallbackWhenSlower ? ", falls back when slower" : "") + "]";
    }
}
