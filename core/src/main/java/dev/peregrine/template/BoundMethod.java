package dev.peregrine.template;

/** {@code receiver.name} where name is a method ({@code text.strip}, {@code dict.items}), to be called. */
record BoundMethod(Object receiver, String name) {
}
