package dev.peregrine.tokenizer;

import static java.nio.charset.StandardCharsets.UTF_8;

import dev.peregrine.ModelFormatException;
import java.util.Locale;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The SentencePiece BPE tokenizer of llama.cpp's "llama" vocabulary type (Llama 1/2, Mistral 7B,
 * Phi-3, TinyLlama, llama2.c models), giving the same ids as llama.cpp's {@code llama_tokenize}.
 *
 * <p>Encoding, as llama.cpp does it:
 * <ol>
 *   <li>Special-token partitioning: the text of control, unknown and user-defined tokens is cut
 *       out of the text, longest token first. Without {@code parseSpecial} only user-defined tokens
 *       are cut out (as Hugging Face does for added tokens).
 *   <li>Each remaining text fragment that starts the sequence or follows a special token gets a
 *       space in front when the vocabulary's {@code add_space_prefix} is set; spaces become "▁".
 *   <li>BPE on characters: adjacent symbols whose concatenation is a token are merged, highest
 *       token score first (leftmost on ties), using a linked list of symbols and a heap of
 *       candidate pairs, so a text of n characters costs O(n log n). When no token has a "▁"
 *       right after another character (true of every SentencePiece vocabulary seen), no merge
 *       crosses the start of a word, so words (cut before each such "▁") are merged apart, which
 *       gives the same ids, and cached (up to {@value #CACHE_WORDS} of them).
 *   <li>A character that is no token becomes byte tokens "&lt;0xHH&gt;" for its UTF-8 bytes; when
 *       the vocabulary lacks those, the unknown token (llama.cpp would abort instead).
 * </ol>
 *
 * <p>Decoding: "▁" becomes a space, byte tokens become their byte, user-defined tokens their
 * text; control, unknown and unused tokens contribute nothing (llama.cpp's {@code
 * llama_token_to_piece} with {@code special = false}). {@link #decode} of a whole sequence drops
 * the one space that encoding put before the first piece of text, when {@code add_space_prefix}
 * is set, so {@code decode(encode(s)) == s}. That follows SentencePiece and Hugging Face
 * ({@code skip_special_tokens}); llama.cpp's {@code llama_detokenize} differs only when the
 * sequence starts with BOS, where it keeps that space. {@link StreamingDecoder} keeps every space,
 * since it decodes text that continues a prompt.
 *
 * <p>Thread-safe; the word cache is its only mutable state.
 */
public final class SentencePieceTokenizer extends VocabularyTokenizer {
    private static final char SPACE_MARK = '\u2581';
    /** The marker bits of a UTF-8 sequence's first byte, by sequence length. */
    private static final int[] UTF8_LEAD = {0, 0, 0xC0, 0xE0, 0xF0};

    private static final int CACHE_WORDS = 1 << 16;
    /** Longer words are rare and would only fill the cache. */
    private static final int CACHE_WORD_LENGTH = 64;

    private final TokenIndex index;
    /** Token of each byte value for byte fallback, or -1. */
    private final int[] byteTokens = new int[256];
    /** See {@link #wordsMergeApart(String[])}. */
    private final boolean wordsMergeApart;
    private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();

    /**
     * @throws ModelFormatException if two tokens share a text or a byte token's text is not
     *                              "&lt;0xHH&gt;"
     */
    public SentencePieceTokenizer(Vocabulary vocab) {
        this(vocab, true);
    }

    /** @param byWords encode word by word where the vocabulary allows it (tests compare with false) */
    SentencePieceTokenizer(Vocabulary vocab, boolean byWords) {
        super(vocab, "", text -> text.replace(SPACE_MARK, ' ').getBytes(UTF_8), vocab.addSpacePrefix());
        this.index = new TokenIndex(vocab.tokens());
        this.wordsMergeApart = byWords && wordsMergeApart(vocab.tokens());
        for (int b = 0; b < 256; b++) {
            int id = index.find(String.format(Locale.ROOT, "<0x%02X>", b));
            // llama.cpp's fallback for vocabularies without byte tokens: the byte as a one-char token
            byteTokens[b] = id >= 0 || b >= 0x80 ? id : index.find(String.valueOf((char) b));
        }
    }

    // ---- encoding -------------------------------------------------------------------------------

    @Override
    void encodeText(String text, int start, int end, boolean afterSpecial, IntList out) {
        boolean spacePrefix = vocab.addSpacePrefix() && afterSpecial;
        char[] chars = new char[end - start + (spacePrefix ? 1 : 0)];
        int n = 0;
        if (spacePrefix) {
            chars[n++] = SPACE_MARK;
        }
        for (int i = start; i < end; i++) {
            char c = text.charAt(i);
            if (c == ' ') {
                c = SPACE_MARK;
            } else if (Character.isHighSurrogate(c) && i + 1 < end && Character.isLowSurrogate(text.charAt(i + 1))) {
                chars[n++] = c;
                c = text.charAt(++i);
            } else if (Character.isSurrogate(c)) {
                c = '?'; // an unpaired surrogate has no UTF-8 form; String.getBytes writes '?' too
            }
            chars[n++] = c;
        }

        if (n == 0) {
            return;
        }
        if (!wordsMergeApart) {
            encodeSymbols(chars, 0, n, out);
            return;
        }
        // No token spans a "▁" that follows another character, so the words starting there merge
        // apart, each as it would within the whole text: encode (or look up) word by word.
        int word = 0;
        for (int i = 1; i <= n; i++) {
            if (i == n || (chars[i] == SPACE_MARK && chars[i - 1] != SPACE_MARK)) {
                encodeWord(chars, word, i, out);
                word = i;
            }
        }
    }

    private void encodeWord(char[] chars, int start, int end, IntList out) {
        int length = end - start;
        if (length > CACHE_WORD_LENGTH) {
            encodeSymbols(chars, start, end, out);
            return;
        }
        String word = new String(chars, start, length);
        int[] ids = cache.get(word);
        if (ids == null) {
            IntList encoded = new IntList(length);
            encodeSymbols(chars, start, end, encoded);
            ids = encoded.toArray();
            if (cache.size() < CACHE_WORDS) {
                cache.putIfAbsent(word, ids);
            }
        }
        for (int id : ids) {
            out.add(id);
        }
    }

    /** SentencePiece BPE over {@code chars[start, end)}. */
    private void encodeSymbols(char[] chars, int start, int end, IntList out) {
        // Symbols start as characters (a surrogate pair is one); adjacent symbols merge when their
        // concatenation is a token, highest token score first.
        SymbolMerger merger = new SymbolMerger(end - start);
        for (int i = start; i < end; ) {
            int length = Character.isHighSurrogate(chars[i]) && i + 1 < end ? 2 : 1;
            merger.add(i, length, index.find(chars, i, length));
            i += length;
        }
        float[] scores = vocab.scores();
        merger.run((left, right, from, length) -> {
            int id = index.find(chars, from, length);
            return id < 0 ? SymbolMerger.Rule.NONE : SymbolMerger.Rule.merge(priority(scores[id]), id);
        });
        for (int s = merger.first(); s >= 0; s = merger.next(s)) {
            if (merger.token(s) >= 0) {
                out.add(merger.token(s));
            } else {
                emitBytes(Character.codePointAt(chars, merger.start(s)), out);
            }
        }
    }

    /**
     * Whether no token has a "▁" right after another character (true of SentencePiece
     * vocabularies, whose pieces start words rather than end them): then no merge crosses a word
     * start, and words can be encoded apart.
     */
    private static boolean wordsMergeApart(String[] tokens) {
        for (String token : tokens) {
            for (int i = token.indexOf(SPACE_MARK, 1); i > 0; i = token.indexOf(SPACE_MARK, i + 1)) {
                if (token.charAt(i - 1) != SPACE_MARK) {
                    return false;
                }
            }
        }
        return true;
    }

    /**
     * A merge priority that orders like the score, highest first: float bits made to sort like
     * the floats (negative ones flipped), then inverted; -0.0 is folded into 0.0, which compares
     * equal to it.
     */
    private static int priority(float score) {
        int bits = Float.floatToIntBits(score + 0.0f);
        return ~(bits >= 0 ? bits : bits ^ 0x7FFF_FFFF);
    }

    /** A character that is no token: byte tokens for its UTF-8 bytes, else the unknown token. */
    private void emitBytes(int codePoint, IntList out) {
        int byteCount = codePoint < 0x80 ? 1 : codePoint < 0x800 ? 2 : codePoint < 0x10000 ? 3 : 4;
        int first = out.size();
        for (int i = 0; i < byteCount; i++) {
            int shift = 6 * (byteCount - 1 - i);
            int b = i == 0 ? UTF8_LEAD[byteCount] | (codePoint >> shift) : 0x80 | ((codePoint >> shift) & 0x3F);
            int byteToken = byteTokens[b];
            if (byteToken < 0) {
                out.truncate(first);
                emitUnknown(codePoint, b, out);
                return;
            }
            out.add(byteToken);
        }
    }

    private void emitUnknown(int codePoint, int missingByte, IntList out) {
        if (vocab.unkId() < 0) {
            throw new ModelFormatException(String.format(Locale.ROOT,
                    "the vocabulary cannot encode U+%04X: it has no byte token <0x%02X> and no unknown token",
                    codePoint, missingByte));
        }
        out.add(vocab.unkId());
    }
}
