package dev.peregrine.jmh;

import dev.peregrine.cpu.CpuBackendProvider;
import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BackendConfig;
import dev.peregrine.spi.Buffer;
import dev.peregrine.spi.Weight;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.AuxCounters;
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
 * The CPU matmul kernels on a 2048 x 8192 weight (8192 inputs, 2048 outputs, a llama3.2-1b FFN
 * matrix's size): {@code tokens = 1} is decode (one pass reads several copies of the weight, more
 * bytes than the caches hold, so it measures streaming from memory), {@code tokens = 128} is a
 * prefill tile. The secondary results {@code weightBytes} (GB/s once divided by 1e9) and
 * {@code flops} are rates per second.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class MatmulBenchmark {
    private static final int COLUMNS = 8192;
    private static final int OUTPUTS = 2048;
    /** Bytes of weights one decode pass streams: well beyond the last-level cache. */
    private static final long DECODE_BYTES = 256L << 20;

    @Param({"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL",
            "IQ4_XS"})
    public DType type;

    @Param({"1", "128"})
    public int tokens;

    @Param({"1", "2"})
    public int threads;

    private Arena arena;
    private Backend backend;
    private Weight[] weights;
    private Buffer x;
    private Buffer out;
    private long bytesPerPass;

    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofShared();
        backend = new CpuBackendProvider().create(new BackendConfig(threads, 0));
        long bytes = type.bytesFor((long) COLUMNS * OUTPUTS);
        int copies = tokens == 1 ? (int) Math.max(1, DECODE_BYTES / bytes) : 1;
        weights = new Weight[copies];
        Tensor first = Weights.random(arena, type, COLUMNS, OUTPUTS, 7);
        for (int c = 0; c < copies; c++) {
            var data = c == 0 ? first.data() : arena.allocate(first.data().byteSize(), 64).copyFrom(first.data());
            weights[c] = backend.upload(new Tensor("w" + c, type, new long[] {COLUMNS, OUTPUTS}, data));
        }
        bytesPerPass = bytes * copies;
        float[] values = Weights.gaussian(tokens * COLUMNS, 3);
        x = backend.allocate(values.length);
        backend.write(values, 0, x, 0, values.length);
        out = backend.allocate((long) tokens * OUTPUTS);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        backend.close();
        arena.close();
    }

    /** Rates reported next to the pass rate. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class Rates {
        public long weightBytes;
        public long flops;
    }

    @Benchmark
    public void matmul(Rates rates) {
        for (Weight w : weights) {
            backend.matmul(out, x, w, tokens);
        }
        rates.weightBytes += bytesPerPass;
        rates.flops += 2L * COLUMNS * OUTPUTS * tokens * weights.length;
    }
}
