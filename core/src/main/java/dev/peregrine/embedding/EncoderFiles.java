package dev.peregrine.embedding;

import dev.peregrine.ModelFormatException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;

/**
 * The files of an encoder model: the network, its Hugging Face tokenizer, and the folder where
 * sentence-transformers metadata (modules.json, 1_Pooling/config.json, ...) would be.
 *
 * <p>Accepted layouts:
 * <ul>
 *   <li>a directory with {@code model.onnx} (or {@code onnx/model.onnx}, as Hugging Face repositories
 *       keep it) and {@code tokenizer.json};
 *   <li>a {@code .onnx} file with {@code tokenizer.json} beside it, or {@code NAME-tokenizer.json} for
 *       {@code NAME.onnx} (as LangChain4j's model jars name it), or {@code tokenizer.json} one folder
 *       up when the file is in a folder named {@code onnx}.
 * </ul>
 *
 * @param tokenizerConfig tokenizer_config.json beside the tokenizer, or null
 */
public record EncoderFiles(Path model, Path tokenizer, Path tokenizerConfig, Path metadataDir) {
    public static final String MODEL_FILE = "model.onnx";
    public static final String TOKENIZER_FILE = "tokenizer.json";
    public static final String TOKENIZER_CONFIG_FILE = "tokenizer_config.json";

    /** Whether the path names an encoder model (a {@code .onnx} file or a directory holding one), not whether it is valid. */
    public static boolean isEncoderPath(Path path) {
        if (Files.isDirectory(path)) {
            return Files.isRegularFile(path.resolve(MODEL_FILE)) || Files.isRegularFile(path.resolve("onnx").resolve(MODEL_FILE));
        }
        Path name = path.getFileName();
        return name != null && name.toString().toLowerCase(Locale.ROOT).endsWith(".onnx");
    }

    /**
     * Finds the files of the encoder at {@code path} (see {@link #isEncoderPath}).
     *
     * @throws ModelFormatException if the model file or its tokenizer is missing
     */
    public static EncoderFiles find(Path path) {
        Path model;
        if (Files.isDirectory(path)) {
            model = Files.isRegularFile(path.resolve(MODEL_FILE)) ? path.resolve(MODEL_FILE) : path.resolve("onnx").resolve(MODEL_FILE);
        } else {
            model = path;
        }
        if (!Files.isRegularFile(model)) {
            throw new ModelFormatException(model, -1, "no such file");
        }
        Path tokenizer = tokenizerOf(path, model).orElseThrow(() -> new ModelFormatException(model, -1,
                "no tokenizer found: put the model's Hugging Face tokenizer.json beside it"));
        Path dir = tokenizer.toAbsolutePath().getParent();
        Path config = dir.resolve(TOKENIZER_CONFIG_FILE);
        return new EncoderFiles(model, tokenizer, Files.isRegularFile(config) ? config : null, dir);
    }

    private static Optional<Path> tokenizerOf(Path given, Path model) {
        if (Files.isDirectory(given)) {
            return existing(given.resolve(TOKENIZER_FILE));
        }
        Path dir = model.toAbsolutePath().getParent();
        String name = model.getFileName().toString();
        String stem = name.substring(0, name.length() - ".onnx".length());
        return existing(dir.resolve(TOKENIZER_FILE))
                .or(() -> existing(dir.resolve(stem + "-" + TOKENIZER_FILE)))
                .or(() -> dir.getFileName() != null && dir.getFileName().toString().equals("onnx") && dir.getParent() != null
                        ? existing(dir.getParent().resolve(TOKENIZER_FILE)) : Optional.empty());
    }

    private static Optional<Path> existing(Path p) {
        return Files.isRegularFile(p) ? Optional.of(p) : Optional.empty();
    }
}
