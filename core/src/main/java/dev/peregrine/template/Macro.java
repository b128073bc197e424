package dev.peregrine.template;

/** A macro value: its definition and the scope it was defined in (read at call time, as Jinja does). */
record Macro(Stmt.Macro definition, Scope closure) {
}
