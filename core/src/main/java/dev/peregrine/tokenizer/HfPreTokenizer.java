package dev.peregrine.tokenizer;

import static java.nio.charset.StandardCharsets.UTF_8;

import java.util.ArrayList;
import java.util.List;
import java.util.function.IntPredicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A pre-tokenizer of a Hugging Face tokenizer.json: cuts normalized text into the pieces the model
 * encodes one by one, and may rewrite them (ByteLevel maps bytes to GPT-2's stand-in characters,
 * Metaspace spaces to "▁"), as Hugging Face's tokenizers library does. Immutable and thread-safe.
 */
sealed interface HfPreTokenizer {

    /**
     * A piece of text.
     *
     * @param atStart whether it starts where the whole input starts (Metaspace's "first" scheme
     *                puts its "▁" only there)
     */
    record Piece(String text, boolean atStart) {
    }

    /** Cuts {@code piece} into {@code out}; empty pieces are dropped. */
    void split(Piece piece, List<Piece> out);

    /** How the matches of a pattern become pieces (Hugging Face's SplitDelimiterBehavior). */
    enum Behavior {
        /** Matches are dropped. */
        REMOVED,
        /** Matches are pieces of their own. */
        ISOLATED,
        /** A match joins the piece before it. */
        MERGED_WITH_PREVIOUS,
        /** A match joins the piece after it. */
        MERGED_WITH_NEXT,
        /** Adjacent matches become one piece. */
        CONTIGUOUS
    }

    record Sequence(List<HfPreTokenizer> steps) implements HfPreTokenizer {
        @Override
        public void split(Piece piece, List<Piece> out) {
            List<Piece> pieces = List.of(piece);
            for (HfPreTokenizer step : steps) {
                List<Piece> next = new ArrayList<>(pieces.size() * 4);
                for (Piece p : pieces) {
                    step.split(p, next);
                }
                pieces = next;
            }
            out.addAll(pieces);
        }
    }

    /**
     * GPT-2's byte level: a space in front of a piece that has none ({@code add_prefix_space}),
     * GPT-2's expression ({@code use_regex}, {@link PreTokenizer}'s hand-written scanner), then
     * each byte of the piece's UTF-8 as its stand-in character.
     */
    record ByteLevel(boolean addPrefixSpace, PreTokenizer gpt2) implements HfPreTokenizer {
        @Override
        public void split(Piece piece, List<Piece> out) {
            String text = piece.text();
            if (addPrefixSpace && !text.startsWith(" ")) {
                text = " " + text;
            }
            if (gpt2 == null) {
                add(out, standIns(text), piece.atStart());
                return;
            }
            IntList ends = gpt2.split(text, 0, text.length());
            for (int i = 0, from = 0; i < ends.size(); i++) {
                add(out, standIns(text.substring(from, ends.get(i))), piece.atStart() && from == 0);
                from = ends.get(i);
            }
        }

        static String standIns(String text) {
            byte[] utf8 = text.getBytes(UTF_8);
            char[] chars = new char[utf8.length];
            for (int i = 0; i < utf8.length; i++) {
                chars[i] = ByteLevelBpeTokenizer.BYTE_CHARS[utf8[i] & 0xFF];
            }
            return new String(chars);
        }
    }

    /**
     * A split by a known expression through {@link PreTokenizer}'s hand-written scanners (Llama 3's,
     * Qwen 2's, GPT-2's), with the matches isolated: the same pieces as the regular expression.
     */
    record Scanner(PreTokenizer scanner) implements HfPreTokenizer {
        @Override
        public void split(Piece piece, List<Piece> out) {
            String text = piece.text();
            IntList ends = scanner.split(text, 0, text.length());
            for (int i = 0, from = 0; i < ends.size(); i++) {
                add(out, text.substring(from, ends.get(i)), piece.atStart() && from == 0);
                from = ends.get(i);
            }
        }
    }

    /** A split at the matches of a regular expression (or a literal string, quoted). */
    record Split(Pattern pattern, Behavior behavior, boolean invert) implements HfPreTokenizer {
        @Override
        public void split(Piece piece, List<Piece> out) {
            String text = piece.text();
            IntList segments = FileRegex.run(pattern, text, () -> {
                IntList s = new IntList(16);
                Matcher m = pattern.matcher(text);
                int previous = 0;
                while (m.find()) {
                    if (m.start() > previous) {
                        segment(s, previous, m.start(), invert);
                    }
                    segment(s, m.start(), m.end(), !invert); // an empty match counts, as in Hugging Face
                    previous = m.end();
                }
                if (previous < text.length()) {
                    segment(s, previous, text.length(), invert);
                }
                return s;
            });
            emit(piece, segments, behavior, out);
        }
    }

    /** A split at every character that {@code matches} (each one a match of its own). */
    record CharSplit(IntPredicate matches, Behavior behavior) implements HfPreTokenizer {
        @Override
        public void split(Piece piece, List<Piece> out) {
            String text = piece.text();
            IntList segments = new IntList(16);
            int previous = 0;
            for (int i = 0; i < text.length(); ) {
                int cp = text.codePointAt(i);
                int next = i + Character.charCount(cp);
                if (matches.test(cp)) {
                    if (i > previous) {
                        segment(segments, previous, i, false);
                    }
                    segment(segments, i, next, true);
                    previous = next;
                }
                i = next;
            }
            if (previous < text.length()) {
                segment(segments, previous, text.length(), false);
            }
            emit(piece, segments, behavior, out);
        }
    }

    /**
     * SentencePiece's spaces: each space becomes {@code replacement}, one is put in front of the
     * piece ({@code always}, or {@code first}: only where the input starts) unless it starts with
     * one, and with {@code split} each replacement starts a new piece.
     */
    record Metaspace(char replacement, Prepend prepend, boolean split) implements HfPreTokenizer {
        enum Prepend { ALWAYS, FIRST, NEVER }

        @Override
        public void split(Piece piece, List<Piece> out) {
            String text = piece.text().replace(' ', replacement);
            boolean prependHere = prepend == Prepend.ALWAYS || (prepend == Prepend.FIRST && piece.atStart());
            if (prependHere && (text.isEmpty() || text.charAt(0) != replacement)) {
                text = replacement + text;
            }
            if (!split) {
                add(out, text, piece.atStart());
                return;
            }
            IntList segments = new IntList(16);
            int previous = 0;
            for (int i = 0; i < text.length(); i++) {
                if (text.charAt(i) == replacement) {
                    if (i > previous) {
                        segment(segments, previous, i, false);
                    }
                    segment(segments, i, i + 1, true);
                    previous = i + 1;
                }
            }
            if (previous < text.length()) {
                segment(segments, previous, text.length(), false);
            }
            emit(new Piece(text, piece.atStart()), segments, Behavior.MERGED_WITH_NEXT, out);
        }
    }

    /** Hugging Face's Whitespace: runs of word characters, and runs of other non-space characters. */
    Pattern WORDS = Pattern.compile("\\w+|[^\\w\\s]+", Pattern.UNICODE_CHARACTER_CLASS);

    // ---- helpers --------------------------------------------------------------------------------

    private static void segment(IntList segments, int start, int end, boolean match) {
        segments.add(start);
        segments.add(end);
        segments.add(match ? 1 : 0);
    }

    /**
     * Turns segments (start, end, is-match triples covering the text) into pieces by {@code
     * behavior}, as Hugging Face's NormalizedString.split does.
     */
    private static void emit(Piece piece, IntList segments, Behavior behavior, List<Piece> out) {
        String text = piece.text();
        int n = segments.size() / 3;
        int[] starts = new int[n];
        int[] ends = new int[n];
        int count = 0;
        boolean previousMatch = false;
        switch (behavior) {
            case ISOLATED, REMOVED -> {
                for (int i = 0; i < n; i++) {
                    if (behavior == Behavior.ISOLATED || segments.get(3 * i + 2) == 0) {
                        starts[count] = segments.get(3 * i);
                        ends[count++] = segments.get(3 * i + 1);
                    }
                }
            }
            case CONTIGUOUS, MERGED_WITH_PREVIOUS -> {
                for (int i = 0; i < n; i++) {
                    boolean match = segments.get(3 * i + 2) == 1;
                    boolean join = behavior == Behavior.CONTIGUOUS ? match == previousMatch : match && !previousMatch;
                    if (join && count > 0) {
                        ends[count - 1] = segments.get(3 * i + 1);
                    } else {
                        starts[count] = segments.get(3 * i);
                        ends[count++] = segments.get(3 * i + 1);
                    }
                    previousMatch = match;
                }
            }
            case MERGED_WITH_NEXT -> {
                // from the end: a match joins the piece after it
                for (int i = n - 1; i >= 0; i--) {
                    boolean match = segments.get(3 * i + 2) == 1;
                    if (match && !previousMatch && count > 0) {
                        starts[count - 1] = segments.get(3 * i);
                    } else {
                        starts[count] = segments.get(3 * i);
                        ends[count++] = segments.get(3 * i + 1);
                    }
                    previousMatch = match;
                }
                reverse(starts, count);
                reverse(ends, count);
            }
        }
        for (int i = 0; i < count; i++) {
            add(out, text.substring(starts[i], ends[i]), piece.atStart() && starts[i] == 0);
        }
    }

    private static void reverse(int[] a, int count) {
        for (int i = 0, j = count - 1; i < j; i++, j--) {
            int t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
    }

    private static void add(List<Piece> out, String text, boolean atStart) {
        if (!text.isEmpty()) {
            out.add(new Piece(text, atStart));
        }
    }
}
