package dev.peregrine.engine;

import dev.peregrine.Drafter;
import dev.peregrine.GenerationConfig;
import dev.peregrine.SpeculationStats;
import dev.peregrine.kv.KvCacheFullException;
import dev.peregrine.sampling.Sampler;

/**
 * One request's speculative decoding: where its drafts come from (a {@link Drafter}, or a draft
 * model run by a {@link DraftModelRunner}), the adaptive draft length, the current draft and the
 * statistics. The {@link Scheduler} asks for drafts before a step and {@link Generation} verifies
 * them after it; both on the scheduler thread.
 */
public final class Speculator implements AutoCloseable {
    private final Drafter drafter;
    private final Scheduler draftModel;
    private final int draftContextLength;
    private final int vocabularySize;
    private final int maxDraft;
    private final boolean adaptive;
    private final int maxBatchSequences;
    private final SpeculationGovernor governor; // null: speculate whatever it costs
    private final DraftBuffer draft;
    private int length;
    private boolean stopped; // the draft model was closed: never drafts again

    // Bound by the generation.
    private SequenceState target;
    private GenerationConfig config;
    private Sampler targetSampler;
    private float[] row;

    // A host drafter's copy of the sequence, so that it cannot disturb the real one.
    private int[] context = new int[0];

    // A draft model's sequence: the target's history followed by this step's drafts.
    private SequenceState draftSeq;
    private Sampler draftSampler;
    private int synced; // leading tokens of draftSeq known to equal the target's history
    int wanted;         // tokens the runner drafts this step (0: none)

    private long drafted;
    private long accepted;
    private long verifications;
    private long saved;
    private int lastDrafted;
    private int lastAccepted;
    private int lastSaved;

    private Speculator(Drafter drafter, Scheduler draftModel, int draftContextLength, int vocabularySize, int maxDraft,
                       boolean adaptive, int maxBatchSequences, boolean fallbackWhenSlower) {
        this.drafter = drafter;
        this.draftModel = draftModel;
        this.draftContextLength = draftContextLength;
        this.vocabularySize = vocabularySize;
        this.maxDraft = maxDraft;
        this.adaptive = adaptive;
        this.maxBatchSequences = maxBatchSequences;
        this.governor = fallbackWhenSlower ? new SpeculationGovernor(draftModel != null) : null;
        this.draft = new DraftBuffer(maxDraft, vocabularySize);
        this.length = maxDraft;
    }

    public static Speculator withDrafter(Drafter drafter, int vocabularySize, int maxDraft, boolean adaptive,
                                         int maxBatchSequences, boolean fallbackWhenSlower) {
        return new Speculator(drafter, null, 0, vocabularySize, maxDraft, adaptive, maxBatchSequences, fallbackWhenSlower);
    }

    /** Drafting with the model that {@code draftModel} schedules (its vocabulary must be the target's). */
    public static Speculator withDraftModel(Scheduler draftModel, int draftContextLength, int vocabularySize,
                                            int maxDraft, boolean adaptive, int maxBatchSequences,
                                            boolean fallbackWhenSlower) {
        return new Speculator(null, draftModel, draftContextLength, vocabularySize, maxDraft, adaptive, maxBatchSequences,
                fallbackWhenSlower);
    }

    /**
     * Binds the speculator to its generation. Called by the generation's constructor, on the
     * submitting thread: the vocabulary-sized buffers a draft model needs are allocated here, not
     * on the scheduler thread.
     */
    void bind(SequenceState target, GenerationConfig config, Sampler targetSampler) {
        this.target = target;
        this.config = config;
        this.targetSampler = targetSampler;
        if (draftModel != null) {
            draftSeq = new SequenceState(draftModel.kvCache(), draftContextLength);
            draftSampler = new Sampler(config, vocabularySize);
            if (!config.isGreedy()) {
                row();
                draft.allocateRows();
            }
        }
    }

    /** The draft model's scheduler, or null for a drafter. */
    Scheduler draftModel() {
        return draftModel;
    }

    int maxBatchSequences() {
        return maxBatchSequences;
    }

    /** Whether the request drafts this step as far as cost goes: always, or while it pays (see SpeculationGovernor). */
    boolean speculatesNow() {
        return !stopped && (governor == null || governor.speculate());
    }

    /** Stops drafting for good (its draft model was closed) and gives back the draft model's KV blocks. */
    void stop() {
        stopped = true;
        close();
    }

    /**
     * One decoding step of the request, for the governor: its wall time (drafting included), the
     * tokens it committed and whether it verified drafts. Returns whether the governor had it
     * decode plainly.
     */
    boolean recordStepTime(long nanos, int committed, boolean speculated) {
        return governor != null && governor.record(nanos, committed, speculated);
    }

    /** Tokens to draft next step (before the caller's limits). */
    int nextLength() {
        return length;
    }

    DraftBuffer draft() {
        return draft;
    }

    /** A scratch row of vocabulary size, for the target's distribution during verification. */
    float[] row() {
        if (row == null) {
            row = new float[vocabularySize];
        }
        return row;
    }

    /** Asks the host drafter for up to {@code k} tokens after the target's history; returns how many it gave. */
    int proposeWithDrafter(int k) {
        int n = target.length();
        if (context.length < n) {
            context = new int[Math.max(n, context.length * 2)];
        }
        System.arraycopy(target.tokenArray(), 0, context, 0, n);
        draft.reset(k);
        drafter.propose(context, n, draft);
        return draft.size();
    }

    /**
     * Brings the draft model's sequence in line with the target's history (keeping the part they
     * share, so only the tokens since the last step are evaluated) and reserves KV room for
     * {@code k} drafts. Returns the tokens to evaluate before the first draft, or 0 with
     * {@link #wanted} set to 0 when it cannot draft this step.
     */
    int prepareDraftSequence(int k) {
        int n = target.length();
        k = Math.min(k, draftContextLength - n);
        draft.reset(k);
        wanted = 0;
        if (k <= 0) {
            return 0;
        }
        int[] history = target.tokenArray();
        int same = synced;
        int common = Math.min(draftSeq.length(), n);
        while (same < common && draftSeq.token(same) == history[same]) {
            same++;
        }
        draftSeq.rewind(draftSeq.length() - same);
        for (int i = same; i < n; i++) {
            draftSeq.append(history[i]);
        }
        synced = n;
        int pending = draftSeq.prepareForGeneration();
        try {
            draftSeq.kv().reserve(pending + k - 1);
        } catch (KvCacheFullException e) {
            draftSeq.evict(); // give the draft model's blocks back; it catches up when there is room
            return 0;
        }
        wanted = k;
        return pending;
    }

    SequenceState draftSequence() {
        return draftSeq;
    }

    /**
     * Candidates per row {@link #sampleDraftToken} can do with: greedy drafting needs the argmax
     * only ({@link Sampler#candidatesNeeded}); sampled drafts need the draft model's whole
     * distribution (0).
     */
    int draftCandidatesNeeded() {
        return config.isGreedy() ? draftSampler.candidatesNeeded() : 0;
    }

    /**
     * Picks the next draft token from the draft model's output row after its sequence: the argmax
     * for greedy decoding, else a draw (with the request's random generator) from the draft's
     * distribution under the same temperature, filters and penalties as the target's.
     */
    void sampleDraftToken(LogitRows rows, int row) {
        int token;
        if (config.isGreedy()) {
            token = rows.sample(draftSampler, row, draftSeq.tokenArray(), draftSeq.length());
            draft.add(token);
        } else {
            float[] q = row();
            draftSampler.distribution(rows.logits(), rows.offset(row), draftSeq.tokenArray(), draftSeq.length(), q);
            token = DraftBuffer.draw(q, vocabularySize, targetSampler.nextUniform());
            draft.addNormalised(token, q, 1.0);
        }
        draftSeq.append(token);
    }

    /** Records a verification and adapts the draft length: longer after a full acceptance, shorter after a rejection. */
    void recordVerification(int draftedTokens, int acceptedTokens, int committedTokens) {
        lastDrafted = draftedTokens;
        lastAccepted = acceptedTokens;
        lastSaved = Math.max(0, committedTokens - 1);
        drafted += draftedTokens;
        accepted += acceptedTokens;
        verifications++;
        saved += lastSaved;
        if (adaptive) {
            length = acceptedTokens == draftedTokens ? Math.min(maxDraft, length + 2) : Math.max(1, length - 1);
        }
    }

    int lastDrafted() {
        return lastDrafted;
    }

    int lastAccepted() {
        return lastAccepted;
    }

    int lastSaved() {
        return lastSaved;
    }

    public SpeculationStats stats() {
        return new SpeculationStats(drafted, accepted, verifications, saved, governor == null ? 0 : governor.plainSteps());
    }

    /** Gives back the draft model's KV blocks. */
    @Override
    public void close() {
        if (draftSeq != null) {
            draftSeq.close();
        }
    }

    @Override
    public String toString() {
        return "Speculator[" + (drafter != null ? drafter : "draft model") + ", length " + length + "/" + maxDraft + ", "
                + draft + "]";
    }
}
