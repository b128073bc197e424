package dev.peregrine.it;

import java.nio.file.Files;
import java.nio.file.Path;

/** The real model files beside the project (../shared/models), as the build passes them in. */
final class SharedModels {
    private SharedModels() {
    }

    static Path dir() {
        Path dir = Path.of(System.getProperty("peregrine.shared.dir", "../shared")).resolve("models");
        if (!Files.isDirectory(dir)) {
            throw new IllegalStateException("the shared model directory " + dir.toAbsolutePath()
                    + " is missing: check out ../shared beside the project");
        }
        return dir;
    }

    static Path stories260K() {
        return dir().resolve("stories260K.gguf");
    }

    static Path stories260KQ8() {
        return dir().resolve("tinyllamas-stories-260k-q8_0.gguf");
    }

    static Path tinyLlamaQ4() {
        return dir().resolve("TinyLLama-v0-Q4_0.gguf");
    }
}
