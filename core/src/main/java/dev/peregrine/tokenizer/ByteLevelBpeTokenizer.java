package dev.peregrine.tokenizer;

import static java.nio.charset.StandardCharsets.UTF_8;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufMetadata;
import java.io.ByteArrayOutputStream;
import java.util.Arrays;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The byte-level BPE tokenizer of llama.cpp's "gpt2" vocabulary type (GPT-2, Llama 3, Qwen 2,
 * DeepSeek, Falcon, MPT, StarCoder, SmolLM and many more), giving the same ids as llama.cpp's
 * {@code llama_tokenize}.
 *
 * <p>Encoding, as llama.cpp does it:
 * <ol>
 *   <li>Special-token partitioning ({@link SpecialTokens}): control tokens' texts are cut out of
 *       the text when special text is parsed, user-defined (added) tokens' texts always.
 *   <li>Each remaining fragment is split into words by the {@link PreTokenizer} that
 *       {@code tokenizer.ggml.pre} names.
 *   <li>Each word's UTF-8 bytes become GPT-2's printable stand-ins (a byte that is a printable
 *       Latin-1 character stands for itself, the others for U+0100 onwards), one symbol each.
 *   <li>Adjacent symbols merge by the ranks of {@code tokenizer.ggml.merges}, lowest rank first,
 *       leftmost on ties. With Llama 3's {@code ignore_merges} a word that is a token is that token.
 *       A symbol that is no token (a byte the vocabulary lacks) is dropped, as in llama.cpp.
 * </ol>
 * Words are cached (up to {@value #CACHE_WORDS} of them), so common words skip merging.
 *
 * <p>Decoding maps the stand-ins back to bytes; user-defined tokens decode to their text, control
 * and unknown tokens to nothing. Decoding is exactly the concatenation of the tokens' bytes, so
 * {@code decode(encode(s)) == s} whenever the vocabulary has a token for every byte of {@code s}
 * (Falcon's lacks 14 control bytes), and streaming, which uses the same bytes, agrees with it.
 * llama.cpp's clean-up of spaces before punctuation ({@code clean_spaces}) is not applied: it
 * would lose text and break that agreement.
 *
 * <p>Thread-safe; the word cache is its only mutable state.
 */
public final class ByteLevelBpeTokenizer extends VocabularyTokenizer {
    public static final String KEY_PRE = "tokenizer.ggml.pre";
    public static final String KEY_MERGES = MergeTable.KEY_MERGES;

    private static final Logger LOG = LoggerFactory.getLogger(ByteLevelBpeTokenizer.class);
    private static final int CACHE_WORDS = 1 << 16;
    /** Longer words are rare and would only fill the cache. */
    private static final int CACHE_WORD_LENGTH = 64;

    /** GPT-2's stand-in character of each byte (also used by Hugging Face's ByteLevel, {@link HfPreTokenizer}). */
    static final char[] BYTE_CHARS = new char[256];
    /** The byte each stand-in character stands for, or -1. Do not modify either table. */
    static final int[] CHAR_BYTES = new int[256 + 68];

    static {
        Arrays.fill(CHAR_BYTES, -1);
        int next = 256;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            BYTE_CHARS[b] = (char) (printable ? b : next++);
            CHAR_BYTES[BYTE_CHARS[b]] = b;
        }
    }

    private final TokenIndex index;
    private final MergeTable merges;
    private final PreTokenizer preTokenizer;
    private final boolean ignoreMerges;
    /** The token of each byte's stand-in, or -1. */
    private final int[] byteTokens = new int[256];
    private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();

    /**
     * @param merges       {@code tokenizer.ggml.merges}
     * @param preTokenizer {@code tokenizer.ggml.pre}, or "" if the file has none (llama.cpp's
     *                     "default" is then used, with a warning, as llama.cpp does)
     * @throws ModelFormatException if the pre-tokenizer is not one Peregrine supports, two tokens
     *                              share a text, a merge is malformed, or a byte token's text is not
     *                              "&lt;0xHH&gt;"
     */
    public ByteLevelBpeTokenizer(Vocabulary vocab, String[] merges, String preTokenizer) {
        this(vocab, merges, preTokenizer, preset(preTokenizer));
    }

    private ByteLevelBpeTokenizer(Vocabulary vocab, String[] merges, String preTokenizer,
                                  PreTokenizer.Preset preset) {
        // byte-level BPE has no space prefix, unless a file sets one (llama.cpp drops it in decoding)
        super(vocab, preTokenizer, ByteLevelBpeTokenizer::standInBytes, vocab.addSpacePrefix());
        this.index = new TokenIndex(vocab.tokens());
        this.merges = new MergeTable(merges, index);
        this.preTokenizer = PreTokenizer.of(preset);
        this.ignoreMerges = preset.ignoreMerges();
        for (int b = 0; b < 256; b++) {
            byteTokens[b] = index.find(String.valueOf(BYTE_CHARS[b]));
        }
    }

    /**
     * The tokenizer of GGUF metadata whose {@code tokenizer.ggml.model} is "gpt2". Absent keys take
     * llama.cpp's defaults for this model: BOS and EOS 11, no unknown token, BOS added only for the
     * Llama 3 pre-tokenizers, no space prefix.
     *
     * @throws ModelFormatException if the vocabulary or the merges are missing or malformed; the
     *                              message names the key
     */
    public static ByteLevelBpeTokenizer fromGguf(GgufMetadata metadata) {
        String pre = metadata.optString(KEY_PRE).orElse("");
        PreTokenizer.Preset preset = preset(pre);
        Vocabulary vocab = Vocabulary.fromGguf(metadata,
                new Vocabulary.Defaults(11, 11, -1, -1, -1, preset.addBos(), false, false));
        String[] merges = metadata.optStringArray(KEY_MERGES).orElseThrow(() -> new ModelFormatException(
                "missing '" + KEY_MERGES + "': a byte-level BPE vocabulary needs its merges"));
        return new ByteLevelBpeTokenizer(vocab, merges, pre, preset);
    }

    /**
     * The preset {@code tokenizer.ggml.pre} names; a file without one gets llama.cpp's default, with
     * a warning. A name that is not supported is refused, as llama.cpp refuses one it does not know:
     * splitting words another way would tokenize every prompt differently from the model's training,
     * silently.
     */
    private static PreTokenizer.Preset preset(String name) {
        PreTokenizer.Preset preset = PreTokenizer.Preset.forName(name.isEmpty() ? "default" : name);
        if (name.isEmpty()) {
            LOG.warn("'{}' is missing: splitting words with llama.cpp's default pre-tokenizer, which may not"
                    + " be the model's (tokens, and so generation quality, may differ from the original)", KEY_PRE);
        } else if (preset == null) {
            throw new ModelFormatException("'" + KEY_PRE + "' = '" + name + "' is a pre-tokenizer Peregrine does not"
                    + " support (supported: " + String.join(", ", PreTokenizer.Preset.supportedNames()) + ")");
        }
        return preset;
    }

    // ---- encoding -------------------------------------------------------------------------------

    @Override
    void encodeText(String text, int start, int end, boolean afterSpecial, IntList out) {
        IntList words = preTokenizer.split(text, start, end);
        int from = start;
        for (int w = 0; w < words.size(); w++) {
            int to = words.get(w);
            String word = text.substring(from, to);
            int[] ids = word.length() <= CACHE_WORD_LENGTH ? cache.get(word) : null;
            if (ids == null) {
                ids = encodeWord(word);
                if (word.length() <= CACHE_WORD_LENGTH && cache.size() < CACHE_WORDS) {
                    cache.putIfAbsent(word, ids);
                }
            }
            for (int id : ids) {
                out.add(id);
            }
            from = to;
        }
    }

    private int[] encodeWord(String word) {
        byte[] utf8 = word.getBytes(UTF_8); // an unpaired surrogate becomes '?', as for SentencePiece
        int n = utf8.length;
        if (ignoreMerges) {
            char[] chars = new char[n];
            for (int i = 0; i < n; i++) {
                chars[i] = BYTE_CHARS[utf8[i] & 0xFF];
            }
            int id = index.find(chars, 0, n);
            if (id >= 0) {
                return new int[] {id};
            }
        }
        SymbolMerger merger = new SymbolMerger(n);
        for (int i = 0; i < n; i++) {
            merger.add(i, 1, byteTokens[utf8[i] & 0xFF]);
        }
        merger.run((left, right, from, length) -> merges.find(left, right));
        IntList ids = new IntList(n);
        for (int s = merger.first(); s >= 0; s = merger.next(s)) {
            if (merger.token(s) >= 0) {
                ids.add(merger.token(s));
            }
        }
        return ids.toArray();
    }

    /**
     * The bytes GPT-2 stand-in characters stand for. A character that stands for no byte (found in
     * a few vocabularies) is kept as its own UTF-8, where llama.cpp writes "[UNK_BYTE_0x..]".
     */
    private static byte[] standInBytes(String text) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(text.length());
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            int b = cp < CHAR_BYTES.length ? CHAR_BYTES[cp] : -1;
            if (b >= 0) {
                bytes.write(b);
            } else {
                bytes.writeBytes(new String(Character.toChars(cp)).getBytes(UTF_8));
            }
            i += Character.charCount(cp);
        }
        return bytes.toByteArray();
    }
}
