package dev.peregrine.engine;

import static dev.peregrine.engine.SpeculationGovernor.FIRST_WAIT;
import static dev.peregrine.engine.SpeculationGovernor.HISTORY;
import static dev.peregrine.engine.SpeculationGovernor.RECHECK_AFTER;
import static dev.peregrine.engine.SpeculationGovernor.WINDOW;
import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/**
 * The governor's decisions from step times given by the test: a plain step costs 1,000 ns and
 * makes one token; a speculative step costs {@code cost} and makes {@code tokens}.
 */
class SpeculationGovernorTest {
    private static final long PLAIN = 1_000;

    /** Runs {@code steps} decoding steps as the scheduler would; returns how many drafted. */
    private static int run(SpeculationGovernor g, int steps, long cost, int tokens) {
        int speculative = 0;
        for (int i = 0; i < steps; i++) {
            if (g.speculate()) {
                speculative++;
                assertThat(g.record(cost, tokens, true)).isFalse();
            } else {
                assertThat(g.record(PLAIN, 1, false)).isTrue();
            }
        }
        return speculative;
    }

    @Test
    void speculationThatPaysKeepsGoingWithAPlainTimingNowAndThen() {
        SpeculationGovernor g = new SpeculationGovernor(true);
        // 3 tokens for 1.5 plain steps: twice as fast.
        int steps = 1 + WINDOW + WINDOW + RECHECK_AFTER * WINDOW + WINDOW;
        int speculative = run(g, steps, 1_500, 3);
        assertThat(steps - speculative).as("plain steps: two timings").isEqualTo(2 * WINDOW);
        assertThat(g.plainSteps()).isEqualTo(2 * WINDOW);
        assertThat(g.speculate()).isTrue();
    }

    @Test
    void slowerSpeculationWaitsLongerEachTimeItLosesAgain() {
        SpeculationGovernor g = new SpeculationGovernor(false);
        // 2 tokens for 3 plain steps' time: slower.
        run(g, 1 + WINDOW, 3_000, 2);                 // the untimed start, then a speculative window
        assertThat(g.speculate()).as("plain is timed next").isFalse();
        run(g, WINDOW, 0, 0);                         // plain timing: speculation loses
        assertThat(g.speculate()).isFalse();
        assertThat(run(g, FIRST_WAIT, 3_000, 2)).as("the first wait").isZero();
        assertThat(g.speculate()).as("tried again after the wait").isTrue();
        assertThat(run(g, 1 + WINDOW, 3_000, 2)).isEqualTo(1 + WINDOW);
        assertThat(run(g, 2 * FIRST_WAIT - 1, 3_000, 2)).as("a wait twice as long").isZero();
        assertThat(g.speculate()).isFalse();
        run(g, 1, 3_000, 2);
        assertThat(g.speculate()).isTrue();
        assertThat(g.plainSteps()).isEqualTo(WINDOW + 3L * FIRST_WAIT);
    }

    @Test
    void aDraftModelThatLosesTwiceInARowStopsForGood() {
        SpeculationGovernor g = new SpeculationGovernor(true);
        run(g, 1 + WINDOW + WINDOW, 3_000, 2);        // loses once
        run(g, FIRST_WAIT + 1 + WINDOW, 3_000, 2);    // waits, tries again, loses again
        assertThat(g.speculate()).isFalse();
        assertThat(run(g, 10 * FIRST_WAIT, 3_000, 2)).isZero();
    }

    @Test
    void speculationThatBecomesSlowerStopsAndThatBecomesFasterResumes() {
        SpeculationGovernor g = new SpeculationGovernor(false);
        run(g, 1 + 2 * WINDOW, 1_000, 3);             // wins against plain timing
        assertThat(g.speculate()).isTrue();
        run(g, WINDOW, 5_000, 1);                     // the text changed: drafts fail
        assertThat(g.speculate()).isFalse();
        run(g, FIRST_WAIT, 0, 0);
        assertThat(g.speculate()).isTrue();
        run(g, 1 + WINDOW, 1_000, 3);                 // drafts work again
        assertThat(g.speculate()).isTrue();
    }

    @Test
    void oneWindowOfFailedDraftsAmongGoodOnesDoesNotStopSpeculation() {
        SpeculationGovernor g = new SpeculationGovernor(true);
        run(g, 1 + 2 * WINDOW, 1_000, 3);             // wins against plain timing (333 ns a token)
        run(g, WINDOW, 1_200, 1);                     // every draft rejected: 1,200 ns a token
        assertThat(g.speculate()).as("judged with the window before: 550 ns a token").isTrue();
        run(g, WINDOW, 1_000, 3);
        assertThat(g.speculate()).isTrue();
        // Drafts that keep failing: lost once the failed windows outweigh the good one.
        for (int w = 1; w < HISTORY; w++) {
            run(g, WINDOW, 1_200, 1);
            assertThat(g.speculate()).as("after %d failed windows", w).isTrue();
        }
        run(g, WINDOW, 1_200, 1);
        assertThat(g.speculate()).as("after %d failed windows", HISTORY).isFalse();
        assertThat(g.plainSteps()).isEqualTo(WINDOW);
    }

    @Test
    void stepsThatCouldNotDoWhatWasDecidedAreNoSample() {
        SpeculationGovernor g = new SpeculationGovernor(false);
        // Speculation wanted, but no proposal (prompt lookup found no match): a plain step.
        for (int i = 0; i < 100; i++) {
            assertThat(g.record(PLAIN, 1, false)).isFalse();
        }
        assertThat(g.speculate()).isTrue();
        assertThat(g.plainSteps()).isZero();
    }
}
