package dev.peregrine.tokenizer;

import dev.peregrine.format.gguf.GgufFile;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;

/** The real tokenizer files in ../shared, loaded through the GGUF reader. */
final class TokenizerFiles {
    private TokenizerFiles() {
    }

    /** The shared directory: set by the build, else ../shared from the working directory. */
    static Path sharedDir() {
        return Path.of(System.getProperty("peregrine.shared.dir", "../shared"));
    }

    static Path file(String relative) {
        Path path = sharedDir().resolve(relative);
        if (!Files.isRegularFile(path)) {
            throw new IllegalStateException("missing test file " + path.toAbsolutePath()
                    + " (set -Dperegrine.shared.dir to the shared directory)");
        }
        return path;
    }

    static SentencePieceTokenizer load(String relative) {
        try (Arena arena = Arena.ofConfined()) {
            // metadata values are plain Java objects, so they outlive the mapping
            return (SentencePieceTokenizer) Tokenizers.fromGguf(GgufFile.open(file(relative), arena).metadata());
        }
    }

    static final String LLAMA_SPM = "models/tokenizers/ggml-vocab-llama-spm.gguf";
    static final String PHI_3 = "models/tokenizers/ggml-vocab-phi-3.gguf";
    static final String STORIES_260K = "models/stories260K.gguf";
}
