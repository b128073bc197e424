package dev.peregrine.cli;

/** The command line itself is wrong (unknown command or option, missing value): exit status 2 with the usage text. */
final class UsageException extends RuntimeException {
    UsageException(String message) {
        super(message);
    }
}
