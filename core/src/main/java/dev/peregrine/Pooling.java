package dev.peregrine;

/** How an encoder's per-token hidden states become one vector per text. */
public enum Pooling {
    /** The average over the text's tokens, padding excluded (sentence-transformers' "mean"; MiniLM, e5). */
    MEAN,
    /** The first token's state, [CLS] for BERT models (bge). */
    CLS,
    /** The last real token's state (decoder-style embedders). */
    LAST_TOKEN
}
