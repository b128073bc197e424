package dev.peregrine;

import dev.peregrine.embedding.EncoderFiles;
import dev.peregrine.engine.Scheduler;
import dev.peregrine.kv.KvCache;
import dev.peregrine.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * A loaded model: a text generator (a GGUF file or Hugging Face directory: weights memory-mapped
 * and read in place, a backend, a KV cache) or an encoder that turns texts into embedding vectors (an ONNX model run by
 * ONNX Runtime). Thread-safe; share one {@code Model} between threads. {@link #close()} frees its
 * memory (the file mapping, off-heap buffers, the KV cache, the runtime session).
 *
 * <pre>{@code
 * try (Model model = Model.load(Path.of("model.gguf"))) {
 *     Completion c = model.generator().generate("Once upon a time", GenerationConfig.greedy().maxTokens(64));
 *     System.out.println(c.text());
 * }
 * try (Model encoder = Model.load(Path.of("all-MiniLM-L6-v2"))) {   // model.onnx + tokenizer.json
 *     List<float[]> vectors = encoder.embed(List.of("a first text", "a second one"));
 * }
 * }</pre>
 *
 * <p>A chat model's prompt comes from its chat template:
 * <pre>{@code
 * String prompt = model.applyChatTemplate(List.of(ChatMessage.system("Be brief."), ChatMessage.user("Hi!")), true);
 * Completion reply = model.generator().generate(prompt, GenerationConfig.defaults());
 * }</pre>
 *
 * <p>A model is one of the two kinds: {@link #generator()} and {@link #newSession()} work on
 * decoders, the {@code embed} methods on encoders; {@link #isEncoder()} tells which.
 */
public final class Model implements AutoCloseable {
    private final Path path;
    private final long loadNanos;
    /** Exactly one of these two is set. */
    private final DecoderParts decoder;
    private final EncoderParts encoder;
    private final Generator generator;
    private boolean closed;
    /** Compiled on first use (guarded by this): a template the engine cannot compile must not stop a load. */
    private Optional<ChatTemplate> chatTemplate;

    private Model(Path path, DecoderParts decoder, EncoderParts encoder, long loadNanos) {
        this.path = path;
        this.decoder = decoder;
        this.encoder = encoder;
        this.loadNanos = loadNanos;
        this.generator = decoder != null ? new Generator(this) : null;
    }

    /** Loads a model with default options. */
    public static Model load(Path path) {
        return load(path, ModelOptions.defaults());
    }

    /**
     * Loads a model. What the path names decides its kind:
     * <ul>
     *   <li>a GGUF file: a text generator. The file is memory-mapped, not read: loading takes time in
     *       the size of its header, not its weights;
     *   <li>a Hugging Face directory holding {@code config.json} (LlamaForCausalLM, MistralForCausalLM,
     *       Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM or Phi3ForCausalLM),
     *       {@code model.safetensors} or its shards and index, and
     *       {@code tokenizer.json}: a text generator. The safetensors files are memory-mapped as GGUF
     *       files are; only the query and key projections are copied (their rows are reordered);
     *   <li>a {@code .onnx} file, or a directory holding {@code model.onnx} (or {@code onnx/model.onnx}),
     *       with the Hugging Face {@code tokenizer.json} beside it: an encoder for {@link #embed}. It needs
     *       an encoder runtime on the class path ({@code dev.peregrine:peregrine-onnx-backend}).
     * </ul>
     * For encoders, {@link ModelOptions#threads()} sets the runtime's threads,
     * {@link ModelOptions#backend()} the device ("auto", "cpu" or "cuda") and
     * {@link ModelOptions#contextLength()}, when set, the most tokens of one text; the other options
     * are for generation.
     *
     * @throws ModelFormatException if the file is missing, malformed or describes an unsupported model
     */
    public static Model load(Path path, ModelOptions options) {
        Objects.requireNonNull(path, "path");
        Objects.requireNonNull(options, "options (ModelOptions.defaults() for the defaults)");
        long t0 = System.nanoTime();
        if (EncoderFiles.isEncoderPath(path)) {
            EncoderParts encoder = EncoderParts.load(EncoderFiles.find(path), options);
            return new Model(path, null, encoder, System.nanoTime() - t0);
        }
        DecoderParts decoder = DecoderParts.load(path, options);
        return new Model(path, decoder, null, System.nanoTime() - t0);
    }

    /** Whether this model is an encoder (it embeds) rather than a text generator. */
    public boolean isEncoder() {
        return encoder != null;
    }

    /**
     * The engine for generating with this model; thread-safe, one per model.
     *
     * @throws IllegalStateException if the model is an encoder
     */
    public Generator generator() {
        ensureOpen();
        requireDecoder("generator()");
        return generator;
    }

    /**
     * A new, empty session (a sequence whose KV state is kept across calls).
     *
     * @throws IllegalStateException if the model is an encoder
     */
    public Session newSession() {
        ensureOpen();
        requireDecoder("newSession()");
        return new Session(this);
    }

    /**
     * The embedding of one text, with {@link #embeddingOptions()}.
     *
     * @throws UnsupportedModelOperationException if the model is a text generator
     */
    public float[] embed(String text) {
        return embed(List.of(Objects.requireNonNull(text, "text"))).getFirst();
    }

    /**
     * The embeddings of many texts, in their order, with {@link #embeddingOptions()}. Texts are run
     * in batches of similar length.
     *
     * @throws UnsupportedModelOperationException if the model is a text generator
     */
    public List<float[]> embed(List<String> texts) {
        return embed(texts, encoderParts().defaults());
    }

    /**
     * The embeddings of many texts, in their order.
     *
     * @throws UnsupportedModelOperationException if the model is a text generator
     * @throws IllegalArgumentException if a text is too long and {@link EmbeddingOptions#truncation()}
     *                                  is {@code FAIL}, or the options do not fit the model
     */
    public List<float[]> embed(List<String> texts, EmbeddingOptions options) {
        EncoderParts parts = encoderParts();
        ensureOpen();
        return parts.embed(texts, options);
    }

    /** The embedding of a search query: the model's query prefix (e5: "query: ") goes in front. */
    public float[] embedQuery(String query) {
        return embed(List.of(Objects.requireNonNull(query, "query")), embeddingOptions().forQueries()).getFirst();
    }

    /** The embeddings of passages to search: the model's passage prefix (e5: "passage: ") goes in front. */
    public List<float[]> embedPassages(List<String> passages) {
        return embed(passages, embeddingOptions().forPassages());
    }

    /**
     * How this encoder embeds by default: pooling, normalisation and prefixes from the
     * sentence-transformers metadata beside the model when there is some (else mean pooling,
     * normalised, no prefixes), truncation at the model's maximum length.
     *
     * @throws UnsupportedModelOperationException if the model is a text generator
     */
    public EmbeddingOptions embeddingOptions() {
        return encoderParts().defaults();
    }

    /**
     * The length of this encoder's vectors.
     *
     * @throws UnsupportedModelOperationException if the model is a text generator
     */
    public int embeddingDimension() {
        return encoderParts().dimension();
    }

    /**
     * Encodes text as this model's prompt tokens: BOS added as the model wants it, special-token
     * text recognised. Text that starts with the BOS token's text (as a chat template's output
     * does) gets no second BOS.
     */
    public int[] encode(String text) {
        return encode(text, true);
    }

    /**
     * Encodes text, recognising special-token text (e.g. from a chat template).
     *
     * @param addSpecialTokens add BOS (and whatever else the model wants around a sequence), unless
     *                         the text starts with the BOS token's text; false for text that
     *                         continues a sequence
     */
    public int[] encode(String text, boolean addSpecialTokens) {
        return tokenizer().encodePrompt(text, addSpecialTokens);
    }

    /**
     * Encodes text, as llama.cpp's {@code llama_tokenize(text, add_special, parse_special)} does.
     * With {@code parseSpecialTokens} false, text such as {@code </s>} or {@code <|im_end|>} is
     * plain text: what text from an untrusted user should get, so that it cannot inject control
     * tokens into a prompt; with true this is {@link #encode(String, boolean)}.
     */
    public int[] encode(String text, boolean addSpecialTokens, boolean parseSpecialTokens) {
        return parseSpecialTokens ? encode(text, addSpecialTokens) : tokenizer().encode(text, addSpecialTokens, false);
    }

    /**
     * The model's chat template ({@code tokenizer.chat_template} of a GGUF file; {@code
     * chat_template.jinja} or {@code tokenizer_config.json}'s {@code chat_template} in a Hugging Face
     * directory), which knows the
     * model's BOS and EOS token texts; empty when the file has none, and for encoders. Compiled on
     * the first call.
     *
     * @throws TemplateException if the template does not compile
     */
    public Optional<ChatTemplate> chatTemplate() {
        synchronized (this) {
            if (chatTemplate == null) {
                String source = decoder == null ? null : decoder.chatTemplateSource();
                chatTemplate = source == null ? Optional.empty()
                        : Optional.of(ChatTemplate.of(source, tokenText(tokenizer().bosId()), tokenText(tokenizer().eosId())));
            }
            return chatTemplate;
        }
    }

    /**
     * {@link GenerationConfig#defaults()} with the sampling settings the model's files recommend in
     * place of its own: a GGUF file's {@code general.sampling.*} keys (temp, top_k, top_p, min_p,
     * penalty_repeat, penalty_last_n), which llama.cpp applies to the options its user leaves unset,
     * or a Hugging Face directory's {@code generation_config.json} (temperature, top_k, top_p, min_p,
     * repetition_penalty), which transformers and vLLM apply. Just the defaults when the files say
     * nothing. {@code peregrine generate} and {@code chat} start from these.
     *
     * @throws IllegalStateException if the model is an encoder
     */
    public GenerationConfig generationDefaults() {
        ensureOpen();
        return requireDecoder("generationDefaults()").sampling().applyTo(GenerationConfig.defaults());
    }

    /**
     * The prompt text of a conversation, rendered with {@link #chatTemplate()}. Pass it to
     * {@link Generator#generate(String, GenerationConfig)} or {@link Session#append(String)}, or
     * {@link #encode(String)} it: the BOS the template writes is not doubled.
     *
     * @param addGenerationPrompt end with the start of the assistant's turn, so that what is
     *                            generated next is its reply
     * @throws UnsupportedModelOperationException if the model has no chat template
     * @throws TemplateRaisedException if the template rejects the conversation (e.g. roles that do
     *                                 not alternate)
     */
    public String applyChatTemplate(List<ChatMessage> messages, boolean addGenerationPrompt) {
        ChatTemplate template = chatTemplate().orElseThrow(() -> new UnsupportedModelOperationException(
                path.getFileName() + " has no chat template (no " + DecoderParts.KEY_CHAT_TEMPLATE
                        + " in a GGUF file, no chat_template in a Hugging Face directory): format the prompt"
                        + " yourself, or render one with ChatTemplate.of(...)"));
        return template.render(messages, addGenerationPrompt);
    }

    private String tokenText(int id) {
        return id < 0 ? null : tokenizer().piece(id);
    }

    /** Decodes token ids to text. */
    public String decode(int... ids) {
        return tokenizer().decode(ids);
    }

    /**
     * The UTF-8 bytes token {@code id} adds to a text in the middle of it (a SentencePiece word start
     * with its space; one byte of a character for a byte token; nothing for a GGUF file's control
     * token such as BOS, while a Hugging Face tokenizer decodes special tokens as their text, as
     * the tokenizers library does): what to show for one token, e.g. beside its log-probability.
     *
     * @throws IllegalArgumentException if {@code id} is outside the vocabulary
     */
    public byte[] tokenBytes(int id) {
        return tokenizer().tokenBytes(id).clone();
    }

    public Path path() {
        return path;
    }

    /** A short description of the model and where it runs. */
    public String describe() {
        return decoder != null ? decoder.describe(path) : encoder.describe(path);
    }

    /** The backend a decoder runs on ("cpu", "cuda": what "auto" picked), or "onnx" for an encoder. */
    public String backendName() {
        return decoder != null ? decoder.backendName() : "onnx";
    }

    /** The longest sequence a session can hold; for an encoder, the most tokens of one text. */
    public int contextLength() {
        return decoder != null ? decoder.contextLength() : encoder.maxLength();
    }

    public int vocabularySize() {
        return decoder != null ? decoder.vocabularySize() : encoder.tokenizer().vocabularySize();
    }

    /** Time {@link #load} took. */
    public long loadNanos() {
        return loadNanos;
    }

    Scheduler scheduler() {
        return requireDecoder("generation").scheduler();
    }

    KvCache kvCache() {
        return requireDecoder("a KV cache").kvCache();
    }

    Tokenizer tokenizer() {
        return decoder != null ? decoder.tokenizer() : encoder.tokenizer();
    }

    void ensureOpen() {
        synchronized (this) {
            if (closed) {
                throw new IllegalStateException("the model is closed");
            }
        }
    }

    private DecoderParts requireDecoder(String what) {
        if (decoder == null) {
            throw new IllegalStateException(path.getFileName() + " is an encoder (it embeds texts): it has no "
                    + what + "; use embed(...)");
        }
        return decoder;
    }

    private EncoderParts encoderParts() {
        if (encoder == null) {
            throw new UnsupportedModelOperationException(path.getFileName() + " is a text generator, not an encoder: "
                    + "embeddings need an encoder model (an ONNX sentence embedder such as all-MiniLM-L6-v2)");
        }
        return encoder;
    }

    /** Frees the model's memory. Sessions, generations and embeddings still running fail afterwards. */
    @Override
    public void close() {
        if (decoder != null) {
            decoder.scheduler().requireOtherThread("close the model");
        }
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        if (decoder != null) {
            decoder.close();
        } else {
            encoder.close();
        }
    }
}
