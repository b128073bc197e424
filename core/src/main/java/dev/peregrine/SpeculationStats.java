package dev.peregrine;

/**
 * What speculative decoding did, for one request ({@link Completion#speculation()}) or for every
 * request of a generator ({@link GeneratorMetrics#speculation()}).
 *
 * @param draftedTokens      tokens proposed by the drafter and checked by the model
 * @param acceptedTokens     proposed tokens the model accepted
 * @param verifications      forward steps that checked a proposal
 * @param forwardPassesSaved forward steps of the model saved: tokens produced by verification
 *                           steps minus the steps themselves
 * @param plainSteps         decoding steps taken without drafting because speculation was timed
 *                           slower than plain decoding ({@link Speculation#withFallbackWhenSlower})
 */
public record SpeculationStats(long draftedTokens, long acceptedTokens, long verifications, long forwardPassesSaved,
                               long plainSteps) {
    /** Nothing speculated. */
    public static final SpeculationStats NONE = new SpeculationStats(0, 0, 0, 0, 0);

    /** Accepted / drafted tokens, or 0 when nothing was drafted. */
    public double acceptanceRate() {
        return draftedTokens == 0 ? 0 : (double) acceptedTokens / draftedTokens;
    }

    /** Proposed tokens accepted per verification step, or 0 when there was none. */
    public double meanAcceptedLength() {
        return verifications == 0 ? 0 : (double) acceptedTokens / verifications;
    }
}
