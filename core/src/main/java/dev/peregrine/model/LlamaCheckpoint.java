package dev.peregrine.model;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.gguf.GgufTensorInfo;
import dev.peregrine.format.hf.HfCheckpoint;
import dev.peregrine.format.hf.HfConfig;
import dev.peregrine.format.hf.HfGenerationConfig;
import dev.peregrine.format.hf.HfLlamaLayout;
import dev.peregrine.format.hf.HfLlamaTensors;
import dev.peregrine.format.json.Json;
import dev.peregrine.tensor.TensorReads;
import dev.peregrine.tensor.TensorSource;
import dev.peregrine.tokenizer.Tokenizer;
import dev.peregrine.tokenizer.Tokenizers;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Llama decoder's files, opened: hyper-parameters, tensors under GGUF names and layout, tokenizer
 * and chat template. The one place that knows the two formats apart:
 * <ul>
 *   <li>a GGUF file (weights, tokenizer and template inside);
 *   <li>a Hugging Face directory: {@code config.json}, {@code model.safetensors} (or shards and
 *       {@code model.safetensors.index.json}), {@code tokenizer.json}, optionally
 *       {@code tokenizer_config.json} and {@code chat_template.jinja}.
 * </ul>
 * Mappings and copies belong to the {@link Arena} given to {@link #open}.
 *
 * @param tensors      the tensors under GGUF names and layout, as the model reads them
 * @param fileTensors  the files' own tensors, which remember what was read of them ({@link #checkEveryTensorRead})
 * @param chatTemplate the Jinja chat template the files carry, or null
 * @param sampling     the sampling settings the files recommend
 */
public record LlamaCheckpoint(Path path, LlamaConfig config, TensorSource tensors, TensorReads fileTensors,
                              Tokenizer tokenizer, String chatTemplate, RecommendedSampling sampling) {
    public static final String HF_CONFIG = "config.json";
    private static final Logger LOG = LoggerFactory.getLogger(LlamaCheckpoint.class);
    /** Unread tensors named in a message; the rest are counted. */
    private static final int UNREAD_SHOWN = 5;

    /** Whether the path is a Hugging Face model directory (it holds config.json), not whether it is valid. */
    public static boolean isHuggingFaceDirectory(Path path) {
        return Files.isDirectory(path) && Files.isRegularFile(path.resolve(HF_CONFIG));
    }

    /**
     * Opens a GGUF file or a Hugging Face directory.
     *
     * @throws ModelFormatException if a file is missing, malformed or describes an unsupported model
     */
    public static LlamaCheckpoint open(Path path, Arena arena) {
        if (isHuggingFaceDirectory(path)) {
            return openHuggingFace(path, arena);
        }
        if (Files.isDirectory(path)) {
            throw new ModelFormatException(path, -1, "is a directory without " + HF_CONFIG
                    + " (a Hugging Face model) or model.onnx (an ONNX encoder)");
        }
        return openGguf(path, arena);
    }

    private static LlamaCheckpoint openGguf(Path path, Arena arena) {
        GgufFile file = GgufFile.open(path, arena);
        Tokenizer tokenizer = Tokenizers.fromGguf(file.metadata());
        int vocab = (int) file.tensor("token_embd.weight").dim(1);
        if (vocab != tokenizer.vocabularySize()) {
            throw new ModelFormatException(path, -1, "token_embd.weight has " + vocab
                    + " rows but the tokenizer has " + tokenizer.vocabularySize() + " tokens");
        }
        LlamaConfig config = LlamaConfig.fromGguf(path, file.metadata(), vocab);
        checkNoTensorsPastLastLayer(path, file, config.layers());
        String template = file.metadata().optString("tokenizer.chat_template").orElse(null);
        TensorReads fileTensors = new TensorReads(file, file.tensorInfos().stream().map(GgufTensorInfo::name).toList());
        TensorSource tensors = fileTensors;
        if (config.family().fusedProjections()) {
            tensors = new FusedTensors(tensors, config);
        }
        if (config.family().ropeRotateHalf()) {
            tensors = new RotateHalfTensors(tensors, config.headDim(), config.ropeDimensions(), arena);
        }
        return new LlamaCheckpoint(path, config, tensors, fileTensors, tokenizer, template,
                RecommendedSampling.fromGguf(path, file.metadata()));
    }

    /**
     * Refuses a file with tensors of a layer past its block count: a count too small (a corrupted or
     * edited header) would otherwise run a model cut short. llama.cpp refuses such a file too (its
     * tensor count differs from what the stated layers use).
     */
    private static void checkNoTensorsPastLastLayer(Path path, GgufFile file, int layers) {
        for (var info : file.tensorInfos()) {
            String name = info.name();
            if (name.startsWith("blk.")) {
                int dot = name.indexOf('.', 4);
                String index = dot < 0 ? "" : name.substring(4, dot);
                if (!index.isEmpty() && index.chars().allMatch(Character::isDigit)
                        && (index.length() > 9 || Integer.parseInt(index) >= layers)) {
                    throw new ModelFormatException(path, -1, "tensor '" + name + "' belongs to a layer past the "
                            + layers + " that the header's block_count states");
                }
            }
        }
    }

    private static LlamaCheckpoint openHuggingFace(Path dir, Arena arena) {
        HfConfig hf = HfConfig.read(dir.resolve(HF_CONFIG));
        LlamaConfig config = LlamaConfig.fromHuggingFace(hf);
        Family family = config.family();
        // transformers' defaults: Gemma ties, the others do not.
        boolean tied = hf.optBoolean("tie_word_embeddings").orElse(family.scaledEmbeddingAndPostNorms());
        hf.optInts("bos_token_id"); // validated here; the tokenizer's own BOS is the one used

        Path tokenizerJson = dir.resolve("tokenizer.json");
        if (!Files.isRegularFile(tokenizerJson)) {
            throw new ModelFormatException(dir, -1, "has no tokenizer.json (Peregrine reads the tokenizers library's format)");
        }
        Path tokenizerConfig = dir.resolve("tokenizer_config.json");
        boolean hasTokenizerConfig = Files.isRegularFile(tokenizerConfig);
        // Generation ends on the tokenizer's EOS and end-of-turn tokens and on every eos_token_id of the files.
        Tokenizer tokenizer = Tokenizers.fromHuggingFace(tokenizerJson, hasTokenizerConfig ? tokenizerConfig : null)
                .withEndOfGeneration(HfGenerationConfig.endOfGenerationIds(hf, dir));
        // Embedding tables are often padded past the tokenizer (Qwen, Llama 2 fine-tunes): fewer tokens is fine.
        if (tokenizer.vocabularySize() > config.vocabularySize()) {
            throw new ModelFormatException(dir, -1, "the tokenizer has " + tokenizer.vocabularySize()
                    + " tokens but config.json's vocab_size is " + config.vocabularySize());
        }
        HfCheckpoint checkpoint = HfCheckpoint.open(dir, arena);
        HfLlamaLayout.Naming naming = family.hfNaming();
        TensorReads fileTensors = new TensorReads(checkpoint, checkpoint.tensors().keySet());
        TensorSource tensors = new HfLlamaTensors(fileTensors, naming, tied, family.hfNormsAreOffsetByOne(), arena);
        if (family.fusedProjections()) {
            tensors = new FusedTensors(tensors, config);
        }
        // Every family's q/k rows are in rotate-half order in Hugging Face checkpoints.
        tensors = new RotateHalfTensors(tensors, config.headDim(), config.ropeDimensions(), arena);
        String template = chatTemplate(dir, hasTokenizerConfig ? tokenizerConfig : null);
        return new LlamaCheckpoint(dir, config, tensors, fileTensors, tokenizer, template,
                RecommendedSampling.fromHuggingFace(dir));
    }

    /**
     * Once the weights are loaded: a tensor of a GGUF file that the model never read fails the load
     * (a bias, an expert or a layer the architecture's graph has no place for: running without it
     * would give wrong output), as llama.cpp refuses a file whose tensors are not exactly those its
     * architecture uses. In a Hugging Face checkpoint one is logged, as transformers warns of unused
     * weights: checkpoints carry leftovers such as rotary_emb.inv_freq, or lm_head when the
     * embeddings are tied.
     *
     * @throws ModelFormatException for a GGUF file with tensors the model did not read
     */
    public void checkEveryTensorRead() {
        List<String> unread = fileTensors.unread();
        if (unread.isEmpty()) {
            return;
        }
        String which = TensorReads.summary(unread, UNREAD_SHOWN);
        if (isHuggingFaceDirectory(path)) {
            LOG.warn("{}: {} tensor(s) of the checkpoint not used by the model: {}", path.getFileName(), unread.size(), which);
        } else {
            throw new ModelFormatException(path, -1, "holds " + unread.size() + " tensor(s) that the "
                    + config.family().ggufArchitecture() + " architecture has no use for: " + which
                    + "; running the model without them would give wrong output");
        }
    }

    /**
     * chat_template.jinja (where recent transformers saves it), else tokenizer_config.json's
     * chat_template: a string, or a list of named templates of which "default" is the one.
     */
    private static String chatTemplate(Path dir, Path tokenizerConfig) {
        Path jinja = dir.resolve("chat_template.jinja");
        if (Files.isRegularFile(jinja)) {
            try {
                return Files.readString(jinja, StandardCharsets.UTF_8);
            } catch (java.nio.charset.CharacterCodingException e) {
                throw new ModelFormatException(jinja, -1, "is not valid UTF-8");
            } catch (IOException e) {
                throw new ModelFormatException("cannot read " + jinja + ": " + e.getMessage(), e);
            }
        }
        if (tokenizerConfig == null || !(Json.read(tokenizerConfig) instanceof Map<?, ?> json)) {
            return null;
        }
        Object t = json.get("chat_template");
        if (t == null || t instanceof String) {
            return (String) t;
        }
        if (t instanceof List<?> named) {
            for (Object o : named) {
                if (o instanceof Map<?, ?> m && "default".equals(m.get("name")) && m.get("template") instanceof String s) {
                    return s;
                }
            }
            return null;
        }
        throw new ModelFormatException(tokenizerConfig, -1, "\"chat_template\" must be a string or a list of named templates");
    }
}
