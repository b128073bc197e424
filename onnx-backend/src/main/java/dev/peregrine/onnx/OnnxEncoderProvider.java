package dev.peregrine.onnx;

import dev.peregrine.spi.Encoder;
import dev.peregrine.spi.EncoderConfig;
import dev.peregrine.spi.EncoderProvider;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/** Opens {@code .onnx} encoder models with ONNX Runtime. */
public final class OnnxEncoderProvider implements EncoderProvider {
    @Override
    public String name() {
        return "onnx";
    }

    @Override
    public boolean accepts(Path modelFile) {
        Path name = modelFile.getFileName();
        return name != null && name.toString().toLowerCase(Locale.ROOT).endsWith(".onnx") && !Files.isDirectory(modelFile);
    }

    @Override
    public Encoder open(Path modelFile, EncoderConfig config) {
        return OnnxEncoder.open(modelFile, config);
    }
}
