package dev.peregrine.cuda;

import java.nio.file.Files;
import java.nio.file.Path;

/** The real model files beside the project (../shared/models), as the build (or scripts/gpu-check.sh) passes them in. */
final class SharedModels {
    private SharedModels() {
    }

    static Path model(String name) {
        Path dir = Path.of(System.getProperty("peregrine.shared.dir", "../shared")).resolve("models");
        Path file = dir.resolve(name);
        if (!Files.isRegularFile(file)) {
            throw new IllegalStateException("model file " + file.toAbsolutePath() + " is missing: check out ../shared beside the project");
        }
        return file;
    }

    static Path stories260K() {
        return model("stories260K.gguf");
    }

    static Path stories260KQ8() {
        return model("tinyllamas-stories-260k-q8_0.gguf");
    }

    static Path tinyLlamaQ4() {
        return model("TinyLLama-v0-Q4_0.gguf");
    }
}
