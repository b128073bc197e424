package dev.peregrine.cpu;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The activation buffers of the matmuls grow geometrically, so slowly growing calls rarely reallocate them. */
class MatmulInputTest {
    @Test
    void buffersGrowByHalfAgainNotToEachExactSize() {
        try (MatmulInput input = new MatmulInput()) {
            Set<Object> rows = Collections.newSetFromMap(new IdentityHashMap<>());
            Set<Object> values = Collections.newSetFromMap(new IdentityHashMap<>());
            Set<Object> scales = Collections.newSetFromMap(new IdentityHashMap<>());
            // Prompt chunks of 100 to 199 tokens of 576 values, one more each call (as a time-budgeted
            // chunked prefill makes them): exact sizes would reallocate at every call.
            for (int tokens = 100; tokens < 200; tokens++) {
                input.ensureRows(tokens * 576);
                input.ensureQuantised(tokens, 576);
                assertThat(input.rows.length).isGreaterThanOrEqualTo(tokens * 576);
                assertThat(input.quantisedValues.length).isGreaterThanOrEqualTo(tokens * 576);
                assertThat(input.quantised.byteSize()).isGreaterThanOrEqualTo(2L * tokens * 576);
                assertThat(input.quantisedScales.length).isGreaterThanOrEqualTo(tokens * 576 / 32);
                assertThat(input.quantisedCorrections.length).isEqualTo(input.quantisedScales.length);
                rows.add(input.rows);
                values.add(input.quantisedValues);
                scales.add(input.quantisedScales);
            }
            // Room for 100 tokens (the first call, exact), then 150, then 225: three buffers each.
            assertThat(rows).hasSizeLessThanOrEqualTo(3);
            assertThat(values).hasSizeLessThanOrEqualTo(3);
            assertThat(scales).hasSizeLessThanOrEqualTo(3);
        }
    }

    @Test
    void growthNeverGoesBelowWhatIsNeededNorPastTheArrayLimit() {
        assertThat(MatmulInput.grown(0, 10)).isEqualTo(10);
        assertThat(MatmulInput.grown(100, 101)).isEqualTo(150);
        assertThat(MatmulInput.grown(100, 1000)).isEqualTo(1000);
        assertThat(MatmulInput.grown(Integer.MAX_VALUE - 100, Integer.MAX_VALUE - 50)).isEqualTo(Integer.MAX_VALUE - 8);
    }
}
