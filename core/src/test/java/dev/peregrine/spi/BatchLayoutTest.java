package dev.peregrine.spi;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** Paged KV addressing: a range of positions maps to the same slots as position by position. */
class BatchLayoutTest {

    @Test
    void slotsOfARangeAreEachPositionsSlot() {
        BatchLayout layout = new BatchLayout(16);
        layout.addSequence(new int[] {3, 0, 7}, 3);
        int second = layout.addSequence(new int[] {5, 2, 9, 4}, 4);
        int[] slots = new int[64];
        // Ranges starting and ending inside blocks, on block edges, one position, and none.
        int[][] ranges = {{0, 63}, {5, 40}, {16, 16}, {31, 2}, {47, 1}, {10, 0}};
        for (int[] range : ranges) {
            java.util.Arrays.fill(slots, -1);
            layout.slotsOf(second, range[0], range[1], slots);
            for (int i = 0; i < range[1]; i++) {
                assertThat(slots[i]).as("position %d", range[0] + i).isEqualTo(layout.slotOf(second, range[0] + i));
            }
            assertThat(slots[range[1]]).as("past the range").isEqualTo(-1);
        }
        assertThat(layout.slotOf(second, 20)).isEqualTo(2 * 16 + 4);
    }
}
