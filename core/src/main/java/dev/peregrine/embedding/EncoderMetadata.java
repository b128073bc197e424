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
 */
public record EncoderMetadata(Pooling pooling, Boolean normalize, String queryPrefix, String passagePrefix, int maxLength) {
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
                } else if (type.endsWith(".Pooling") && module.get("path") instanceof String p) {
                    poolingConfig = dir.resolve(p).resolve("config.json");
                }
            }
        }
        if (Files.isRegularFile(poolingConfig)) {
            pooling = poolingMode(map(Json.read(poolingConfig), poolingConfig), poolingConfig);
        }
        String query = "";
        String passage = "";
        Path st = dir.resolve("config_sentence_transformers.json");
        if (Files.isRegularFile(st) && map(Json.read(st), st).get("prompts") instanceof Map<?, ?> prompts) {
            query = prompts.get("query") instanceof String s ? s : "";
            passage = prompts.get("passage") instanceof String s ? s : prompts.get("document") instanceof String s ? s : "";
        }
        return new EncoderMetadata(pooling, normalize, query, passage, maxLength(files));
    }

    /** The options with what these files say put in. */
    public EmbeddingOptions applyTo(EmbeddingOptions options) {
        EmbeddingOptions o = options.withPrefixes(queryPrefix, passagePrefix);
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
        if (Files.isRegularFile(sbert) && map(Json.read(sbert), sbert).get("max_seq_length") instanceof Long n && n > 0) {
            return (int) Math.min(n, Integer.MAX_VALUE);
        }
        // The tokenizer reads its own file; only this one setting of it matters here.
        if (map(Json.read(files.tokenizer()), files.tokenizer()).get("truncation") instanceof Map<?, ?> t
                && t.get("max_length") instanceof Long n && n > 0 && n < UNSET_LENGTH) {
            return n.intValue();
        }
        if (files.tokenizerConfig() != null
                && map(Json.read(files.tokenizerConfig()), files.tokenizerConfig()).get("model_max_length") instanceof Long n
                && n > 0 && n < UNSET_LENGTH) {
            return n.intValue();
        }
        return 0;
    }

    /** The one pooling mode a sentence-transformers Pooling config turns on. */
    private static Pooling poolingMode(Map<String, Object> config, Path file) {
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
