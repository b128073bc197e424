package dev.peregrine;

import dev.peregrine.engine.Scheduler;
import dev.peregrine.kv.KvCache;
import dev.peregrine.model.LlamaCheckpoint;
import dev.peregrine.model.LlamaConfig;
import dev.peregrine.model.LlamaGraph;
import dev.peregrine.model.LlamaWeights;
import dev.peregrine.model.RecommendedSampling;
import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BackendConfig;
import dev.peregrine.spi.BackendProvider;
import dev.peregrine.tokenizer.Tokenizer;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.ServiceLoader;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a text-generating (decoder) {@link Model} is made of: the mapped GGUF file or Hugging Face
 * checkpoint, the backend and its weights, the KV cache and the scheduler that runs every request.
 */
final class DecoderParts {
    private static final Logger LOG = LoggerFactory.getLogger(DecoderParts.class);
    /** Positions per KV-cache block. */
    static final int KV_BLOCK_SIZE = 16;
    /** Default KV-cache budget when {@link ModelOptions#kvCacheTokens()} is 0. */
    static final long DEFAULT_KV_BYTES = 1L << 30;
    static final String KEY_CHAT_TEMPLATE = "tokenizer.chat_template";

    private final Arena arena;
    private final Backend backend;
    private final LlamaConfig config;
    private final Tokenizer tokenizer;
    /** The files' Jinja chat template source, or null (tokenizer.chat_template or tokenizer_config.json). */
    private final String chatTemplate;
    private final RecommendedSampling sampling;
    private final KvCache kv;
    private final int contextLength;
    private final Scheduler scheduler;
    private final String backendDescription;
    private final String backendName;

    private DecoderParts(Arena arena, Backend backend, String backendName, LlamaConfig config, Tokenizer tokenizer,
                         String chatTemplate, RecommendedSampling sampling, KvCache kv, int contextLength,
                         Scheduler scheduler) {
        this.backendName = backendName;
        this.arena = arena;
        this.backend = backend;
        this.config = config;
        this.tokenizer = tokenizer;
        this.chatTemplate = chatTemplate;
        this.sampling = sampling;
        this.kv = kv;
        this.contextLength = contextLength;
        this.scheduler = scheduler;
        this.backendDescription = backend.description();
    }

    /**
     * Maps a GGUF file or a Hugging Face directory and builds the model on the chosen backend.
     *
     * @throws ModelFormatException if the file is missing, malformed or describes an unsupported model
     */
    static DecoderParts load(Path path, ModelOptions options) {
        List<BackendProvider> candidates = backendCandidates(options);
        for (int i = 0; ; i++) {
            BackendProvider provider = candidates.get(i);
            try {
                return load(path, options, provider);
            } catch (ModelFormatException e) {
                throw namingTheFiles(e, path); // the files are at fault, on any backend
            } catch (RuntimeException e) {
                if (i == candidates.size() - 1) {
                    throw e;
                }
                // "auto" only: a backend that is there but fails (no memory for the weights, an
                // init error) gives way to the next one, so the CPU still runs the model.
                LOG.warn("backend {} failed to load {} ({}); using {} instead", provider.name(), path.getFileName(), e.toString(),
                        candidates.get(i + 1).name());
            }
        }
    }

    /**
     * The error, with the model's path in front when its message does not name a file already (a
     * vocabulary's or a kernel's check knows the key or the tensor, not the file).
     */
    static ModelFormatException namingTheFiles(ModelFormatException e, Path path) {
        String message = String.valueOf(e.getMessage());
        if (message.contains(path.toString()) || message.contains(path.toAbsolutePath().toString()) || message.startsWith("/")) {
            return e;
        }
        return new ModelFormatException(path + ": " + message, e);
    }

    private static DecoderParts load(Path path, ModelOptions options, BackendProvider provider) {
        Arena arena = Arena.ofShared();
        Backend backend = null;
        try {
            LlamaCheckpoint checkpoint = LlamaCheckpoint.open(path, arena);
            LlamaConfig config = checkpoint.config();
            int vocab = config.vocabularySize();
            int context = options.contextLength() > 0 ? options.contextLength() : config.contextLength();
            if (context > config.contextLength()) {
                // As llama.cpp warns: positions past the trained context are extrapolation.
                LOG.warn("{}: context length {} is beyond the {} the model was trained for; output past position {}"
                        + " may degrade", path.getFileName(), context, config.contextLength(), config.contextLength());
            }
            long kvTokens = kvCacheTokens(options, config, context);
            backend = provider.create(new BackendConfig(options.threads(), options.deviceIndex()));
            LlamaWeights weights = LlamaWeights.load(checkpoint.tensors(), config, backend);
            checkpoint.checkEveryTensorRead();
            int blocks = (int) Math.min(Integer.MAX_VALUE, (kvTokens + KV_BLOCK_SIZE - 1) / KV_BLOCK_SIZE);
            KvCache kv;
            LlamaGraph graph;
            try {
                kv = new KvCache(backend, config.layers(), config.kvHeads(), config.headDim(), blocks, KV_BLOCK_SIZE,
                        options.kvCacheType());
                graph = new LlamaGraph(config, weights, backend, kv, options.maxBatchTokens());
            } catch (OutOfMemoryError e) {
                // Sizes the host chose (ModelOptions), not the file: too large for this machine.
                throw new PeregrineException("not enough memory for a KV cache of " + kvTokens + " tokens ("
                        + KvCache.bytesPerToken(config.layers(), config.kvDim(), options.kvCacheType()) * kvTokens / (1 << 20)
                        + " MiB; ModelOptions.kvCacheTokens) and steps of up to " + options.maxBatchTokens()
                        + " tokens (ModelOptions.maxBatchTokens): " + e.getMessage(), e);
            }
            Scheduler scheduler = new Scheduler(graph, kv, vocab, checkpoint.tokenizer().vocabularySize(),
                    options.maxBatchTokens(), options.maxSequences(),
                    options.maxWaitingRequests(), options.prefixCaching(), options.prefillChunkTokens(),
                    options.prefillStepMillis(), String.valueOf(path.getFileName()));
            LOG.debug("loaded {} ({} layers, dim {}, vocab {}) on {}", path, config.layers(), config.dim(), vocab,
                    backend.description());
            return new DecoderParts(arena, backend, provider.name(), config, checkpoint.tokenizer(), checkpoint.chatTemplate(),
                    checkpoint.sampling(), kv, context, scheduler);
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
        long bytesPerToken = KvCache.bytesPerToken(c.layers(), c.kvDim(), options.kvCacheType());
        long budget = Math.max(KV_BLOCK_SIZE, DEFAULT_KV_BYTES / bytesPerToken);
        return Math.min(4L * context, budget);
    }

    /**
     * The backends to try, best first: the pinned one alone, or under "auto" every usable one by
     * priority (CUDA before the CPU), each tried in turn if the one before fails to load.
     */
    private static List<BackendProvider> backendCandidates(ModelOptions options) {
        List<BackendProvider> providers = new ArrayList<>();
        ServiceLoader.load(BackendProvider.class, Model.class.getClassLoader()).forEach(providers::add);
        if (providers.isEmpty()) {
            ServiceLoader.load(BackendProvider.class).forEach(providers::add);
        }
        providers.sort(Comparator.comparingInt(BackendProvider::priority).reversed());
        String wanted = options.backend();
        List<BackendProvider> usable = new ArrayList<>();
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
            usable.add(p);
        }
        if (usable.isEmpty()) {
            List<String> names = providers.stream().map(BackendProvider::name).toList();
            throw new PeregrineException(providers.isEmpty()
                    ? "no Peregrine backend on the class path: add dev.peregrine:peregrine-cpu-backend"
                    : "no backend named '" + wanted + "' (available: " + names + ")");
        }
        return usable;
    }

    String backendName() {
        return backendName;
    }

    Tokenizer tokenizer() {
        return tokenizer;
    }

    /** The chat template source the model's files carry, or null; compiled only when asked for (see {@link Model#chatTemplate()}). */
    String chatTemplateSource() {
        return chatTemplate;
    }

    /** The sampling settings the model's files recommend. */
    RecommendedSampling sampling() {
        return sampling;
    }

    Scheduler scheduler() {
        return scheduler;
    }

    KvCache kvCache() {
        return kv;
    }

    int contextLength() {
        return contextLength;
    }

    int vocabularySize() {
        return config.vocabularySize();
    }

    String describe(Path path) {
        long windowed = config.layerWindows().stream().filter(w -> w > 0).count();
        String windows = windowed == 0 ? "" : String.format(", sliding window %d on %d of them",
                config.layerWindows().stream().mapToInt(Integer::intValue).max().orElse(0), windowed);
        return String.format("%s: %s, %d layers%s, dim %d, %d heads (%d KV), FFN %d, vocab %d, context %d; "
                        + "KV cache %s, %d tokens; %s",
                path.getFileName(), config.family().ggufArchitecture(), config.layers(), windows, config.dim(),
                config.heads(), config.kvHeads(), config.ffnDim(), config.vocabularySize(), contextLength, kv.type(),
                kv.capacityTokens(), backendDescription);
    }

    /** Stops the step loop after its current step (queued and running requests fail), then frees memory. */
    void close() {
        scheduler.close();
        backend.close();
        arena.close();
    }
}
