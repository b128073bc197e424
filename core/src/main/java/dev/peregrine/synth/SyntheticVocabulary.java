package dev.peregrine.synth;

import dev.peregrine.tokenizer.Vocabulary;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.Locale;
import java.util.SequencedSet;

/**
 * A SentencePiece-style vocabulary of any size, laid out as llama.cpp's "llama" vocabularies are:
 * {@code <unk>}, {@code <s>}, {@code </s>}, the 256 byte tokens {@code <0x00>..<0xFF>}, then
 * ordinary pieces with descending scores. Any text encodes (characters without a piece fall back
 * to byte tokens) and decodes back to itself.
 *
 * <p>Every piece longer than one character is its shorter prefix plus one character, and that
 * prefix comes earlier, so SentencePiece's merges can reach every piece: common English words
 * first, then every lowercase string of length 2, 3, ... with and without the "▁" word start.
 *
 * @param tokens token texts by id
 * @param scores merge priorities (0 for special and byte tokens, then 0, -1, -2, ...)
 * @param types  llama.cpp token types ({@link Vocabulary#NORMAL}, ...)
 */
public record SyntheticVocabulary(String[] tokens, float[] scores, int[] types) {
    /** {@code <unk>}, {@code <s>}, {@code </s>} and the 256 byte tokens. */
    public static final int FIXED_TOKENS = 3 + 256;
    public static final int UNK_ID = 0;
    public static final int BOS_ID = 1;
    public static final int EOS_ID = 2;
    static final String SPACE = "\u2581";

    private static final String SINGLE_CHARACTERS =
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()[]/&%$#@*+=_<>";
    private static final String[] COMMON_WORDS = {
            "the", "and", "of", "to", "in", "is", "it", "that", "was", "for", "on", "are", "with", "as", "he",
            "she", "they", "we", "you", "be", "at", "one", "have", "this", "from", "or", "had", "by", "not", "but",
            "what", "all", "were", "when", "there", "can", "an", "your", "which", "their", "said", "if", "do",
            "will", "each", "about", "how", "up", "out", "them", "then", "many", "some", "so", "these", "would",
            "other", "into", "has", "more", "her", "two", "like", "him", "see", "time", "could", "no", "make",
            "than", "first", "been", "its", "who", "now", "people", "my", "made", "over", "did", "down", "only",
            "way", "find", "use", "may", "water", "long", "little", "very", "after", "words", "called", "just",
            "where", "most", "know", "Hello", "Once", "upon", "day", "world",
    };
    private static final String[] COMMON_FRAGMENTS = {"ing", "ed", "er", "es", "ly", "tion", "ment", "ness", "est", "ous"};

    /**
     * A vocabulary of exactly {@code size} tokens (BOS 1, EOS 2, UNK 0).
     *
     * @throws IllegalArgumentException if {@code size} leaves no room for ordinary pieces
     */
    public static SyntheticVocabulary of(int size) {
        if (size <= FIXED_TOKENS) {
            throw new IllegalArgumentException("a synthetic SentencePiece vocabulary needs more than " + FIXED_TOKENS
                    + " tokens (3 special + 256 byte tokens), got " + size);
        }
        String[] tokens = new String[size];
        float[] scores = new float[size];
        int[] types = new int[size];
        tokens[UNK_ID] = "<unk>";
        tokens[BOS_ID] = "<s>";
        tokens[EOS_ID] = "</s>";
        types[UNK_ID] = Vocabulary.UNKNOWN;
        types[BOS_ID] = Vocabulary.CONTROL;
        types[EOS_ID] = Vocabulary.CONTROL;
        for (int b = 0; b < 256; b++) {
            tokens[3 + b] = String.format(Locale.ROOT, "<0x%02X>", b);
            types[3 + b] = Vocabulary.BYTE;
        }
        String[] pieces = pieces(size - FIXED_TOKENS);
        for (int i = 0; i < pieces.length; i++) {
            int id = FIXED_TOKENS + i;
            tokens[id] = pieces[i];
            types[id] = Vocabulary.NORMAL;
            scores[id] = -i; // earlier pieces merge first, as frequent pieces do in a trained vocabulary
        }
        return new SyntheticVocabulary(tokens, scores, types);
    }

    public int size() {
        return tokens.length;
    }

    /** The first {@code count} ordinary pieces, in score order. */
    static String[] pieces(int count) {
        SequencedSet<String> pieces = new LinkedHashSet<>();
        pieces.add(SPACE);
        for (String prefix : new String[] {"", SPACE}) {
            for (char c : SINGLE_CHARACTERS.toCharArray()) {
                pieces.add(prefix + c);
            }
        }
        for (String word : COMMON_WORDS) {
            addWithPrefixes(pieces, SPACE + word);
        }
        for (String fragment : COMMON_FRAGMENTS) {
            addWithPrefixes(pieces, fragment);
        }
        // Then every lowercase string, shortest first: unbounded, so any size can be filled.
        for (int length = 2; pieces.size() < count; length++) {
            char[] s = new char[length];
            Arrays.fill(s, 'a');
            do {
                pieces.add(SPACE + new String(s));
                pieces.add(new String(s));
            } while (pieces.size() < count && increment(s));
        }
        return pieces.stream().limit(count).toArray(String[]::new);
    }

    private static void addWithPrefixes(SequencedSet<String> pieces, String piece) {
        for (int end = 2; end <= piece.length(); end++) {
            pieces.add(piece.substring(0, end));
        }
    }

    /** Steps {@code s} to the next lowercase string of its length; false after "zz...z". */
    private static boolean increment(char[] s) {
        for (int i = s.length - 1; i >= 0; i--) {
            if (s[i] < 'z') {
                s[i]++;
                return true;
            }
            s[i] = 'a';
        }
        return false;
    }
}
