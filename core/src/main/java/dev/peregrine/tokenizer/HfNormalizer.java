package dev.peregrine.tokenizer;

import java.text.Normalizer;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A normalizer of a Hugging Face tokenizer.json: rewrites each piece of text between added tokens
 * before it is pre-tokenized, as Hugging Face's tokenizers library does (offsets, which Peregrine
 * does not report, are not tracked). Immutable and thread-safe.
 */
sealed interface HfNormalizer {

    String normalize(String text);

    /** NFC, NFD, NFKC or NFKD. */
    record Unicode(Normalizer.Form form) implements HfNormalizer {
        @Override
        public String normalize(String text) {
            return Normalizer.normalize(text, form);
        }
    }

    /** Lower case, character by character (no final-sigma rule), as Rust's {@code char::to_lowercase}. */
    record Lowercase() implements HfNormalizer {
        @Override
        public String normalize(String text) {
            return HfNormalizer.lowercase(text);
        }
    }

    /** Removes white space (the Unicode White_Space property) from either end. */
    record Strip(boolean left, boolean right) implements HfNormalizer {
        @Override
        public String normalize(String text) {
            int start = 0;
            int end = text.length();
            while (left && start < end && CharClasses.isWhiteSpace(text.charAt(start))) {
                start++;
            }
            while (right && end > start && CharClasses.isWhiteSpace(text.charAt(end - 1))) {
                end--;
            }
            return text.substring(start, end);
        }
    }

    /** Puts {@code prefix} in front of text that is not empty. */
    record Prepend(String prefix) implements HfNormalizer {
        @Override
        public String normalize(String text) {
            return text.isEmpty() ? text : prefix + text;
        }
    }

    /** Replaces every match of {@code pattern} (a literal string or a regular expression) by {@code content}. */
    record Replace(Pattern pattern, String content) implements HfNormalizer {
        @Override
        public String normalize(String text) {
            return FileRegex.run(pattern, text, () -> pattern.matcher(text).replaceAll(Matcher.quoteReplacement(content)));
        }
    }

    record Sequence(List<HfNormalizer> normalizers) implements HfNormalizer {
        @Override
        public String normalize(String text) {
            for (HfNormalizer normalizer : normalizers) {
                text = normalizer.normalize(text);
            }
            return text;
        }
    }

    /**
     * BERT's: drops NUL, U+FFFD and control characters and turns white space into spaces
     * ({@code clean_text}); puts spaces around CJK ideographs ({@code handle_chinese_chars});
     * decomposes and drops non-spacing marks ({@code strip_accents}, by default as
     * {@code lowercase}); lower-cases. The character classes are {@link WordPieceTokenizer}'s.
     */
    record Bert(boolean cleanText, boolean handleChineseChars, boolean stripAccents, boolean lowercase)
            implements HfNormalizer {
        @Override
        public String normalize(String text) {
            StringBuilder b = new StringBuilder(text.length() + 8);
            for (int i = 0; i < text.length(); ) {
                int cp = text.codePointAt(i);
                i += Character.charCount(cp);
                if (cleanText && (cp == 0 || cp == 0xFFFD || WordPieceTokenizer.isControl(cp))) {
                    continue;
                }
                if (cleanText && CharClasses.isWhiteSpace(cp)) {
                    cp = ' ';
                }
                if (handleChineseChars && WordPieceTokenizer.isCjk(cp)) {
                    b.append(' ').appendCodePoint(cp).append(' ');
                } else {
                    b.appendCodePoint(cp);
                }
            }
            String result = b.toString();
            if (stripAccents) {
                result = dropNonSpacingMarks(Normalizer.normalize(result, Normalizer.Form.NFD));
            }
            return lowercase ? HfNormalizer.lowercase(result) : result;
        }

        private static String dropNonSpacingMarks(String text) {
            StringBuilder b = new StringBuilder(text.length());
            for (int i = 0; i < text.length(); ) {
                int cp = text.codePointAt(i);
                i += Character.charCount(cp);
                if (Character.getType(cp) != Character.NON_SPACING_MARK) {
                    b.appendCodePoint(cp);
                }
            }
            return b.toString();
        }
    }

    /**
     * Each code point's full lower case: the simple mapping except for U+0130 (İ), the one
     * character whose lower case is two ("i̇"). Unlike {@link String#toLowerCase}, no context rules.
     */
    static String lowercase(String text) {
        StringBuilder b = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            i += Character.charCount(cp);
            if (cp == 0x130) {
                b.append("i\u0307");
            } else {
                b.appendCodePoint(Character.toLowerCase(cp));
            }
        }
        return b.toString();
    }
}
