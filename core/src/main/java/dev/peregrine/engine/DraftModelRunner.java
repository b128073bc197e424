package dev.peregrine.engine;

import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BatchLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Drafts with a draft model for the requests of one target scheduler: all of a step's drafting
 * sequences together, one draft-model forward pass per draft position (plus chunked catch-up of
 * long histories, e.g. a new request's prompt). It runs on the target's scheduler thread inside
 * {@link Scheduler#runExclusive} of the draft model, so it never uses the draft model's graph at
 * the same time as the draft model's own scheduler (or another target's runner) does.
 */
final class DraftModelRunner {
    private final Scheduler draftModel;
    private final BatchLayout layout;
    private final LogitRows logitRows;
    private final List<Speculator> work = new ArrayList<>();
    private final List<Speculator> stepped = new ArrayList<>();
    private int[] stepTokens = new int[16];
    private boolean candidateSampling;
    private final Runnable runLocked = this::runLocked;

    DraftModelRunner(Scheduler draftModel) {
        this.draftModel = draftModel;
        this.layout = new BatchLayout(draftModel.kvCache().blockSize());
        this.logitRows = new LogitRows(draftModel.vocabularySize(), 0, draftModel.maxBatchTokens());
    }

    Scheduler draftModel() {
        return draftModel;
    }

    /** Queues a request for this step's drafting, unless a step of the draft model could not hold one more sequence. */
    boolean add(Speculator s) {
        if (work.size() >= draftModel.maxBatchTokens()) {
            return false;
        }
        work.add(s);
        return true;
    }

    List<Speculator> work() {
        return work;
    }

    /**
     * Drafts up to {@code k} tokens for each queued request (k given to {@code add}'s caller
     * through {@link Speculator#prepareDraftSequence}); the drafts end up in each request's
     * {@link Speculator#draft()}. With {@code candidateSampling}, greedy drafts are drawn from
     * the draft model's best candidate per row instead of whole logits rows (see
     * {@link Scheduler#setCandidateSampling}).
     */
    void run(boolean candidateSampling) {
        this.candidateSampling = candidateSampling;
        if (!work.isEmpty()) {
            draftModel.runExclusive(runLocked);
        }
    }

    void clear() {
        work.clear();
    }

    private void runLocked() {
        int budget = draftModel.maxBatchTokens();
        int total = 0;
        for (Speculator s : work) {
            total += s.prepareDraftSequence(s.wanted);
        }
        // Catch up long histories in chunks (no logits) until every sequence's pending tokens fit one step.
        while (total > budget) {
            beginStep();
            int used = 0;
            for (Speculator s : work) {
                SequenceState d = s.draftSequence();
                int n = s.wanted == 0 ? 0 : Math.min(d.pendingTokens() - 1, budget - used);
                if (n > 0) {
                    addToStep(s, n, false);
                    used += n;
                }
            }
            forwardAndAdvance();
            total -= used;
        }
        // One step per draft position: each drafting sequence evaluates its pending tokens (the
        // history not yet seen, then the previous draft token) and draws its next draft token.
        while (true) {
            beginStep();
            for (Speculator s : work) {
                if (s.wanted > 0 && s.draft().size() < s.wanted) {
                    addToStep(s, s.draftSequence().pendingTokens(), true);
                }
            }
            if (layout.tokenCount == 0) {
                break;
            }
            forwardAndAdvance();
            for (int i = 0; i < stepped.size(); i++) {
                stepped.get(i).sampleDraftToken(logitRows, i);
            }
        }
    }

    /** Candidates per row every drafting request of the step can do with, or 0 for whole rows. */
    private int candidatesPerRow() {
        if (!candidateSampling || layout.logitCount == 0) {
            return 0;
        }
        int most = 0;
        for (int i = 0; i < stepped.size(); i++) {
            int needed = stepped.get(i).draftCandidatesNeeded();
            if (needed == 0) {
                return 0;
            }
            most = Math.max(most, needed);
        }
        return most <= Backend.MAX_CANDIDATES ? most : 0;
    }

    private void beginStep() {
        layout.clear();
        stepped.clear();
    }

    private void addToStep(Speculator s, int n, boolean wantLogits) {
        SequenceState d = s.draftSequence();
        int start = d.kv().length();
        int seq = layout.addSequence(d.kv().blockTable(), d.kv().blockCount());
        for (int j = 0; j < n; j++) {
            layout.addToken(seq, d.token(start + j), start + j, wantLogits && j == n - 1);
        }
        if (stepped.size() == stepTokens.length) {
            stepTokens = Arrays.copyOf(stepTokens, stepTokens.length * 2);
        }
        stepTokens[stepped.size()] = n;
        stepped.add(s);
    }

    private void forwardAndAdvance() {
        int candidates = candidatesPerRow();
        if (candidates > 0) {
            draftModel.graph().forwardCandidates(layout, draftModel.sampledVocabularySize(),
                    logitRows.candidateRows(layout.logitCount, candidates));
        } else {
            draftModel.graph().forward(layout, logitRows.fullRows(layout.logitCount));
        }
        for (int i = 0; i < stepped.size(); i++) {
            SequenceState d = stepped.get(i).draftSequence();
            d.kv().advance(d.kv().length() + stepTokens[i]);
        }
    }
}
