package dev.peregrine.format.hf;

import dev.peregrine.format.hf.SafetensorsWriter.TensorSpec;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * Writes a Hugging Face Llama checkpoint directory: {@code config.json},
 * {@code generation_config.json} and the weights as safetensors, streamed tensor after tensor in
 * declaration order (as {@link SafetensorsWriter} does). Up to {@code shardLimit} bytes the weights
 * go to one {@code model.safetensors}; beyond, to {@code model-00001-of-0000N.safetensors} shards
 * listed in {@code model.safetensors.index.json}, split the way transformers' {@code save_pretrained}
 * splits them (a new shard when the next tensor would pass the limit; a larger tensor alone).
 *
 * <p>The tokenizer files (tokenizer.json, tokenizer_config.json) are not written.
 */
public final class HfDirectoryWriter implements AutoCloseable {
    /** transformers' default {@code max_shard_size} ("5GB"). */
    public static final long DEFAULT_SHARD_LIMIT = 5_000_000_000L;
    public static final String SINGLE_FILE = "model.safetensors";
    public static final String INDEX_FILE = "model.safetensors.index.json";
    /** A shard's name, as transformers writes them. */
    private static final Pattern SHARD_NAME = Pattern.compile("model-\\d{5}-of-\\d{5}\\.safetensors");
    private static final Map<String, String> METADATA = Map.of("format", "pt");

    private final Path dir;
    private final List<List<TensorSpec>> shards;
    private final List<Path> shardFiles;
    private final Map<String, Integer> shardOf = new HashMap<>();
    private int open = -1;
    private SafetensorsWriter writer;
    private boolean closed;

    private HfDirectoryWriter(Path dir, List<List<TensorSpec>> shards, List<Path> shardFiles) {
        this.dir = dir;
        this.shards = shards;
        this.shardFiles = shardFiles;
        for (int s = 0; s < shards.size(); s++) {
            for (TensorSpec t : shards.get(s)) {
                shardOf.put(t.name(), s);
            }
        }
    }

    /**
     * Creates {@code dir} if needed and writes the config files; the safetensors files are written
     * as data arrives. Existing files of the same names are replaced, and the other form of a save
     * already there (the single file where shards are written, the index and its shards where one
     * file is) is deleted, as transformers' save_pretrained cleans the folder: left behind, a reader
     * could take it for the weights.
     */
    public static HfDirectoryWriter create(Path dir, HfLlamaConfig config, List<TensorSpec> tensors, long shardLimit) {
        if (shardLimit <= 0) {
            throw new IllegalArgumentException("shard limit must be positive, got " + shardLimit);
        }
        SafetensorsWriter.header(tensors, METADATA); // rejects duplicate names before anything is written
        List<List<TensorSpec>> shards = plan(tensors, shardLimit);
        List<Path> files = new ArrayList<>();
        for (int s = 0; s < shards.size(); s++) {
            files.add(dir.resolve(shards.size() == 1 ? SINGLE_FILE
                    : String.format(Locale.ROOT, "model-%05d-of-%05d.safetensors", s + 1, shards.size())));
        }
        try {
            Files.createDirectories(dir);
            deleteEarlierWeights(dir, files);
            Files.writeString(dir.resolve("config.json"), config.configJson(), StandardCharsets.UTF_8);
            Files.writeString(dir.resolve("generation_config.json"), config.generationConfigJson(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + dir, e);
        }
        return new HfDirectoryWriter(dir, shards, files);
    }

    /**
     * Deletes an earlier save's weights that this one will not overwrite: {@code model.safetensors},
     * the index and shards named {@code model-NNNNN-of-NNNNN.safetensors}.
     */
    private static void deleteEarlierWeights(Path dir, List<Path> keep) throws IOException {
        List<Path> earlier = new ArrayList<>();
        try (var entries = Files.list(dir)) {
            entries.filter(f -> {
                String name = f.getFileName().toString();
                return name.equals(SINGLE_FILE) || name.equals(INDEX_FILE) || SHARD_NAME.matcher(name).matches();
            }).filter(f -> !keep.contains(f)).forEach(earlier::add);
        }
        for (Path f : earlier) {
            Files.deleteIfExists(f);
        }
    }

    /** Splits {@code tensors}, in order, into shards of at most {@code limit} bytes (a larger tensor is alone). */
    static List<List<TensorSpec>> plan(List<TensorSpec> tensors, long limit) {
        List<List<TensorSpec>> shards = new ArrayList<>();
        List<TensorSpec> current = new ArrayList<>();
        long size = 0;
        for (TensorSpec t : tensors) {
            if (!current.isEmpty() && size + t.byteSize() > limit) {
                shards.add(current);
                current = new ArrayList<>();
                size = 0;
            }
            current.add(t);
            size += t.byteSize();
        }
        shards.add(current);
        return shards;
    }

    /** The safetensors files, in order (one, or the shards). */
    public List<Path> weightFiles() {
        return Collections.unmodifiableList(shardFiles);
    }

    public HfDirectoryWriter writeTensorData(String name, byte[] chunk) {
        return writeTensorData(name, MemorySegment.ofArray(chunk));
    }

    /** Appends {@code chunk} to tensor {@code name}'s bytes; tensors come in declaration order. */
    public HfDirectoryWriter writeTensorData(String name, MemorySegment chunk) {
        if (closed) {
            throw new IllegalStateException("writer for " + dir + " is closed");
        }
        Integer shard = shardOf.get(name);
        if (shard == null) {
            throw new IllegalArgumentException("no tensor '" + name + "' was declared");
        }
        if (shard != open) {
            // Moving on to a later shard: the open one must be complete, and any skipped one empty.
            boolean inOrder = shard > open && (writer == null || writer.isComplete()) && emptyShards(open + 1, shard);
            if (!inOrder) {
                throw new IllegalStateException("tensor data must be written in declaration order: '" + name
                        + "' is in shard " + (shard + 1) + " but shard " + Math.max(1, open + 1) + " is not complete");
            }
            advanceTo(shard);
        }
        writer.writeTensorData(name, chunk);
        return this;
    }

    /**
     * Finishes the last shard and writes the index (when sharded). Throws
     * {@link IllegalStateException} if a tensor is missing bytes.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        // Shards nobody wrote to yet (only empty tensors, or missing data) are still created.
        advanceTo(shards.size() - 1);
        writer.close();
        if (shards.size() > 1) {
            writeIndex();
        }
    }

    private boolean emptyShards(int from, int to) {
        for (int s = from; s < to; s++) {
            for (TensorSpec t : shards.get(s)) {
                if (t.byteSize() > 0) {
                    return false;
                }
            }
        }
        return true;
    }

    private void advanceTo(int shard) {
        while (open < shard) {
            if (writer != null) {
                writer.close();
            }
            open++;
            writer = SafetensorsWriter.create(shardFiles.get(open), shards.get(open), METADATA);
        }
    }

    private void writeIndex() {
        long total = 0;
        Map<String, Object> weightMap = new TreeMap<>();
        for (int s = 0; s < shards.size(); s++) {
            for (TensorSpec t : shards.get(s)) {
                total += t.byteSize();
                weightMap.put(t.name(), shardFiles.get(s).getFileName().toString());
            }
        }
        Map<String, Object> index = new LinkedHashMap<>();
        index.put("metadata", Map.of("total_size", total));
        index.put("weight_map", weightMap);
        try {
            Files.writeString(dir.resolve(INDEX_FILE), JsonText.pretty(index), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + dir.resolve(INDEX_FILE), e);
        }
    }
}
