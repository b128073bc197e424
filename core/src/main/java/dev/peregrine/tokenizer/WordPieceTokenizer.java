package dev.peregrine.tokenizer;

import static java.nio.charset.StandardCharsets.UTF_8;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufMetadata;
import java.text.Normalizer;

/**
 * The WordPiece tokenizer of llama.cpp's "bert" vocabulary type (BERT and its sentence-embedding
 * descendants: BGE, MiniLM, E5, nomic, ...), following Hugging Face's BertNormalizer,
 * BertPreTokenizer and WordPiece model, which made llama.cpp's test vectors.
 *
 * <p>GGUF stores the vocabulary the way llama.cpp's converter writes it: a piece that starts a word
 * carries a "▁" in front ("▁hello"), a continuation piece is stored without BERT's "##" ("ing"
 * for "##ing"), and bracketed special tokens ("[CLS]") are unchanged. So a word is matched as
 * "▁" + word.
 *
 * <p>Encoding:
 * <ol>
 *   <li>Special-token partitioning ({@link SpecialTokens}), as for every vocabulary type.
 *   <li>Normalisation of each remaining fragment: NUL, U+FFFD and control characters (other than
 *       tab, line feed and carriage return) are dropped; with {@code strip_accents}, the text is
 *       decomposed (NFD) and its non-spacing marks dropped; with {@code lowercase}, characters are
 *       lower-cased. {@code lowercase} defaults to true (uncased BERT) and {@code strip_accents} to
 *       {@code lowercase}, as in llama.cpp and Hugging Face.
 *   <li>Words: white space separates them; every punctuation character (Unicode P*, plus ASCII
 *       symbols such as $ + &lt; = &gt; ^ ` | ~) and CJK ideograph is a word of its own.
 *   <li>WordPiece: greedy longest match from the start of "▁" + word, then from where the match
 *       ended, until the word is covered. A word that cannot be covered, or that is longer than
 *       {@value #MAX_WORD_CHARS} characters, becomes [UNK].
 * </ol>
 * With special tokens, [CLS] (the vocabulary's BOS) comes first and [SEP] last, each when the
 * vocabulary asks for it ({@code add_bos_token}, {@code add_sep_token}, both true by default).
 *
 * <p>Decoding joins the pieces with "▁" read as a space and drops the space before the first
 * word; control tokens such as [CLS] decode to nothing. The text comes back lower-cased, without
 * accents and with spaces around punctuation ("hello , world !"): WordPiece cannot restore it.
 *
 * <p>Immutable and thread-safe.
 */
public final class WordPieceTokenizer extends VocabularyTokenizer {
    public static final String KEY_LOWERCASE = "tokenizer.ggml.normalizer.lowercase";
    public static final String KEY_STRIP_ACCENTS = "tokenizer.ggml.normalizer.strip_accents";

    private static final char WORD_START = '\u2581';
    /** Hugging Face's max_input_chars_per_word: longer words are [UNK] without trying. */
    private static final int MAX_WORD_CHARS = 100;

    private final TokenIndex index;
    private final boolean lowercase;
    private final boolean stripAccents;

    /**
     * @throws ModelFormatException if two tokens share a text
     */
    public WordPieceTokenizer(Vocabulary vocab, boolean lowercase, boolean stripAccents) {
        super(vocab, "", text -> text.replace(WORD_START, ' ').getBytes(UTF_8), true);
        this.index = new TokenIndex(vocab.tokens());
        this.lowercase = lowercase;
        this.stripAccents = stripAccents;
    }

    /**
     * The tokenizer of GGUF metadata whose {@code tokenizer.ggml.model} is "bert". Absent keys take
     * llama.cpp's defaults for this model: [CLS] 101 as BOS, [UNK] 100, [SEP] 102, [PAD] 0, no EOS,
     * [CLS] and [SEP] added, lower-casing and accent stripping on.
     *
     * @throws ModelFormatException if the vocabulary is missing or malformed; the message names the
     *                              key
     */
    public static WordPieceTokenizer fromGguf(GgufMetadata metadata) {
        Vocabulary vocab = Vocabulary.fromGguf(metadata,
                new Vocabulary.Defaults(101, -1, 100, 102, 0, true, true, false));
        boolean lowercase = metadata.optBoolean(KEY_LOWERCASE).orElse(true);
        boolean stripAccents = metadata.optBoolean(KEY_STRIP_ACCENTS).orElse(lowercase);
        return new WordPieceTokenizer(vocab, lowercase, stripAccents);
    }

    /** [SEP] (when the vocabulary asks for it), as llama.cpp ends a WordPiece sequence; no EOS. */
    @Override
    void addClosingTokens(IntList out) {
        if (vocab.addSep()) {
            out.add(vocab.sepId());
        }
    }

    // ---- encoding -------------------------------------------------------------------------------

    /** Normalises a fragment without special tokens, cuts it into words and encodes each. */
    @Override
    void encodeText(String whole, int start, int end, boolean afterSpecial, IntList out) {
        String fragment = whole.substring(start, end);
        String text = stripAccents ? Normalizer.normalize(fragment, Normalizer.Form.NFD) : fragment;
        StringBuilder word = new StringBuilder().append(WORD_START);
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            i += Character.charCount(cp);
            if (cp == 0 || cp == 0xFFFD || isControl(cp)
                    || (stripAccents && Character.getType(cp) == Character.NON_SPACING_MARK)) {
                continue;
            }
            if (CharClasses.isWhiteSpace(cp)) {
                encodeWord(word, out);
                continue;
            }
            if (lowercase && cp == 0x130) {
                word.append("i\u0307"); // İ: the one character whose lower case is two
                continue;
            }
            if (lowercase) {
                cp = Character.toLowerCase(cp);
            }
            if (isPunctuation(cp) || isCjk(cp)) {
                encodeWord(word, out);
                word.appendCodePoint(cp);
                encodeWord(word, out);
            } else {
                word.appendCodePoint(cp);
            }
        }
        encodeWord(word, out);
    }

    /** Encodes the word in {@code word} (after its leading "▁"), if any, and empties it. */
    private void encodeWord(StringBuilder word, IntList out) {
        int n = word.length();
        if (n == 1) {
            return;
        }
        char[] chars = new char[n];
        word.getChars(0, n, chars, 0);
        word.setLength(1);

        int first = out.size();
        if (Character.codePointCount(chars, 1, n - 1) <= MAX_WORD_CHARS) {
            longestMatchFirst(n, index.maxLength(), (start, end) -> index.find(chars, start, end - start), out);
        }
        if (out.size() == first) {
            if (vocab.unkId() < 0) {
                throw new ModelFormatException("the vocabulary cannot encode the word '" + new String(chars, 1, n - 1)
                        + "': it has no unknown token ('" + Vocabulary.KEY_UNK + "')");
            }
            out.add(vocab.unkId());
        }
    }

    /** The token whose text is a region of a word, or -1. */
    @FunctionalInterface
    interface PieceFinder {
        int find(int start, int end);
    }

    /**
     * WordPiece's greedy longest-match-first over a word of {@code length} chars: the longest
     * piece from the start, then the longest from where it ended, until the word is covered. Adds
     * the pieces to {@code out} and returns true; returns false, leaving {@code out} as it was,
     * when some position starts no piece. Shared with Hugging Face's WordPiece model ({@link HfModel}).
     *
     * @param maxLength no piece is longer (in chars)
     */
    static boolean longestMatchFirst(int length, int maxLength, PieceFinder pieces, IntList out) {
        int first = out.size();
        for (int start = 0; start < length; ) {
            int end = Math.min(length, start + maxLength);
            int id = -1;
            for (; end > start && (id = pieces.find(start, end)) < 0; end--) {
                // shorten until a token matches
            }
            if (id < 0) {
                out.truncate(first);
                return false;
            }
            out.add(id);
            start = end;
        }
        return true;
    }

    /**
     * BERT's control characters as the tokenizers library and llama.cpp take them: Unicode
     * categories Cc, Cf, Co and Cs, except tab, line feed and carriage return, which are white
     * space. Not Cn: their category tables list no unassigned code points (or noncharacters such as
     * U+FFFF), so those stay in the text and become [UNK], where Python's BertTokenizer drops them.
     */
    static boolean isControl(int cp) {
        if (cp == '\t' || cp == '\n' || cp == '\r') {
            return false;
        }
        return switch (Character.getType(cp)) {
            case Character.CONTROL, Character.FORMAT, Character.PRIVATE_USE, Character.SURROGATE -> true;
            default -> false;
        };
    }

    /** Hugging Face's BERT punctuation: all ASCII punctuation and symbols, and Unicode P*. */
    static boolean isPunctuation(int cp) {
        if (cp < 0x80) {
            return (cp >= '!' && cp <= '/') || (cp >= ':' && cp <= '@') || (cp >= '[' && cp <= '`')
                    || (cp >= '{' && cp <= '~');
        }
        return switch (Character.getType(cp)) {
            case Character.CONNECTOR_PUNCTUATION, Character.DASH_PUNCTUATION, Character.START_PUNCTUATION,
                 Character.END_PUNCTUATION, Character.INITIAL_QUOTE_PUNCTUATION,
                 Character.FINAL_QUOTE_PUNCTUATION, Character.OTHER_PUNCTUATION -> true;
            default -> false;
        };
    }

    /**
     * BERT's CJK ideographs, each a word of its own. The range from U+2B920 (not U+2B820) is
     * Hugging Face's, which llama.cpp follows.
     */
    static boolean isCjk(int cp) {
        return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF)
                || (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F)
                || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF)
                || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
    }
}
