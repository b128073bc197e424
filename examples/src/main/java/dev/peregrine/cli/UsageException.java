package dev.peregrine.cli;

/** The command line itself is wrong (unknown command or option, missing value): exit status 2 with the usage text. */
final class UsageException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    UsageException(String message) {
        super(message);
    }
}
