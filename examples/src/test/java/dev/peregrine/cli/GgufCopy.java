package dev.peregrine.cli;

import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.gguf.GgufMetadata;
import dev.peregrine.format.gguf.GgufTensorInfo;
import dev.peregrine.format.gguf.GgufWriter;
import dev.peregrine.tensor.DType;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Writes a copy of a GGUF file with some metadata values replaced, entries added, and some F32
 * tensors (of zeros) added; the tensors' bytes are copied as they are.
 */
final class GgufCopy {
    private GgufCopy() {
    }

    static void copy(Path source, Path target, Map<String, Object> replacedValues, Map<String, Long> addedF32Vectors) {
        copy(source, target, replacedValues, w -> { }, addedF32Vectors);
    }

    /** The copy, with what {@code addedMetadata} puts after the file's own entries. */
    static void copy(Path source, Path target, Map<String, Object> replacedValues, Consumer<GgufWriter> addedMetadata,
                     Map<String, Long> addedF32Vectors) {
        try (Arena arena = Arena.ofConfined()) {
            GgufFile file = GgufFile.open(source, arena);
            try (GgufWriter w = GgufWriter.create(target)) {
                GgufMetadata m = file.metadata();
                for (var e : m.asMap().entrySet()) {
                    if (!e.getKey().equals("general.alignment")) {
                        w.put(e.getKey(), m.typeOf(e.getKey()), replacedValues.getOrDefault(e.getKey(), e.getValue()));
                    }
                }
                addedMetadata.accept(w);
                for (GgufTensorInfo t : file.tensorInfos()) {
                    w.addTensor(t.name(), t.type(), t.shape());
                }
                addedF32Vectors.forEach((name, length) -> w.addTensor(name, DType.F32, length));
                for (GgufTensorInfo t : file.tensorInfos()) {
                    w.writeTensorData(t.name(), file.tensor(t.name()).data());
                }
                addedF32Vectors.forEach((name, length) -> w.writeTensorData(name, new byte[Math.toIntExact(4 * length)]));
            }
        }
    }
}
