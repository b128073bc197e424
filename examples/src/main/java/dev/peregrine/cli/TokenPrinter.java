package dev.peregrine.cli;

import dev.peregrine.GeneratedToken;
import java.io.PrintStream;
import java.util.function.Consumer;

/**
 * Streams generated text to the command's output, flushing every token, and stops the generation
 * once that output is gone (a closed pipe, as in {@code peregrine generate ... | head}): a
 * {@code PrintStream} swallows the write error, so without this check the model would go on to the
 * last token for no reader. {@link Peregrine#run} ends such a command quietly, with status 0.
 */
final class TokenPrinter implements Consumer<GeneratedToken> {
    /** Thrown out of the token callback, which cancels the request. */
    static final class OutputClosedException extends RuntimeException {
        OutputClosedException() {
            super("the output was closed", null, false, false);
        }
    }

    private final PrintStream out;

    TokenPrinter(PrintStream out) {
        this.out = out;
    }

    @Override
    public void accept(GeneratedToken token) {
        out.print(token.text());
        out.flush();
        if (out.checkError()) {
            throw new OutputClosedException();
        }
    }
}
