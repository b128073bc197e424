package dev.peregrine.tensor;

import dev.peregrine.ModelFormatException;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Where a model's weights come from, by GGUF tensor name: a GGUF file, or a Hugging Face
 * checkpoint seen through its name and layout mapping. Lets one weight loader serve both formats.
 */
public interface TensorSource {
    /** The file or directory, for error messages. */
    Path path();

    Optional<Tensor> findTensor(String name);

    /** How the files name the tensor called {@code name} here, for error messages. */
    default String fileName(String name) {
        return name;
    }

    /** A tensor by name, or a {@link ModelFormatException} naming the missing tensor. */
    default Tensor tensor(String name) {
        return findTensor(name).orElseThrow(
                () -> new ModelFormatException(path(), -1, "missing required tensor '" + fileName(name) + "'"));
    }
}
