package dev.peregrine.tokenizer;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The added tokens of a Hugging Face tokenizer.json, cut out of a text before it is normalized and
 * pre-tokenized, as Hugging Face's AddedVocabulary does:
 * <ul>
 *   <li>two passes: tokens with {@code normalized: false} are found in the raw text, then tokens
 *       with {@code normalized: true} (as normalized) in each remaining piece once normalized;
 *   <li>leftmost-longest matching: the match that starts first wins, the longest of those, and the
 *       search goes on after it (this differs from llama.cpp's token-by-token partitioning in
 *       {@link SpecialTokens}, hence a class of its own);
 *   <li>{@code single_word}: a match next to a word character (Unicode \w) is not taken;
 *       {@code lstrip} / {@code rstrip}: white space before / after the match goes with it;
 *   <li>when special text is not parsed (Hugging Face's {@code split_special_tokens}), a match of a
 *       special token is not taken, and, as there, the search still goes on after it.
 * </ul>
 * Immutable and thread-safe.
 */
final class HfAddedTokens {

    /**
     * @param pattern the text matched: the content, or for a {@code normalized} token the content
     *                as the normalizer rewrites it
     */
    record Token(int id, String pattern, boolean singleWord, boolean lstrip, boolean rstrip, boolean special) {
    }

    private final Matcher raw;
    private final Matcher normalized;

    /** @param raw tokens matched in the raw text; @param normalized tokens matched in normalized text */
    HfAddedTokens(List<Token> raw, List<Token> normalized) {
        this.raw = new Matcher(raw);
        this.normalized = new Matcher(normalized);
    }

    /**
     * Cuts {@code text} at the matches of one pass's tokens. Returns fragments as triples (start,
     * end, token id), the id being -1 for text still to be encoded; empty text is left out.
     */
    IntList split(String text, boolean normalizedPass, boolean parseSpecial) {
        return (normalizedPass ? normalized : raw).split(text, parseSpecial);
    }

    /** Leftmost-longest matching of a set of tokens. */
    private static final class Matcher {
        /** Tokens by first char, longest pattern first. */
        private final Map<Character, Token[]> byFirstChar = new HashMap<>();
        /** The first chars, so that most positions are passed over without a map lookup. */
        private final BitSet firstChars = new BitSet(1 << 16);

        Matcher(List<Token> tokens) {
            Map<Character, List<Token>> groups = new HashMap<>();
            for (Token token : tokens) {
                if (!token.pattern().isEmpty()) { // Hugging Face never matches an empty token
                    groups.computeIfAbsent(token.pattern().charAt(0), c -> new ArrayList<>()).add(token);
                }
            }
            groups.forEach((c, list) -> {
                // longest first, so the first that matches is the longest match
                list.sort(Comparator.comparingInt((Token t) -> -t.pattern().length()));
                byFirstChar.put(c, list.toArray(Token[]::new));
                firstChars.set(c);
            });
        }

        IntList split(String text, boolean parseSpecial) {
            IntList fragments = new IntList(3);
            int from = 0;  // end of the last fragment written
            int pos = 0;   // where the search goes on
            while (pos < text.length()) {
                Token token = firstChars.get(text.charAt(pos)) ? longestAt(text, pos) : null;
                if (token == null) {
                    pos++;
                    continue;
                }
                int start = pos;
                int end = pos + token.pattern().length();
                pos = end;
                if ((token.special() && !parseSpecial)
                        || (token.singleWord() && (endsWithWordChar(text, start) || startsWithWordChar(text, end)))) {
                    continue;
                }
                if (token.lstrip()) {
                    while (start > from && CharClasses.isWhiteSpace(text.charAt(start - 1))) {
                        start--;
                    }
                }
                if (token.rstrip()) {
                    while (end < text.length() && CharClasses.isWhiteSpace(text.charAt(end))) {
                        end++;
                    }
                    pos = end;
                }
                add(fragments, from, start, -1);
                add(fragments, start, end, token.id());
                from = end;
            }
            add(fragments, from, text.length(), -1);
            return fragments;
        }

        private Token longestAt(String text, int pos) {
            Token[] candidates = byFirstChar.get(text.charAt(pos));
            for (Token token : candidates) {
                if (text.startsWith(token.pattern(), pos)) {
                    return token;
                }
            }
            return null;
        }

        private static void add(IntList fragments, int start, int end, int id) {
            if (end > start) {
                fragments.add(start);
                fragments.add(end);
                fragments.add(id);
            }
        }

        private static boolean endsWithWordChar(String text, int end) {
            return end > 0 && isWordChar(text.codePointBefore(end));
        }

        private static boolean startsWithWordChar(String text, int start) {
            return start < text.length() && isWordChar(text.codePointAt(start));
        }

        /** Unicode \w: alphabetic, marks, decimal digits, connector punctuation, joiners. */
        private static boolean isWordChar(int cp) {
            if (Character.isAlphabetic(cp) || cp == 0x200C || cp == 0x200D) {
                return true;
            }
            return switch (Character.getType(cp)) {
                case Character.NON_SPACING_MARK, Character.ENCLOSING_MARK, Character.COMBINING_SPACING_MARK,
                     Character.DECIMAL_DIGIT_NUMBER, Character.CONNECTOR_PUNCTUATION -> true;
                default -> false;
            };
        }
    }
}
