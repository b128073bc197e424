package dev.peregrine.cpu;

import dev.peregrine.spi.Activation;
import dev.peregrine.tensor.DType;
import java.lang.foreign.MemorySegment;

/**
 * One set of CPU kernels. The backend splits each operation into index ranges and runs them on its
 * {@link WorkerPool}; a kernel only ever sees its own slice, so kernels hold no state of their own
 * beyond what is passed in (per-thread scratch, the prepared matmul input).
 *
 * <p>Two implementations: {@link ScalarKernels} (plain Java loops, always available) and
 * {@code VectorKernels} (jdk.incubator.vector, used when that module is present).
 */
interface Kernels {

    /** A short description for {@code Backend.description()}, e.g. "Vector API 512-bit". */
    String description();

    /**
     * How many rows of a weight of this type and shape make one group of its column-major copy (see
     * {@link CpuWeight}, {@link #columnMajor}); 1 keeps the file's layout.
     */
    default int rowGroup(DType type, long rows, long columns) {
        return 1;
    }

    /**
     * Values of a row the row kernels step through at a time (see {@link CpuWeight#blockStride}): a
     * block of a quantised type; for float types a vector's worth.
     */
    default int groupUnit(DType type) {
        return type.blockSize();
    }

    /**
     * The type a copied matrix of {@code type} is kept in: its own, or a wider one whose kernels
     * stream faster than this type's would and which holds every value exactly.
     */
    default DType storedType(DType type) {
        return type;
    }

    /**
     * Whether weights of this type and shape are stored in column-major groups of
     * {@link #rowGroup} rows ({@link Q8Products}, {@link HalfProducts}, {@link Iq4Products},
     * {@link IntegerProducts}) rather than by rows.
     */
    default boolean columnMajor(DType type, long rows, long columns) {
        return false;
    }

    /**
     * Runs once per matmul on the calling thread before the rows are split across threads, e.g. to
     * copy or quantise the activations into {@code input} in the forms the first {@code count}
     * {@code weights} read (several for a grouped product, all of the same width): rows
     * {@code firstToken .. firstToken + tokens - 1} of {@code x} (rows of columns floats), whose
     * products {@link #matmul} then writes to the same rows of its output. (A product split by
     * tokens across threads prepares an input per slice of tokens.)
     */
    void prepareMatmul(MatmulInput input, CpuWeight[] weights, int count, MemorySegment x, int firstToken, int tokens);

    /** {@link #prepareMatmul(MatmulInput, CpuWeight[], int, MemorySegment, int, int)} from token 0. */
    default void prepareMatmul(MatmulInput input, CpuWeight[] weights, int count, MemorySegment x, int tokens) {
        prepareMatmul(input, weights, count, x, 0, tokens);
    }

    /** {@code out[t][j] = W[j] . x[t]} for every token t and the weight rows j in [rowStart, rowEnd). */
    void matmul(MatmulInput input, CpuWeight w, MemorySegment out, int tokens, int rowStart, int rowEnd,
                ThreadScratch scratch);

    /** Row {@code row} of {@code w} as floats into {@code out} at float index {@code outIndex}. */
    void embedRow(CpuWeight w, int row, MemorySegment out, long outIndex, ThreadScratch scratch);

    /** RMS norm of rows [rowStart, rowEnd) of width {@code width}. */
    void rmsNorm(MemorySegment out, MemorySegment in, float[] weight, int width, float eps, int rowStart, int rowEnd,
                 ThreadScratch scratch);

    /** Adjacent-pair rope of rows [rowStart, rowEnd) (see {@code Backend.rope}). */
    void rope(MemorySegment x, MemorySegment cosSin, int heads, int headDim, int ropeDimensions, int rowStart, int rowEnd,
              ThreadScratch scratch);

    /** Attention for the (token, head) items [itemStart, itemEnd), item = token * heads + head. */
    void attention(AttentionArgs args, int itemStart, int itemEnd, ThreadScratch scratch);

    /** {@code gate[i] = activation(gate[i]) * up[i]} for i in [from, to). */
    void gatedActivation(MemorySegment gate, MemorySegment up, long from, long to, Activation activation);

    /** {@code acc[i] += x[i]} for i in [from, to). */
    void add(MemorySegment acc, MemorySegment x, long from, long to);
}
