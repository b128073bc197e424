package dev.peregrine.cuda;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.spi.BatchLayout;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/** Attention tiles: runs of consecutive rows of one sequence, at most rowsPerTile long. */
class StepLayoutTest {

    private static int[][] tiles(BatchLayout layout, int rowsPerTile) {
        return tiles(layout, rowsPerTile, new int[1]);
    }

    /** The tiles, and in {@code spread[0]} the largest spread of positions in one of them. */
    private static int[][] tiles(BatchLayout layout, int rowsPerTile, int[] spread) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(16L * layout.tokenCount);
            int n = StepLayout.buildTiles(layout, rowsPerTile, out, 0);
            spread[0] = StepLayout.spread(layout, out, 0, n);
            int[][] tiles = new int[n][];
            for (int i = 0; i < n; i++) {
                tiles[i] = new int[] {out.getAtIndex(JAVA_INT, 4L * i), out.getAtIndex(JAVA_INT, 4L * i + 1),
                        out.getAtIndex(JAVA_INT, 4L * i + 2), out.getAtIndex(JAVA_INT, 4L * i + 3)};
            }
            return tiles;
        }
    }

    @Test
    void decodeRowsAreOneTileEach() {
        BatchLayout layout = new BatchLayout(16);
        for (int s = 0; s < 3; s++) {
            layout.addSequence(new int[] {s}, 1);
            layout.addToken(s, 5, 7, true);
        }
        int[] spread = {-1};
        assertThat(tiles(layout, 4, spread)).isDeepEqualTo(new int[][] {{0, 1, 0, 0}, {1, 1, 1, 0}, {2, 1, 2, 0}});
        assertThat(spread[0]).as("a one-row tile spans one position").isZero();
    }

    @Test
    void promptsAreCutIntoTilesThatNeverCrossSequences() {
        BatchLayout layout = new BatchLayout(16);
        layout.addSequence(new int[] {0}, 1);
        layout.addToken(0, 1, 3, true);                      // a decode
        layout.addSequence(new int[] {1, 2}, 2);
        for (int p = 0; p < 10; p++) {
            layout.addToken(1, 1, p, p == 9);                // a 10-token prompt
        }
        layout.addSequence(new int[] {3}, 1);
        layout.addToken(2, 1, 0, true);                      // a 1-token prompt
        int[] spread = {-1};
        assertThat(tiles(layout, 4, spread)).isDeepEqualTo(new int[][] {
                {0, 1, 0, 0},
                {1, 4, 1, 0}, {5, 4, 1, 0}, {9, 2, 1, 0},
                {11, 1, 2, 0}});
        assertThat(spread[0]).as("positions 0..3 in one tile").isEqualTo(3);
        assertThat(tiles(layout, 16, spread)).hasDimensions(3, 4);
        assertThat(spread[0]).as("the whole prompt in one tile").isEqualTo(9);
    }
}
