package dev.peregrine.jmh;

import static java.nio.charset.StandardCharsets.UTF_8;

import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.tokenizer.Tokenizer;
import dev.peregrine.tokenizer.Tokenizers;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
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
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Encoding speed of the real tokenizers on English text, one thread: one operation encodes one
 * document of about 4 KB (plain user text: special tokens added, special-token text not parsed,
 * as {@code Tokenizer.encode(String)}), going round the whole text. The secondary result
 * {@code utf8Bytes} is bytes of text per second (MB/s once divided by 1e6), {@code tokens} tokens
 * per second.
 *
 * <p>Tokenizers ({@code tokenizer}): {@code llama-bpe} (Llama 3's byte-level BPE from
 * ggml-vocab-llama-bpe.gguf), {@code llama-spm} (Llama 2's SentencePiece from
 * ggml-vocab-llama-spm.gguf), {@code hf-llama3} and {@code hf-qwen3} (Hugging Face tokenizer.json
 * with tokenizer_config.json), {@code bert-bge} (WordPiece from ggml-vocab-bert-bge.gguf). Texts
 * ({@code text}): {@code generated} (about 1 MB, see {@link EnglishText}) and {@code jdk-legal}.
 *
 * <p>The files are read from {@code models/tokenizers} in the shared directory: the system property
 * {@code peregrine.shared.dir} (pass it to the fork with {@code -jvmArgsAppend}), else
 * {@code ../shared} from the working directory (the project root), as the tests find it.
 * The tokenizers' word caches are warm after the first pass over the text, as they are in a
 * long-running server; the first warm-up iteration includes the cold pass.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Threads(1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g"})
public class TokenizerBenchmark {
    /** Characters per document. */
    private static final int DOCUMENT = 4096;

    @Param({"llama-bpe", "llama-spm", "hf-llama3", "hf-qwen3", "bert-bge"})
    public String tokenizer;

    @Param({"generated", "jdk-legal"})
    public String text;

    private Tokenizer tok;
    private String[] documents;
    private int[] documentBytes;
    private int next;

    @Setup(Level.Trial)
    public void setUp() {
        Path dir = sharedDir().resolve("models").resolve("tokenizers");
        tok = switch (tokenizer) {
            case "llama-bpe" -> gguf(dir.resolve("ggml-vocab-llama-bpe.gguf"));
            case "llama-spm" -> gguf(dir.resolve("ggml-vocab-llama-spm.gguf"));
            case "bert-bge" -> gguf(dir.resolve("ggml-vocab-bert-bge.gguf"));
            case "hf-llama3" -> hf(dir.resolve("hf/llama3"));
            case "hf-qwen3" -> hf(dir.resolve("hf/qwen3"));
            default -> throw new IllegalArgumentException("unknown tokenizer " + tokenizer);
        };
        String english = switch (text) {
            case "generated" -> EnglishText.generate(1 << 20, 42);
            case "jdk-legal" -> EnglishText.jdkLegal();
            default -> throw new IllegalArgumentException("unknown text " + text);
        };
        List<String> docs = EnglishText.documents(english, DOCUMENT);
        documents = docs.toArray(String[]::new);
        documentBytes = docs.stream().mapToInt(d -> d.getBytes(UTF_8).length).toArray();
        long tokens = 0;
        for (String d : documents) {
            tokens += tok.encode(d).length;
        }
        System.out.printf("%n%s, %s text: %d documents, %.2f MB, %.2f bytes per token%n", tokenizer, text,
                documents.length, english.getBytes(UTF_8).length / 1e6,
                english.getBytes(UTF_8).length / (double) tokens);
    }

    /** Rates reported next to the document rate. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class Rates {
        public long utf8Bytes;
        public long tokens;
    }

    @Benchmark
    public int[] encode(Rates rates) {
        int d = next;
        next = d + 1 == documents.length ? 0 : d + 1;
        int[] ids = tok.encode(documents[d]);
        rates.utf8Bytes += documentBytes[d];
        rates.tokens += ids.length;
        return ids;
    }

    private static Tokenizer gguf(Path file) {
        try (Arena arena = Arena.ofConfined()) {
            // metadata values are plain Java objects: the tokenizer outlives the mapping
            return Tokenizers.fromGguf(GgufFile.open(file, arena).metadata());
        }
    }

    private static Tokenizer hf(Path dir) {
        return Tokenizers.fromHuggingFace(dir.resolve("tokenizer.json"), dir.resolve("tokenizer_config.json"));
    }

    /** The shared directory: -Dperegrine.shared.dir, else ../shared from the project root (or from jmh/). */
    private static Path sharedDir() {
        String property = System.getProperty("peregrine.shared.dir");
        if (property != null) {
            return Path.of(property);
        }
        for (Path candidate : List.of(Path.of("../shared"), Path.of("../../shared"))) {
            if (Files.isDirectory(candidate.resolve("models"))) {
                return candidate;
            }
        }
        throw new IllegalStateException("the shared model directory ../shared/models is missing (working directory "
                + Path.of("").toAbsolutePath() + "): run from the project root or set -Dperegrine.shared.dir");
    }
}
