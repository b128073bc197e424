package dev.peregrine;

import dev.peregrine.engine.Scheduler;
import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.kv.KvCache;
import dev.peregrine.model.LlamaConfig;
import dev.peregrine.model.LlamaGraph;
import dev.peregrine.model.LlamaWeights;
import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BackendConfig;
import dev.peregrine.spi.BackendProvider;
import dev.peregrine.tokenizer.Tokenizer;
import dev.peregrine.tokenizer.Tokenizers;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.ServiceLoader;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A loaded language model: weights (memory-mapped, read in place), configuration, tokenizer and a
 * backend that runs it. Thread-safe; share one {@code Model} between threads. {@link #close()}
 * frees its memory (the file mapping, off-heap buffers, the KV cache).
 *
 * <pre>{@code
 * try (Model model = Model.load(Path.of("model.gguf"))) {
 *     Completion c = model.generator().generate("Once upon a time", GenerationConfig.greedy().maxTokens(64));
 *     System.out.println(c.text());
 * }
 * }</pre>
 */
public final class Model implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Model.class);
    /** Positions per KV-cache block. */
    static final int KV_BLOCK_SIZE = 16;
    /** Default KV-cache budget when {@link ModelOptions#kvCacheTokens()} is 0. */
    static final long DEFAULT_KV_BYTES = 1L << 30;

    private final Path path;
    private final Arena arena;
    private final Backend backend;
    private final LlamaConfig config;
    private final Tokenizer tokenizer;
    private final KvCache kv;
    private final int contextLength;
    private final Scheduler scheduler;
    private final Generator generator;
    private final long loadNanos;
    private final String backendDescription;
    private boolean closed;

    private Model(Path path, Arena arena, Backend backend, LlamaConfig config, Tokenizer tokenizer, KvCache kv,
                  int contextLength, Scheduler scheduler, long loadNanos) {
        this.path = path;
        this.arena = arena;
        this.backend = backend;
        this.config = config;
        this.tokenizer = tokenizer;
        this.kv = kv;
        this.contextLength = contextLength;
        this.scheduler = scheduler;
        this.loadNanos = loadNanos;
        this.backendDescription = backend.description();
        this.generator = new Generator(this);
    }

    /** Loads a GGUF model with default options. */
    public static Model load(Path path) {
        return load(path, ModelOptions.defaults());
    }

    /**
     * Loads a GGUF model. The file is memory-mapped, not read: loading takes time in the size of
     * its header, not its weights.
     *
     * @throws ModelFormatException if the file is missing, malformed or describes an unsupported model
     */
    public static Model load(Path path, ModelOptions options) {
        long t0 = System.nanoTime();
        Arena arena = Arena.ofShared();
        Backend backend = null;
        try {
            GgufFile file = GgufFile.open(path, arena);
            Tokenizer tokenizer = Tokenizers.fromGguf(file.metadata());
            int vocab = (int) file.tensor("token_embd.weight").dim(1);
            if (vocab != tokenizer.vocabularySize()) {
                throw new ModelFormatException(path, -1, "token_embd.weight has " + vocab
                        + " rows but the tokenizer has " + tokenizer.vocabularySize() + " tokens");
            }
            LlamaConfig config = LlamaConfig.fromGguf(path, file.metadata(), vocab);
            int context = options.contextLength() > 0 ? options.contextLength() : config.contextLength();
            long kvTokens = kvCacheTokens(options, config, context);
            backend = createBackend(options);
            LlamaWeights weights = LlamaWeights.load(file, config, backend);
            int blocks = (int) Math.min(Integer.MAX_VALUE, (kvTokens + KV_BLOCK_SIZE - 1) / KV_BLOCK_SIZE);
            KvCache kv = new KvCache(backend, config.layers(), config.kvDim(), blocks, KV_BLOCK_SIZE);
            LlamaGraph graph = new LlamaGraph(config, weights, backend, kv, options.maxBatchTokens());
            Scheduler scheduler = new Scheduler(graph, kv, vocab, options.maxBatchTokens(), options.maxSequences(),
                    options.maxWaitingRequests(), options.prefixCaching(), options.prefillChunkTokens(),
                    String.valueOf(path.getFileName()));
            Model model = new Model(path, arena, backend, config, tokenizer, kv, context, scheduler, System.nanoTime() - t0);
            LOG.debug("loaded {} ({} layers, dim {}, vocab {}) on {} in {} ms", path, config.layers(), config.dim(),
                    vocab, model.backendDescription, model.loadNanos / 1_000_000);
            return model;
        } catch (RuntimeException | Error e) {
            if (backend != null) {
                backend.close();
            }
            arena.close();
            throw e;
        }
    }

    private static long kvCacheTokens(ModelOptions options, LlamaConfig c, int context) {
        if (options.kvCacheTokens() > 0) {
            return options.kvCacheTokens();
        }
        long bytesPerToken = 2L * c.layers() * c.kvDim() * Float.BYTES;
        long budget = Math.max(KV_BLOCK_SIZE, DEFAULT_KV_BYTES / bytesPerToken);
        return Math.min(4L * context, budget);
    }

    private static Backend createBackend(ModelOptions options) {
        List<BackendProvider> providers = new ArrayList<>();
        ServiceLoader.load(BackendProvider.class, Model.class.getClassLoader()).forEach(providers::add);
        if (providers.isEmpty()) {
            ServiceLoader.load(BackendProvider.class).forEach(providers::add);
        }
        providers.sort(Comparator.comparingInt(BackendProvider::priority).reversed());
        BackendConfig config = new BackendConfig(options.threads(), 0);
        String wanted = options.backend();
        for (BackendProvider p : providers) {
            if (!wanted.equals("auto") && !wanted.equals(p.name())) {
                continue;
            }
            var reason = p.unavailableReason();
            if (reason.isPresent()) {
                if (!wanted.equals("auto")) {
                    throw new PeregrineException("backend '" + wanted + "' is not usable here: " + reason.get());
                }
                LOG.info("backend {} not used: {}", p.name(), reason.get());
                continue;
            }
            return p.create(config);
        }
        List<String> names = providers.stream().map(BackendProvider::name).toList();
        throw new PeregrineException(providers.isEmpty()
                ? "no Peregrine backend on the class path: add dev.peregrine:peregrine-cpu-backend"
                : "no backend named '" + wanted + "' (available: " + names + ")");
    }

    /** The engine for generating with this model; thread-safe, one per model. */
    public Generator generator() {
        ensureOpen();
        return generator;
    }

    /** A new, empty session (a sequence whose KV state is kept across calls). */
    public Session newSession() {
        ensureOpen();
        return new Session(this);
    }

    /** Encodes text as this model's prompt tokens: BOS added as the model wants it, special-token text recognised. */
    public int[] encode(String text) {
        return encode(text, true);
    }

    /**
     * Encodes text, recognising special-token text (e.g. from a chat template).
     *
     * @param addSpecialTokens add BOS (and whatever else the model wants around a sequence); false
     *                         for text that continues a sequence
     */
    public int[] encode(String text, boolean addSpecialTokens) {
        return tokenizer.encode(text, addSpecialTokens, true);
    }

    /** Decodes token ids to text. */
    public String decode(int... ids) {
        return tokenizer.decode(ids);
    }

    public Path path() {
        return path;
    }

    /** A short description of the model and where it runs. */
    public String describe() {
        return String.format("%s: llama, %d layers, dim %d, %d heads (%d KV), FFN %d, vocab %d, context %d; %s",
                path.getFileName(), config.layers(), config.dim(), config.heads(), config.kvHeads(), config.ffnDim(),
                config.vocabularySize(), contextLength, backendDescription);
    }

    /** The longest sequence a session can hold. */
    public int contextLength() {
        return contextLength;
    }

    public int vocabularySize() {
        return config.vocabularySize();
    }

    /** Time {@link #load} took. */
    public long loadNanos() {
        return loadNanos;
    }

    Scheduler scheduler() {
        return scheduler;
    }

    KvCache kvCache() {
        return kv;
    }

    Tokenizer tokenizer() {
        return tokenizer;
    }

    void ensureOpen() {
        synchronized (this) {
            if (closed) {
                throw new IllegalStateException("the model is closed");
            }
        }
    }

    /** Frees the model's memory. Sessions and generations still running fail afterwards. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        // Stops the step loop after its current step; requests still queued or running fail.
        scheduler.close();
        backend.close();
        arena.close();
    }
}
