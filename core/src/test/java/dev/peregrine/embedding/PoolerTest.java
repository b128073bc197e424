package dev.peregrine.embedding;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.peregrine.Pooling;
import java.nio.FloatBuffer;
import org.junit.jupiter.api.Test;

class PoolerTest {
    // Two sequences of 3 positions, width 2. Row 1 has 2 real tokens and one padding position.
    private static final float[] HIDDEN = {
            1, 2, 3, 4, 5, 6,
            10, 20, 30, 40, 999, 999};

    @Test
    void meanAveragesOnlyTheRealTokens() {
        FloatBuffer h = FloatBuffer.wrap(HIDDEN);
        assertThat(Pooler.pool(Pooling.MEAN, h, 0, 3, 2, 3)).containsExactly(3, 4);
        assertThat(Pooler.pool(Pooling.MEAN, h, 1, 3, 2, 2)).containsExactly(20, 30);
    }

    /** sentence-transformers' include_prompt=false: the masked leading positions leave the mean; all masked: zeros. */
    @Test
    void meanLeavesOutSkippedLeadingPositions() {
        FloatBuffer h = FloatBuffer.wrap(HIDDEN);
        assertThat(Pooler.pool(Pooling.MEAN, h, 0, 3, 2, 3, 1)).containsExactly(4, 5);
        assertThat(Pooler.pool(Pooling.MEAN, h, 0, 3, 2, 3, 2)).containsExactly(5, 6);
        assertThat(Pooler.pool(Pooling.MEAN, h, 1, 3, 2, 2, 2)).containsExactly(0, 0);
        assertThat(Pooler.pool(Pooling.CLS, h, 0, 3, 2, 3, 2)).as("CLS keeps its position").containsExactly(1, 2);
        assertThat(Pooler.pool(Pooling.LAST_TOKEN, h, 0, 3, 2, 3, 2)).containsExactly(5, 6);
    }

    @Test
    void clsTakesTheFirstPositionAndLastTokenTheLastRealOne() {
        FloatBuffer h = FloatBuffer.wrap(HIDDEN);
        assertThat(Pooler.pool(Pooling.CLS, h, 1, 3, 2, 2)).containsExactly(10, 20);
        assertThat(Pooler.pool(Pooling.LAST_TOKEN, h, 1, 3, 2, 2)).containsExactly(30, 40);
        assertThat(Pooler.pool(Pooling.LAST_TOKEN, h, 0, 3, 2, 3)).containsExactly(5, 6);
    }

    @Test
    void rejectsMoreTokensThanPositions() {
        assertThatThrownBy(() -> Pooler.pool(Pooling.MEAN, FloatBuffer.wrap(HIDDEN), 0, 3, 2, 4))
                .isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void normalizeGivesUnitLengthAndLeavesZeroAlone() {
        float[] v = {3, 4};
        Pooler.normalize(v);
        assertThat(v[0]).isCloseTo(0.6f, within(1e-7f));
        assertThat(v[1]).isCloseTo(0.8f, within(1e-7f));
        float[] zero = {0, 0};
        Pooler.normalize(zero);
        assertThat(zero).containsExactly(0, 0);
    }
}
