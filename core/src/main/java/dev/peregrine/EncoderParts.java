package dev.peregrine;

import dev.peregrine.embedding.EmbeddingPipeline;
import dev.peregrine.embedding.EncoderFiles;
import dev.peregrine.embedding.EncoderMetadata;
import dev.peregrine.spi.Encoder;
import dev.peregrine.spi.EncoderConfig;
import dev.peregrine.spi.EncoderProvider;
import dev.peregrine.tokenizer.Tokenizer;
import dev.peregrine.tokenizer.Tokenizers;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.ServiceLoader;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What an encoder {@link Model} is made of: the runtime's encoder, the Hugging Face tokenizer, the
 * embedding pipeline and the default options read from the model's metadata.
 */
final class EncoderParts {
    private static final Logger LOG = LoggerFactory.getLogger(EncoderParts.class);

    private final Encoder encoder;
    private final Tokenizer tokenizer;
    private final EmbeddingPipeline pipeline;
    private final EmbeddingOptions defaults;
    private final String description;

    private EncoderParts(Encoder encoder, Tokenizer tokenizer, EmbeddingPipeline pipeline, EmbeddingOptions defaults) {
        this.encoder = encoder;
        this.tokenizer = tokenizer;
        this.pipeline = pipeline;
        this.defaults = defaults;
        this.description = encoder.description();
    }

    /**
     * @throws ModelFormatException if a file is missing or malformed, or the model is not an encoder
     * @throws PeregrineException   if no encoder runtime on the class path reads the model
     */
    static EncoderParts load(EncoderFiles files, ModelOptions options) {
        EncoderProvider provider = provider(files.model());
        Tokenizer tokenizer = Tokenizers.fromHuggingFace(files.tokenizer(), files.tokenizerConfig());
        EncoderMetadata metadata = EncoderMetadata.read(files);
        Encoder encoder = provider.open(files.model(), new EncoderConfig(options.threads(), device(options.backend()),
                options.deviceIndex()));
        try {
            int maxLength = maxLength(options, metadata, encoder);
            EmbeddingPipeline pipeline;
            try {
                pipeline = new EmbeddingPipeline(encoder, tokenizer, maxLength, metadata.includePrompt());
            } catch (IllegalArgumentException e) {
                if (options.contextLength() > 0) {
                    throw e; // the caller's contextLength
                }
                throw new ModelFormatException(files.model(), -1, e.getMessage() + " (the length the model's files state)");
            }
            EmbeddingOptions defaults = metadata.applyTo(EmbeddingOptions.defaults());
            LOG.debug("encoder {}: {}, max length {}, {}", files.model(), encoder.description(), maxLength, defaults);
            return new EncoderParts(encoder, tokenizer, pipeline, defaults);
        } catch (RuntimeException | Error e) {
            encoder.close();
            throw e;
        }
    }

    /**
     * The most tokens of one text: {@link ModelOptions#contextLength()} when set, else what the
     * model's files say, else what its input shape fixes, else {@value EncoderMetadata#DEFAULT_MAX_LENGTH};
     * never more than a fixed input shape allows.
     */
    private static int maxLength(ModelOptions options, EncoderMetadata metadata, Encoder encoder) {
        int fixed = encoder.fixedLength();
        int wanted = options.contextLength() > 0 ? options.contextLength() : metadata.maxLength();
        if (wanted == 0) {
            return fixed > 0 ? fixed : EncoderMetadata.DEFAULT_MAX_LENGTH;
        }
        if (fixed > 0 && wanted > fixed) {
            if (options.contextLength() > 0) {
                throw new IllegalArgumentException("contextLength " + wanted + " is more than the " + fixed
                        + " positions the model's inputs have");
            }
            return fixed;
        }
        return wanted;
    }

    private static EncoderProvider provider(Path model) {
        List<EncoderProvider> providers = new ArrayList<>();
        ServiceLoader.load(EncoderProvider.class, Model.class.getClassLoader()).forEach(providers::add);
        if (providers.isEmpty()) {
            ServiceLoader.load(EncoderProvider.class).forEach(providers::add);
        }
        for (EncoderProvider p : providers) {
            if (p.accepts(model)) {
                return p;
            }
        }
        throw new PeregrineException(providers.isEmpty()
                ? "no encoder runtime on the class path to run " + model.getFileName()
                        + ": add dev.peregrine:peregrine-onnx-backend"
                : "no encoder runtime reads " + model.getFileName() + " (available: "
                        + providers.stream().map(EncoderProvider::name).toList() + ")");
    }

    /** The encoder device for a {@link ModelOptions#backend()} name. */
    private static String device(String backend) {
        return switch (backend) {
            case "auto", "cpu", "cuda" -> backend;
            default -> throw new PeregrineException("backend '" + backend + "' does not run encoders (use auto, cpu or cuda)");
        };
    }

    List<float[]> embed(List<String> texts, EmbeddingOptions options) {
        return pipeline.embed(texts, options);
    }

    EmbeddingOptions defaults() {
        return defaults;
    }

    int dimension() {
        return encoder.hiddenSize();
    }

    int maxLength() {
        return pipeline.modelMaxLength();
    }

    Tokenizer tokenizer() {
        return tokenizer;
    }

    String describe(Path path) {
        return String.format("%s: encoder, hidden size %d, max length %d, vocab %d; %s", path.getFileName(),
                encoder.hiddenSize(), pipeline.modelMaxLength(), tokenizer.vocabularySize(), description);
    }

    void close() {
        encoder.close();
    }
}
