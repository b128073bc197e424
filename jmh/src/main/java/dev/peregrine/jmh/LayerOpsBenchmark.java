package dev.peregrine.jmh;

import dev.peregrine.cpu.CpuBackendProvider;
import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BackendConfig;
import dev.peregrine.spi.BatchLayout;
import dev.peregrine.spi.Buffer;
import dev.peregrine.spi.Weight;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The non-matmul kernels of one decode token at llama3.2-1b's sizes (dim 2048, FFN 8192, 32 heads,
 * 8 KV heads of 64): RMSNorm, rope, SwiGLU, residual add, and paged attention over a context of
 * {@code context} cached positions, the cache in F32 or F16. Average time per call.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class LayerOpsBenchmark {
    private static final int DIM = 2048;
    private static final int FFN = 8192;
    private static final int HEADS = 32;
    private static final int KV_HEADS = 8;
    private static final int HEAD_DIM = 64;
    private static final int BLOCK = 16;

    @Param({"1", "2"})
    public int threads;

    @Param({"1024"})
    public int context;

    /** How the KV cache stores keys and values (only attention reads it). */
    @Param({"F32", "F16"})
    public String kvCacheType;

    private Arena arena;
    private Backend backend;
    private Weight norm;
    private Buffer x;
    private Buffer y;
    private Buffer gate;
    private Buffer up;
    private Buffer q;
    private Buffer attended;
    private Buffer keys;
    private Buffer values;
    private Buffer cosSin;
    private BatchLayout layout;

    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofShared();
        backend = new CpuBackendProvider().create(new BackendConfig(threads, 0));
        MemorySegment ones = arena.allocate(4L * DIM);
        for (int i = 0; i < DIM; i++) {
            ones.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, 1f);
        }
        norm = backend.upload(new Tensor("norm", DType.F32, new long[] {DIM}, ones));
        x = filled(DIM, 1);
        y = backend.allocate(DIM);
        gate = filled(FFN, 2);
        up = filled(FFN, 3);
        q = filled(HEADS * HEAD_DIM, 4);
        attended = backend.allocate(HEADS * HEAD_DIM);
        cosSin = backend.allocate(HEAD_DIM);
        // One sequence whose KV blocks are scattered (every other block), decoding at the last position.
        int blockCount = context / BLOCK;
        int[] blocks = new int[blockCount];
        for (int b = 0; b < blockCount; b++) {
            blocks[b] = b % 2 == 0 ? b / 2 : blockCount / 2 + b / 2;
        }
        // The cache filled as the model fills it: every position's key and value stored once.
        DType type = DType.valueOf(kvCacheType);
        long kvValues = (long) context * KV_HEADS * HEAD_DIM;
        keys = backend.allocate(kvValues, type);
        values = backend.allocate(kvValues, type);
        BatchLayout fill = new BatchLayout(BLOCK);
        fill.addSequence(blocks, blockCount);
        for (int p = 0; p < context; p++) {
            fill.addToken(0, 1, p, false);
        }
        backend.storeKv(keys, values, filled(kvValues, 5), filled(kvValues, 6), KV_HEADS, HEAD_DIM, fill);
        layout = new BatchLayout(BLOCK);
        int s = layout.addSequence(blocks, blockCount);
        layout.addToken(s, 1, context - 1, true);
        float[] frequencies = new float[HEAD_DIM / 2];
        java.util.Arrays.fill(frequencies, 0.01f);
        backend.ropeAngles(cosSin, frequencies, layout);
    }

    private Buffer filled(long n, long seed) {
        float[] v = Weights.gaussian((int) n, seed);
        Buffer b = backend.allocate(n);
        backend.write(v, 0, b, 0, v.length);
        return b;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        backend.close();
        arena.close();
    }

    @Benchmark
    public void rmsNorm() {
        backend.rmsNorm(y, x, norm, 1, DIM, 1e-5f);
    }

    @Benchmark
    public void rope() {
        backend.rope(q, cosSin, 1, HEADS, HEAD_DIM, HEAD_DIM);
    }

    @Benchmark
    public void swiglu() {
        backend.gatedActivation(gate, up, FFN, dev.peregrine.spi.Activation.SILU);
    }

    @Benchmark
    public void residualAdd() {
        backend.add(y, x, DIM);
    }

    @Benchmark
    public void attention() {
        backend.attention(attended, q, keys, values, layout, HEADS, KV_HEADS, HEAD_DIM, 0.125f, 0, 0f);
    }
}
