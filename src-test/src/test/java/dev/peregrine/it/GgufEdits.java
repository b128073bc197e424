package dev.peregrine.it;

import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.gguf.GgufTensorInfo;
import dev.peregrine.format.gguf.GgufValueType;
import dev.peregrine.format.gguf.GgufWriter;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/** Copies of GGUF files with metadata changed: how the engine and the reference read a key. */
final class GgufEdits {
    private GgufEdits() {
    }

    /**
     * {@code source} written to {@code target} with the values of {@code set}: a key the file has
     * keeps its type; a new key is added as FLOAT32 (a Float), UINT32 (an Integer or Long) or
     * STRING. The tensors' bytes are copied as they are.
     */
    static Path withMetadata(Path source, Path target, Map<String, Object> set) {
        Map<String, Object> added = new LinkedHashMap<>(set);
        try (Arena arena = Arena.ofConfined()) {
            GgufFile file = GgufFile.open(source, arena);
            try (GgufWriter w = GgufWriter.create(target)) {
                var m = file.metadata();
                for (var e : m.asMap().entrySet()) {
                    if (!e.getKey().equals("general.alignment")) {
                        Object value = added.containsKey(e.getKey()) ? added.remove(e.getKey()) : e.getValue();
                        w.put(e.getKey(), m.typeOf(e.getKey()), value);
                    }
                }
                added.forEach((key, value) -> w.put(key, switch (value) {
                    case Float f -> GgufValueType.FLOAT32;
                    case Integer i -> GgufValueType.UINT32;
                    case Long l -> GgufValueType.UINT32;
                    case String s -> GgufValueType.STRING;
                    default -> throw new IllegalArgumentException("no GGUF type for " + value);
                }, value instanceof Integer i ? (long) i : value));
                for (GgufTensorInfo t : file.tensorInfos()) {
                    w.addTensor(t.name(), t.type(), t.shape());
                }
                for (GgufTensorInfo t : file.tensorInfos()) {
                    w.writeTensorData(t.name(), file.tensor(t.name()).data());
                }
            }
        }
        return target;
    }
}
