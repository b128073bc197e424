package dev.peregrine.template;

/** A 1-based line and column in the template source, for error messages. */
record Pos(int line, int column) {
}
