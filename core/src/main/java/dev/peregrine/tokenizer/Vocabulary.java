package dev.peregrine.tokenizer;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufMetadata;
import java.util.Arrays;
import java.util.Objects;
import java.util.Optional;
import java.util.stream.IntStream;

/**
 * A tokenizer vocabulary as llama.cpp stores it in GGUF: token texts, scores, token types and the
 * special ids and flags. The arrays are shared, not copied: do not modify them.
 *
 * @param tokens         token texts, indexed by id (SentencePiece pieces: "▁" for a space,
 *                       "&lt;0x0A&gt;" for byte tokens)
 * @param scores         merge priority of each token (higher merges first)
 * @param tokenTypes     llama.cpp token types: {@link #NORMAL}, {@link #UNKNOWN}, {@link #CONTROL},
 *                       {@link #USER_DEFINED}, {@link #UNUSED}, {@link #BYTE}; any other value is
 *                       "undefined" (decodes to nothing, as in llama.cpp)
 * @param bosId          beginning-of-sequence id, or -1
 * @param eosId          end-of-sequence id, or -1
 * @param unkId          unknown-token id, or -1
 * @param sepId          separator id (BERT's [SEP]), or -1
 * @param padId          padding id, or -1
 * @param eotId          end-of-turn id, or -1
 * @param eomId          end-of-message id, or -1
 * @param addBos         whether encoding with special tokens starts with BOS
 * @param addEos         whether encoding with special tokens ends with EOS
 * @param addSep         whether encoding with special tokens ends with the separator (BERT)
 * @param addSpacePrefix whether a space is put before text that starts a sequence or follows a
 *                       special token (SentencePiece's "dummy prefix")
 * @param modelName      {@code general.name}, or ""; llama.cpp keys a few per-model token rules on it
 * @param endOfGenerationIds further ids the files name as ending a generation, besides EOS, EOT and
 *                       EOM: GGUF's fill-in-the-middle padding, repository and file-separator ids
 *                       ({@link #KEY_FIM_PAD}, {@link #KEY_FIM_REP}, {@link #KEY_FIM_SEP}), on which
 *                       llama.cpp ends a generation, or the {@code eos_token_id}s of a Hugging Face
 *                       model's config.json and generation_config.json
 */
public record Vocabulary(
        String[] tokens, float[] scores, int[] tokenTypes,
        int bosId, int eosId, int unkId, int sepId, int padId, int eotId, int eomId,
        boolean addBos, boolean addEos, boolean addSep, boolean addSpacePrefix, String modelName,
        int[] endOfGenerationIds) {

    public static final int NORMAL = 1;
    public static final int UNKNOWN = 2;
    public static final int CONTROL = 3;
    public static final int USER_DEFINED = 4;
    public static final int UNUSED = 5;
    public static final int BYTE = 6;

    public static final String KEY_TOKENS = "tokenizer.ggml.tokens";
    public static final String KEY_SCORES = "tokenizer.ggml.scores";
    public static final String KEY_TOKEN_TYPES = "tokenizer.ggml.token_type";
    public static final String KEY_BOS = "tokenizer.ggml.bos_token_id";
    public static final String KEY_EOS = "tokenizer.ggml.eos_token_id";
    public static final String KEY_UNK = "tokenizer.ggml.unknown_token_id";
    /** llama.cpp's spelling. */
    public static final String KEY_SEP = "tokenizer.ggml.seperator_token_id";
    /** Written by older converters for BERT models, whose BOS is [CLS]. */
    public static final String KEY_CLS = "tokenizer.ggml.cls_token_id";
    public static final String KEY_PAD = "tokenizer.ggml.padding_token_id";
    public static final String KEY_EOT = "tokenizer.ggml.eot_token_id";
    public static final String KEY_EOM = "tokenizer.ggml.eom_token_id";
    public static final String KEY_FIM_PAD = "tokenizer.ggml.fim_pad_token_id";
    public static final String KEY_FIM_REP = "tokenizer.ggml.fim_rep_token_id";
    public static final String KEY_FIM_SEP = "tokenizer.ggml.fim_sep_token_id";
    public static final String KEY_ADD_BOS = "tokenizer.ggml.add_bos_token";
    public static final String KEY_ADD_EOS = "tokenizer.ggml.add_eos_token";
    public static final String KEY_ADD_SEP = "tokenizer.ggml.add_sep_token";
    public static final String KEY_ADD_SPACE_PREFIX = "tokenizer.ggml.add_space_prefix";

    /** Validates sizes and ids, so that a tokenizer built on it never indexes out of range. */
    public Vocabulary {
        Objects.requireNonNull(tokens, "tokens");
        Objects.requireNonNull(scores, "scores");
        Objects.requireNonNull(tokenTypes, "tokenTypes");
        Objects.requireNonNull(modelName, "modelName");
        Objects.requireNonNull(endOfGenerationIds, "endOfGenerationIds");
        if (tokens.length == 0) {
            throw new ModelFormatException("'" + KEY_TOKENS + "' is empty: the vocabulary has no tokens");
        }
        for (int id = 0; id < tokens.length; id++) {
            if (tokens[id] == null || tokens[id].isEmpty()) {
                // an empty text would match everywhere when special tokens are cut out of a text
                throw new ModelFormatException("'" + KEY_TOKENS + "'[" + id + "] is empty");
            }
        }
        checkLength(KEY_SCORES, scores.length, tokens.length);
        checkLength(KEY_TOKEN_TYPES, tokenTypes.length, tokens.length);
        checkId(KEY_BOS, bosId, tokens.length);
        checkId(KEY_EOS, eosId, tokens.length);
        checkId(KEY_UNK, unkId, tokens.length);
        checkId(KEY_SEP, sepId, tokens.length);
        checkId(KEY_PAD, padId, tokens.length);
        checkId(KEY_EOT, eotId, tokens.length);
        checkId(KEY_EOM, eomId, tokens.length);
        for (int id : endOfGenerationIds) {
            if (id < 0 || id >= tokens.length) {
                throw new ModelFormatException("end-of-generation id " + id + " is outside the vocabulary of "
                        + tokens.length + " tokens");
            }
        }
        // llama.cpp refuses these too: encoding could not add the token it promises.
        if (addBos && bosId < 0) {
            throw new ModelFormatException("'" + KEY_ADD_BOS + "' is true but '" + KEY_BOS + "' is not set");
        }
        if (addEos && eosId < 0) {
            throw new ModelFormatException("'" + KEY_ADD_EOS + "' is true but '" + KEY_EOS + "' is not set");
        }
        if (addSep && sepId < 0) {
            throw new ModelFormatException("'" + KEY_ADD_SEP + "' is true but '" + KEY_SEP + "' is not set");
        }
    }

    /** A vocabulary without further end-of-generation ids. */
    public Vocabulary(String[] tokens, float[] scores, int[] tokenTypes,
                      int bosId, int eosId, int unkId, int sepId, int padId, int eotId, int eomId,
                      boolean addBos, boolean addEos, boolean addSep, boolean addSpacePrefix, String modelName) {
        this(tokens, scores, tokenTypes, bosId, eosId, unkId, sepId, padId, eotId, eomId,
                addBos, addEos, addSep, addSpacePrefix, modelName, new int[0]);
    }

    /** This vocabulary with {@code ids} added to {@link #endOfGenerationIds} (each id once). */
    public Vocabulary withEndOfGeneration(int... ids) {
        int[] all = IntStream.concat(Arrays.stream(endOfGenerationIds), Arrays.stream(ids)).distinct().toArray();
        return new Vocabulary(tokens, scores, tokenTypes, bosId, eosId, unkId, sepId, padId, eotId, eomId,
                addBos, addEos, addSep, addSpacePrefix, modelName, all);
    }

    /**
     * The values llama.cpp assumes for keys a file leaves out; they depend on the tokenizer model.
     * An id that does not fit the vocabulary is dropped.
     */
    public record Defaults(int bosId, int eosId, int unkId, int sepId, int padId,
                           boolean addBos, boolean addSep, boolean addSpacePrefix) {
        /** The "llama" (SentencePiece) model's: BOS 1, EOS 2, UNK 0, add BOS, add a space prefix. */
        public static final Defaults SENTENCE_PIECE = new Defaults(1, 2, 0, -1, -1, true, false, true);
    }

    /**
     * Reads the vocabulary from GGUF metadata, with the defaults of the "llama" (SentencePiece)
     * tokenizer model for absent keys: see {@link #fromGguf(GgufMetadata, Defaults)}.
     */
    public static Vocabulary fromGguf(GgufMetadata m) {
        return fromGguf(m, Defaults.SENTENCE_PIECE);
    }

    /**
     * Reads the vocabulary from GGUF metadata. Keys that are absent take {@code defaults} (ids
     * only if within the vocabulary), no EOS, scores 0, all tokens normal; an absent BOS is taken
     * from the [CLS] key of older BERT files when there is one. The fill-in-the-middle padding,
     * repository and file-separator ids become {@link #endOfGenerationIds}; one outside the
     * vocabulary is ignored, as llama.cpp ignores it (with a warning) rather than fail. An id stored as 0xFFFFFFFF (how
     * converters write "none") counts as absent, as in llama.cpp. Empty token texts are renamed
     * "[EMPTY_id]", as llama.cpp does.
     *
     * @throws ModelFormatException if the token list is missing, an array's length differs from
     *                              the token count, an id is outside the vocabulary, or a value has
     *                              the wrong type; the message names the key
     */
    public static Vocabulary fromGguf(GgufMetadata m, Defaults defaults) {
        String[] tokens = m.optStringArray(KEY_TOKENS).orElseThrow(
                () -> new ModelFormatException("missing '" + KEY_TOKENS + "': the file has no tokenizer vocabulary"));
        tokens = renameEmptyTokens(tokens);
        int n = tokens.length;

        float[] scores = m.optFloatArray(KEY_SCORES).orElseGet(() -> new float[n]);
        int[] types = m.optIntArray(KEY_TOKEN_TYPES).orElseGet(() -> filled(n, NORMAL));

        return new Vocabulary(tokens, scores, types,
                readId(m, KEY_BOS, readId(m, KEY_CLS, defaults.bosId(), n), n),
                readId(m, KEY_EOS, defaults.eosId(), n),
                readId(m, KEY_UNK, defaults.unkId(), n),
                readId(m, KEY_SEP, defaults.sepId(), n),
                readId(m, KEY_PAD, defaults.padId(), n),
                readId(m, KEY_EOT, -1, n),
                readId(m, KEY_EOM, -1, n),
                m.optBoolean(KEY_ADD_BOS).orElse(defaults.addBos()),
                m.optBoolean(KEY_ADD_EOS).orElse(false),
                m.optBoolean(KEY_ADD_SEP).orElse(defaults.addSep()),
                m.optBoolean(KEY_ADD_SPACE_PREFIX).orElse(defaults.addSpacePrefix()),
                m.optString("general.name").orElse(""),
                IntStream.of(readId(m, KEY_FIM_PAD, n), readId(m, KEY_FIM_REP, n), readId(m, KEY_FIM_SEP, n))
                        .filter(id -> id >= 0).distinct().toArray());
    }

    public int size() {
        return tokens.length;
    }

    /**
     * The byte a byte token ("&lt;0xHH&gt;") stands for.
     *
     * @throws ModelFormatException if the token's text is not of that form
     */
    int byteValue(int id) {
        String text = tokens[id];
        int high = text.length() == 6 && text.startsWith("<0x") && text.endsWith(">")
                ? Character.digit(text.charAt(3), 16) : -1;
        int low = high >= 0 ? Character.digit(text.charAt(4), 16) : -1;
        if (low < 0) {
            throw new ModelFormatException("'" + KEY_TOKENS + "'[" + id + "] = '" + text
                    + "' has the byte token type but is not of the form <0xHH>");
        }
        return high << 4 | low;
    }

    /** A default that does not fit the vocabulary is dropped (llama.cpp does the same). */
    private static int readId(GgufMetadata m, String key, int defaultId, int n) {
        int fallback = defaultId < n ? defaultId : -1;
        Optional<Long> stored = m.optLong(key);
        if (stored.isEmpty() || stored.get() == 0xFFFF_FFFFL || stored.get() == -1) {
            return fallback;
        }
        long id = stored.get();
        if (id < 0 || id >= n) {
            throw new ModelFormatException("'" + key + "' = " + id + " is outside the vocabulary of " + n + " tokens");
        }
        return (int) id;
    }

    /** An optional id that is dropped, not refused, when it does not fit the vocabulary. */
    private static int readId(GgufMetadata m, String key, int n) {
        Optional<Long> stored = m.optLong(key);
        return stored.isPresent() && stored.get() >= 0 && stored.get() < n ? (int) (long) stored.get() : -1;
    }

    private static String[] renameEmptyTokens(String[] tokens) {
        String[] result = tokens;
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i].isEmpty()) {
                if (result == tokens) {
                    result = tokens.clone(); // the metadata's array stays as read
                }
                result[i] = "[EMPTY_" + i + "]";
            }
        }
        return result;
    }

    private static int[] filled(int n, int value) {
        int[] a = new int[n];
        Arrays.fill(a, value);
        return a;
    }

    private static void checkLength(String key, int length, int tokenCount) {
        if (length != tokenCount) {
            throw new ModelFormatException("'" + key + "' has " + length + " entries but '" + KEY_TOKENS
                    + "' has " + tokenCount);
        }
    }

    private static void checkId(String key, int id, int tokenCount) {
        if (id < -1 || id >= tokenCount) {
            throw new ModelFormatException("'" + key + "' = " + id + " is outside the vocabulary of " + tokenCount + " tokens");
        }
    }
}
