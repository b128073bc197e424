package dev.peregrine.format.hf;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.json.Json;
import dev.peregrine.tensor.Tensor;
import dev.peregrine.tensor.TensorSource;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The safetensors weights of a Hugging Face model directory, by their Hugging Face names: one
 * {@code model.safetensors}, or the shards that {@code model.safetensors.index.json}'s
 * {@code weight_map} names. Every file is mapped once into the caller's {@link Arena}.
 */
public final class HfCheckpoint implements TensorSource {
    private final Path dir;
    private final List<SafetensorsFile> files;
    private final Map<String, SafetensorsFile> fileOf;

    private HfCheckpoint(Path dir, List<SafetensorsFile> files, Map<String, SafetensorsFile> fileOf) {
        this.dir = dir;
        this.files = List.copyOf(files);
        this.fileOf = Collections.unmodifiableMap(fileOf);
    }

    /**
     * Maps the weights of {@code dir}.
     *
     * @throws ModelFormatException if there are none, the index is malformed or names a tensor its
     *                              shard does not hold, or a file is malformed
     */
    public static HfCheckpoint open(Path dir, Arena arena) {
        Path index = dir.resolve(HfDirectoryWriter.INDEX_FILE);
        Path single = dir.resolve(HfDirectoryWriter.SINGLE_FILE);
        // The single file first, as transformers looks for them: where both are there, an index
        // left over from an earlier save must not replace the weights saved since.
        if (Files.isRegularFile(single)) {
            SafetensorsFile f = SafetensorsFile.open(single, arena);
            Map<String, SafetensorsFile> fileOf = new LinkedHashMap<>();
            f.names().forEach(n -> fileOf.put(n, f));
            return new HfCheckpoint(dir, List.of(f), fileOf);
        }
        if (Files.isRegularFile(index)) {
            return sharded(dir, index, arena);
        }
        boolean pytorch = Files.isRegularFile(dir.resolve("pytorch_model.bin"))
                || Files.isRegularFile(dir.resolve("pytorch_model.bin.index.json"));
        throw new ModelFormatException(dir, -1, "no " + HfDirectoryWriter.SINGLE_FILE + " or " + HfDirectoryWriter.INDEX_FILE
                + (pytorch ? " (PyTorch .bin checkpoints are not read: save the model as safetensors)" : ""));
    }

    private static HfCheckpoint sharded(Path dir, Path index, Arena arena) {
        if (!(Json.read(index) instanceof Map<?, ?> json) || !(json.get("weight_map") instanceof Map<?, ?> weightMap)) {
            throw new ModelFormatException(index, -1, "has no \"weight_map\" object");
        }
        Map<String, SafetensorsFile> byFileName = new LinkedHashMap<>();
        Map<String, SafetensorsFile> fileOf = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : weightMap.entrySet()) {
            String tensor = (String) e.getKey();
            if (!(e.getValue() instanceof String fileName) || !isPlainFileName(fileName)) {
                throw new ModelFormatException(index, -1, "weight_map entry '" + tensor
                        + "' must name a file in the same directory, got " + e.getValue());
            }
            SafetensorsFile shard = byFileName.get(fileName);
            if (shard == null) {
                shard = SafetensorsFile.open(dir.resolve(fileName), arena);
                byFileName.put(fileName, shard);
            }
            if (!shard.names().contains(tensor)) {
                throw new ModelFormatException(index, -1, "weight_map puts tensor '" + tensor + "' in " + fileName
                        + ", which does not hold it");
            }
            fileOf.put(tensor, shard);
        }
        if (fileOf.isEmpty()) {
            throw new ModelFormatException(index, -1, "weight_map is empty");
        }
        return new HfCheckpoint(dir, new ArrayList<>(byFileName.values()), fileOf);
    }

    /** A shard name from the index may not lead out of the directory. */
    private static boolean isPlainFileName(String name) {
        return !name.isEmpty() && !name.equals(".") && !name.equals("..") && name.indexOf('/') < 0 && name.indexOf('\\') < 0;
    }

    @Override
    public Path path() {
        return dir;
    }

    /** The safetensors files, in the order they were opened. */
    public List<SafetensorsFile> files() {
        return files;
    }

    /** Every tensor name, with the file that holds it. */
    public Map<String, SafetensorsFile> tensors() {
        return fileOf;
    }

    /** A tensor by its Hugging Face name ("model.layers.0.self_attn.q_proj.weight"), shape in ggml order. */
    @Override
    public Optional<Tensor> findTensor(String name) {
        SafetensorsFile f = fileOf.get(name);
        return f == null ? Optional.empty() : f.findTensor(name);
    }
}
