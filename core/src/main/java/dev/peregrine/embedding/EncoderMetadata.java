package dev.peregrine.embedding;

import dev.peregrine.EmbeddingOptions;
import dev.peregrine.ModelFormatException;
import dev.peregrine.Pooling;
import dev.peregrine.format.json.Json;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * How an encoder wants to be used, from the sentence-transformers files beside it when they are
 * there: modules.json (which modules run after the transformer: Pooling, Normalize),
 * {@code <pooling module>/config.json} (the pooling mode), sentence_bert_config.json
 * ({@code max_seq_length}), config_sentence_transformers.json ({@code prompts} for queries and
 * passages); and the maximum length from tokenizer.json ({@code truncation.max_length}) or
 * tokenizer_config.json ({@code model_max_length}).
 *
 * @param pooling   the pooling mode, or null when no file says
 * @param normalize whether vectors are normalised, or null when no file says
 * @param queryPrefix   the query prompt, or ""
 * @param passagePrefix the passage (or document) prompt, or ""
 * @param maxLength the most tokens of one text the files state, or 0
 * @param includePrompt whether the pooling takes in the prompt's tokens (the pooling config's
 *                      {@code include_prompt}, true unless it says false)
 * @param defaultInput  which prompt a text gets when the caller names none (config_sentence_transformers.json's
 *                      {@code default_prompt_name}: query, or passage / document), else TEXT: none
 */
public record EncoderMetadata(Pooling pooling, Boolean normalize, String queryPrefix, String passagePrefix, int maxLength,
                              boolean includePrompt, EmbeddingOptions.Input defaultInput) {
    /** BERT's position count, for models whose files say nothing. */
    public static final int DEFAULT_MAX_LENGTH = 512;
    /** Hugging Face writes a huge model_max_length (1e30) for "not set". */
    private static final long UNSET_LENGTH = 1_000_000;

    /**
     * @throws ModelFormatException if a metadata file is malformed or asks for a pooling mode Peregrine lacks
     */
    public static EncoderMetadata read(EncoderFiles files) {
        Path dir = files.metadataDir();
        Pooling pooling = null;
        Boolean normalize = null;
        Path modules = dir.resolve("modules.json");
        Path poolingConfig = dir.resolve("1_Pooling").resolve("config.json");
        if (Files.isRegularFile(modules)) {
            normalize = false; // sentence-transformers normalises only with a Normalize module
            for (Object m : list(Json.read(modules), modules)) {
                Map<String, Object> module = map(m, modules);
                String type = String.valueOf(module.get("type"));
                if (type.endsWith(".Normalize")) {
                    normalize = true;
                } else if (type.endsWith(".Pooling")) {
                    if (module.get("path") instanceof String p) {
                        Path poolingDir = dir.resolve(p).normalize();
                        if (!poolingDir.startsWith(dir.normalize())) {
                            throw new ModelFormatException(modules, -1, "the Pooling module's path '" + p
                                    + "' leads out of the model directory");
                        }
                        poolingConfig = poolingDir.resolve("config.json");
                    }
                } else if (!type.endsWith(".Transformer")) {
                    // A Dense projection, a LayerNorm, ...: skipping it would give other vectors
                    // (often another size) than sentence-transformers gives.
                    throw new ModelFormatException(modules, -1, "module '" + type + "' is not supported (supported:"
                            + " Transformer, Pooling, Normalize); its vectors would differ from sentence-transformers'");
                }
            }
        }
        boolean includePrompt = true;
        if (Files.isRegularFile(poolingConfig)) {
            Map<String, Object> config = map(Json.read(poolingConfig), poolingConfig);
            pooling = poolingMode(config, poolingConfig);
            // INSTRUCTOR-style models pool over the text alone, the prompt masked out.
            includePrompt = !Boolean.FALSE.equals(config.get("include_prompt"));
        }
        String query = "";
        String passage = "";
        EmbeddingOptions.Input defaultInput = EmbeddingOptions.Input.TEXT;
        Path st = dir.resolve("config_sentence_transformers.json");
        if (Files.isRegularFile(st)) {
            Map<String, Object> config = map(Json.read(st), st);
            if (config.get("prompts") instanceof Map<?, ?> prompts) {
                query = prompts.get("query") instanceof String s ? s : "";
                passage = prompts.get("passage") instanceof String s ? s : prompts.get("document") instanceof String s ? s : "";
            }
            // What sentence-transformers' encode() puts before a text when the caller names no prompt:
            // the prompt of exactly that name, which must exist (sentence-transformers fails otherwise).
            if (config.get("default_prompt_name") instanceof String name) {
                Object prompt = config.get("prompts") instanceof Map<?, ?> prompts ? prompts.get(name) : null;
                if (!(prompt instanceof String text)) {
                    throw new ModelFormatException(st, -1, "default_prompt_name '" + name + "' names no prompt in \"prompts\"");
                }
                switch (name) {
                    case "query" -> defaultInput = EmbeddingOptions.Input.QUERY;
                    case "passage", "document" -> {
                        defaultInput = EmbeddingOptions.Input.PASSAGE;
                        passage = text;
                    }
                    default -> throw new ModelFormatException(st, -1, "default_prompt_name '" + name + "' is not"
                            + " supported (Peregrine applies the query and passage prompts)");
                }
            }
        }
        return new EncoderMetadata(pooling, normalize, query, passage, maxLength(files), includePrompt, defaultInput);
    }

    /** The options with what these files say put in. */
    public EmbeddingOptions applyTo(EmbeddingOptions options) {
        EmbeddingOptions o = options.withPrefixes(queryPrefix, passagePrefix).withInput(defaultInput);
        if (pooling != null) {
            o = o.withPooling(pooling);
        }
        if (normalize != null) {
            o = o.withNormalize(normalize);
        }
        return o;
    }

    /**
     * The first of: sentence_bert_config.json's max_seq_length (what sentence-transformers uses),
     * tokenizer.json's truncation.max_length (what Hugging Face's tokenizers library cuts at when
     * the file asks for truncation), tokenizer_config.json's model_max_length; else 0.
     */
    private static int maxLength(EncoderFiles files) {
        Path sbert = files.metadataDir().resolve("sentence_bert_config.json");
        if (Files.isRegularFile(sbert)) {
            Object n = map(Json.read(sbert), sbert).get("max_seq_length");
            if (n != null) { // null: no limit of its own, as sentence-transformers reads it
                return (int) Math.min(positiveLength(n, sbert, "max_seq_length"), Integer.MAX_VALUE);
            }
        }
        // The tokenizer reads its own file; only this one setting of it matters here.
        if (map(Json.read(files.tokenizer()), files.tokenizer()).get("truncation") instanceof Map<?, ?> t) {
            long n = positiveLength(t.get("max_length"), files.tokenizer(), "truncation.max_length");
            if (n < UNSET_LENGTH) {
                return (int) n;
            }
        }
        if (files.tokenizerConfig() != null
                && map(Json.read(files.tokenizerConfig()), files.tokenizerConfig()).get("model_max_length") instanceof Long n
                && n > 0 && n < UNSET_LENGTH) {
            return n.intValue();
        }
        return 0;
    }

    /** A length setting, which must be a positive integer (the libraries that read it refuse anything else). */
    private static long positiveLength(Object value, Path file, String key) {
        if (value instanceof Long n && n > 0) {
            return n;
        }
        throw new ModelFormatException(file, -1, "'" + key + "' = " + value + " is not a positive integer");
    }

    /** The one pooling mode a sentence-transformers Pooling config turns on. */
    private static Pooling poolingMode(Map<String, Object> config, Path file) {
        List<String> on = config.keySet().stream()
                .filter(k -> k.startsWith("pooling_mode_") && Boolean.TRUE.equals(config.get(k))).toList();
        if (on.size() > 1) {
            // sentence-transformers concatenates the modes' vectors.
            throw new ModelFormatException(file, -1, "pooling modes " + String.join(" and ", on) + " are on together; a"
                    + " concatenation of several modes is not supported (one of mean, cls, lasttoken)");
        }
        if (Boolean.TRUE.equals(config.get("pooling_mode_cls_token"))) {
            return Pooling.CLS;
        }
        if (Boolean.TRUE.equals(config.get("pooling_mode_mean_tokens"))) {
            return Pooling.MEAN;
        }
        if (Boolean.TRUE.equals(config.get("pooling_mode_lasttoken"))) {
            return Pooling.LAST_TOKEN;
        }
        if (config.get("pooling_mode") instanceof String mode) { // the newer single-key form
            switch (mode) {
                case "cls": return Pooling.CLS;
                case "mean": return Pooling.MEAN;
                case "lasttoken": return Pooling.LAST_TOKEN;
                default: throw unsupported(file, mode);
            }
        }
        for (String other : List.of("max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens")) {
            if (Boolean.TRUE.equals(config.get("pooling_mode_" + other))) {
                throw unsupported(file, other);
            }
        }
        throw new ModelFormatException(file, -1, "no pooling mode is turned on");
    }

    private static ModelFormatException unsupported(Path file, String mode) {
        return new ModelFormatException(file, -1, "pooling mode '" + mode + "' is not supported (supported: mean, cls, lasttoken)");
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> map(Object json, Path file) {
        if (json instanceof Map<?, ?> m) {
            return (Map<String, Object>) m;
        }
        throw new ModelFormatException(file, -1, "expected a JSON object");
    }

    private static List<?> list(Object json, Path file) {
        if (json instanceof List<?> l) {
            return l;
        }
        throw new ModelFormatException(file, -1, "expected a JSON array");
    }
}
