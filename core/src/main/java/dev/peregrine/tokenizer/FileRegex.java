package dev.peregrine.tokenizer;

import dev.peregrine.ModelFormatException;
import java.util.function.Supplier;
import java.util.regex.Pattern;

/**
 * Runs a regular expression read from a tokenizer file. java.util.regex recurses on repeated
 * groups ({@code (a|b)*}), so such a pattern can overflow the stack on a long text: that becomes a
 * {@link ModelFormatException} naming the pattern, not a {@link StackOverflowError}.
 */
final class FileRegex {
    private FileRegex() {
    }

    static <T> T run(Pattern pattern, String text, Supplier<T> matching) {
        try {
            return matching.get();
        } catch (StackOverflowError e) {
            throw new ModelFormatException("the tokenizer's regular expression '" + pattern.pattern() + "' overflowed the "
                    + "stack on a text of " + text.length() + " characters (java.util.regex recurses on repeated groups; "
                    + "a larger thread stack, -Xss, gets further)");
        }
    }
}
