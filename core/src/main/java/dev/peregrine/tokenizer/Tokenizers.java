package dev.peregrine.tokenizer;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufMetadata;

/** Builds the tokenizer a model file describes. */
public final class Tokenizers {
    public static final String KEY_MODEL = "tokenizer.ggml.model";

    private Tokenizers() {
    }

    /**
     * The tokenizer of GGUF metadata, chosen by {@code tokenizer.ggml.model}.
     *
     * @throws ModelFormatException if the key is missing, names a tokenizer Peregrine does not
     *                              support yet, or the vocabulary is malformed
     */
    public static Tokenizer fromGguf(GgufMetadata metadata) {
        String model = metadata.getString(KEY_MODEL);
        return switch (model) {
            case "llama" -> new SentencePieceTokenizer(Vocabulary.fromGguf(metadata));
            default -> throw new ModelFormatException(
                    "tokenizer model '" + model + "' is not supported yet (supported: llama)");
        };
    }
}
