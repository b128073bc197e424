package dev.peregrine.cuda;

import static java.lang.foreign.ValueLayout.JAVA_INT;

import dev.peregrine.spi.BatchLayout;
import java.lang.foreign.MemorySegment;

/**
 * One step's {@link BatchLayout} on the device: token ids, positions, KV slots, the sequences'
 * block tables and the attention tiles, packed into one page-locked host buffer and copied to one
 * device area. The layout goes over in a single transfer at the start of the step; the tiles
 * follow on the step's first attention call, which knows how many rows fit in a tile.
 *
 * <p>A tile is up to {@code rowsPerTile} consecutive token rows of one sequence, as four ints
 * (first row, rows, sequence, 0): the unit of work of the attention kernel.
 */
final class StepLayout implements AutoCloseable {
    private final Device device;
    private final DeviceMemory.Scratch area;
    private MemorySegment host = MemorySegment.NULL;

    private BatchLayout layout;
    private long base;
    private long tilesAt; // in ints
    private int tileRows;
    private int tileCount;
    private int tileSpread;
    private int maxPosition;

    StepLayout(Device device) {
        this.device = device;
        this.area = new DeviceMemory.Scratch(device);
    }

    /** Packs and copies {@code layout}; the previous step's transfers must be done (the caller synchronised). */
    void upload(BatchLayout layout) {
        this.layout = layout;
        int n = layout.tokenCount;
        long positionsAt = padded(n);
        long slotsAt = positionsAt + padded(n);
        long startsAt = slotsAt + padded(n);
        // The tiles come before the block tables, whose length changes as sequences grow: every
        // address the kernels get then depends on the token and sequence counts only, which lets
        // CUDA graphs of a step shape be replayed (StepGraphs).
        tilesAt = startsAt + padded(layout.sequenceCount);
        long tablesAt = tilesAt + 4L * n;
        long bytes = (tablesAt + layout.blockTableLength) * Integer.BYTES;
        if (host.byteSize() < bytes) {
            long size = Math.max(bytes, 2 * host.byteSize());
            if (host.address() != 0) {
                device.freeHost(host);
            }
            host = MemorySegment.NULL; // not left pointing at freed memory if the allocation fails
            host = device.allocateHost(size);
        }
        MemorySegment.copy(layout.tokens, 0, host, JAVA_INT, 0, n);
        MemorySegment.copy(layout.positions, 0, host, JAVA_INT, positionsAt * Integer.BYTES, n);
        MemorySegment.copy(layout.slots, 0, host, JAVA_INT, slotsAt * Integer.BYTES, n);
        MemorySegment.copy(layout.blockTableStart, 0, host, JAVA_INT, startsAt * Integer.BYTES, layout.sequenceCount);
        MemorySegment.copy(layout.blockTables, 0, host, JAVA_INT, tablesAt * Integer.BYTES, layout.blockTableLength);
        base = area.at(bytes);
        device.copyToDevice(base, host, 0, bytes); // the tile area too: its tiles follow in the first attention call
        tileRows = 0;
        maxPosition = 0;
        for (int r = 0; r < n; r++) {
            maxPosition = Math.max(maxPosition, layout.positions[r]);
        }
    }

    /** Rounds an int count up to a whole 16 bytes, so every array starts aligned. */
    private static long padded(int ints) {
        return (ints + 3L) / 4 * 4;
    }

    /** Device address of the token ids. */
    long tokens() {
        return base;
    }

    long positions() {
        return base + padded(layout.tokenCount) * Integer.BYTES;
    }

    long slots() {
        return base + 2 * padded(layout.tokenCount) * Integer.BYTES;
    }

    long blockTableStart() {
        return base + 3 * padded(layout.tokenCount) * Integer.BYTES;
    }

    long blockTables() {
        return tiles() + 4L * layout.tokenCount * Integer.BYTES;
    }

    long tiles() {
        return base + tilesAt * Integer.BYTES;
    }

    int maxPosition() {
        return maxPosition;
    }

    /** The largest distance between the positions of two rows of one tile, for the last {@link #tiles(int)}. */
    int tileSpread() {
        return tileSpread;
    }

    /** Builds and copies the tiles for {@code rowsPerTile} (once per step: every layer asks the same); returns their number. */
    int tiles(int rowsPerTile) {
        if (rowsPerTile == tileRows) {
            return tileCount;
        }
        if (tileRows != 0) {
            device.synchronize(); // the tiles of an earlier call may still be in transfer
        }
        tileCount = buildTiles(layout, rowsPerTile, host, tilesAt * Integer.BYTES);
        tileSpread = spread(layout, host, tilesAt * Integer.BYTES, tileCount);
        device.copyToDevice(tiles(), host, tilesAt * Integer.BYTES, 4L * tileCount * Integer.BYTES);
        tileRows = rowsPerTile;
        return tileCount;
    }

    /** Writes the tiles of {@code layout} into {@code out} at byte {@code offset}; returns how many. */
    static int buildTiles(BatchLayout layout, int rowsPerTile, MemorySegment out, long offset) {
        int count = 0;
        int r = 0;
        while (r < layout.tokenCount) {
            int first = r;
            int sequence = layout.tokenSequence[r];
            do {
                r++;
            } while (r < layout.tokenCount && r - first < rowsPerTile && layout.tokenSequence[r] == sequence);
            long at = offset + 16L * count++;
            out.set(JAVA_INT, at, first);
            out.set(JAVA_INT, at + 4, r - first);
            out.set(JAVA_INT, at + 8, sequence);
            out.set(JAVA_INT, at + 12, 0);
        }
        return count;
    }

    /**
     * The largest distance between the positions of two rows of one of the {@code count} tiles at
     * byte {@code offset} of {@code tiles}: 0 when each tile is one row (decode), else up to
     * rowsPerTile - 1. A windowed tile reads at most window + spread positions.
     */
    static int spread(BatchLayout layout, MemorySegment tiles, long offset, int count) {
        int spread = 0;
        for (int t = 0; t < count; t++) {
            int first = tiles.get(JAVA_INT, offset + 16L * t);
            int rows = tiles.get(JAVA_INT, offset + 16L * t + 4);
            int min = Integer.MAX_VALUE;
            int max = Integer.MIN_VALUE;
            for (int r = first; r < first + rows; r++) {
                min = Math.min(min, layout.positions[r]);
                max = Math.max(max, layout.positions[r]);
            }
            spread = Math.max(spread, max - min);
        }
        return spread;
    }

    @Override
    public void close() {
        if (host.address() != 0) {
            device.freeHost(host);
            host = MemorySegment.NULL;
        }
        area.close();
    }
}
