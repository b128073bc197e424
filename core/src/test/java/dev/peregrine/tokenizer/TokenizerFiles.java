package dev.peregrine.tokenizer;

import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.gguf.GgufMetadata;
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

    /** The tokenizer of a GGUF file, of the type the caller expects. */
    @SuppressWarnings("unchecked")
    static <T extends Tokenizer> T load(String relative) {
        return (T) Tokenizers.fromGguf(metadata(relative));
    }

    static GgufMetadata metadata(String relative) {
        try (Arena arena = Arena.ofConfined()) {
            // metadata values are plain Java objects, so they outlive the mapping
            return GgufFile.open(file(relative), arena).metadata();
        }
    }

    static final String LLAMA_SPM = "models/tokenizers/ggml-vocab-llama-spm.gguf";
    static final String PHI_3 = "models/tokenizers/ggml-vocab-phi-3.gguf";
    static final String BERT_BGE = "models/tokenizers/ggml-vocab-bert-bge.gguf";
    static final String DEEPSEEK_CODER = "models/tokenizers/ggml-vocab-deepseek-coder.gguf";
    static final String DEEPSEEK_LLM = "models/tokenizers/ggml-vocab-deepseek-llm.gguf";
    static final String FALCON = "models/tokenizers/ggml-vocab-falcon.gguf";
    static final String GPT_2 = "models/tokenizers/ggml-vocab-gpt-2.gguf";
    /** Same tokens and merges as MPT's, but no tokenizer.ggml.pre: llama.cpp's default pre-tokenizer. */
    static final String GPT_NEOX = "models/tokenizers/ggml-vocab-gpt-neox.gguf";
    static final String LLAMA_BPE = "models/tokenizers/ggml-vocab-llama-bpe.gguf";
    static final String MPT = "models/tokenizers/ggml-vocab-mpt.gguf";
    static final String REFACT = "models/tokenizers/ggml-vocab-refact.gguf";
    static final String STARCODER = "models/tokenizers/ggml-vocab-starcoder.gguf";
    static final String STORIES_260K = "models/stories260K.gguf";
}
