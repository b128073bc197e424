package dev.peregrine.jmh;

import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.Session;
import dev.peregrine.synth.ModelShape;
import dev.peregrine.synth.SyntheticModel;
import dev.peregrine.synth.TokenizerMetadata;
import dev.peregrine.tensor.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
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
 * One greedy decode token through the public API (Session.generate of one token: scheduler
 * hand-off, forward pass, sampling) on a synthetic model written at setup, with the context kept
 * between 64 and 320 tokens. Tokens per second is the result.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 3)
@Measurement(iterations = 5, time = 3)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class DecodeStepBenchmark {
    @Param({"smollm2-135m"})
    public String shape;

    @Param({"Q8_0", "F16"})
    public DType type;

    @Param({"2"})
    public int threads;

    private Path file;
    private Model model;
    private Session session;
    private final GenerationConfig oneToken = GenerationConfig.greedy().maxTokens(1).ignoreEos(true);

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        file = Files.createTempFile("peregrine-jmh-", ".gguf");
        ModelShape s = ModelShape.named(shape);
        SyntheticModel.of(s, 0).writeGguf(file, type, TokenizerMetadata.synthetic(s.vocab()), threads);
        model = Model.load(file, ModelOptions.defaults().withThreads(threads).withContextLength(512));
        session = model.newSession();
        session.append(new int[64]);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        session.close();
        model.close();
        Files.deleteIfExists(file);
    }

    @Benchmark
    public int decodeOneToken() {
        if (session.position() >= 320) {
            session.rewind(session.position() - 64);
        }
        return session.generate(oneToken).outputTokens().length;
    }
}
