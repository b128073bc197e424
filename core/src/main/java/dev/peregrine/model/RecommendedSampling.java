package dev.peregrine.model;

import dev.peregrine.GenerationConfig;
import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufMetadata;
import dev.peregrine.format.hf.HfConfig;
import dev.peregrine.format.hf.HfGenerationConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The sampling settings a model's files recommend: a GGUF file's {@code general.sampling.*} keys
 * (which llama.cpp applies to the options its user did not set), or a Hugging Face directory's
 * {@code generation_config.json} (which transformers and vLLM apply). Each value is null where the
 * files say nothing. Values are in Peregrine's terms: llama.cpp's "off" values (a top-k of 0 or less,
 * a top-p of 1 or more, a min-p of 0 or less, a penalty window of -1 for the whole context, a
 * negative temperature for greedy) are mapped to Peregrine's.
 *
 * @param temperature       the temperature (0 = greedy)
 * @param topK              top-k (0 = off)
 * @param topP              top-p (1 = off)
 * @param minP              min-p (0 = off)
 * @param repetitionPenalty the repetition penalty (1 = off)
 * @param repetitionLastN   the tokens the penalties look back over ({@link Integer#MAX_VALUE}: all)
 */
public record RecommendedSampling(Float temperature, Integer topK, Float topP, Float minP, Float repetitionPenalty,
                                  Integer repetitionLastN) {
    private static final Logger LOG = LoggerFactory.getLogger(RecommendedSampling.class);

    /** Nothing recommended. */
    public static final RecommendedSampling NONE = new RecommendedSampling(null, null, null, null, null, null);

    static final String GGUF_PREFIX = "general.sampling.";

    /**
     * The {@code general.sampling.*} keys llama.cpp reads: temp, top_k, top_p, min_p, penalty_repeat
     * and penalty_last_n (its sampler sequence, XTC and Mirostat keys have no counterpart here). A
     * value that is not a number, or that no sampler accepts (NaN, a penalty of 0 or less, a window
     * below -1, a min-p of 1 or more), is left out with a warning: these are hints, and llama.cpp
     * too loads a model whose hints it cannot read.
     */
    public static RecommendedSampling fromGguf(Path file, GgufMetadata metadata) {
        Hints h = new Hints(file, GGUF_PREFIX, metadata::optFloat);
        return h.sampling(h.number("temp"), h.number("top_k"), h.number("top_p"), h.number("min_p"),
                h.number("penalty_repeat"), h.window("penalty_last_n"));
    }

    /**
     * {@code generation_config.json}'s temperature, top_k, top_p, min_p and repetition_penalty, if the
     * directory has one, read as {@link #fromGguf} reads its keys. transformers' repetition penalty
     * covers the whole sequence, so a stated penalty comes with a window of every token. Like vLLM,
     * {@code do_sample} is not read: the values are the model's recommendation whichever way its own
     * default decodes.
     *
     * @throws ModelFormatException if the file is not a JSON object
     */
    public static RecommendedSampling fromHuggingFace(Path dir) {
        Path file = dir.resolve(HfGenerationConfig.FILE);
        if (!Files.isRegularFile(file)) {
            return NONE;
        }
        HfConfig json = HfConfig.read(file);
        Hints h = new Hints(file, "", key -> json.optDouble(key).map(Double::floatValue));
        RecommendedSampling s = h.sampling(h.number("temperature"), h.number("top_k"), h.number("top_p"),
                h.number("min_p"), h.number("repetition_penalty"), null);
        // transformers' repetition penalty covers the whole sequence
        return s.repetitionPenalty() == null ? s
                : new RecommendedSampling(s.temperature(), s.topK(), s.topP(), s.minP(), s.repetitionPenalty(), Integer.MAX_VALUE);
    }

    /**
     * Reads a file's hints ({@code read} gives a full key's number, or throws ModelFormatException
     * for a value of another type), leaving out with a warning each one it cannot use.
     */
    private record Hints(Path file, String prefix, Function<String, Optional<Float>> read) {
        /** The key's value if it is a finite number, else null (absent, or left out with a warning). */
        Float number(String key) {
            try {
                Float value = read.apply(prefix + key).orElse(null);
                return value == null || Float.isFinite(value) ? value : ignored(key, value + " is not a finite number");
            } catch (ModelFormatException e) {
                return ignored(key, e.getMessage());
            }
        }

        /** A window of tokens: a whole number, or -1 for the whole context ({@link Integer#MAX_VALUE}). */
        Integer window(String key) {
            Float n = number(key);
            if (n == null) {
                return null;
            }
            if (n < -1 || n != Math.rint(n)) {
                ignored(key, n + " is not a count of tokens or -1 (the whole context)");
                return null;
            }
            return n == -1 ? Integer.MAX_VALUE : (int) Math.min(n, Integer.MAX_VALUE);
        }

        /** llama.cpp's "off" values mapped to Peregrine's; what no sampler accepts left out. */
        RecommendedSampling sampling(Float temperature, Float topK, Float topP, Float minP, Float penalty, Integer lastN) {
            Integer k = topK == null ? null : (int) Math.max(0, Math.min(topK, Integer.MAX_VALUE)); // 0 or less: off
            if (temperature != null && temperature < 0) {
                temperature = 0f; // llama.cpp: greedy
            }
            if (topP != null && topP <= 0) {
                k = 1; // llama.cpp's top-p 0 keeps the most likely token only
                topP = 1f;
            } else if (topP != null && topP > 1) {
                topP = 1f;
            }
            if (minP != null && minP < 0) {
                minP = 0f;
            }
            if (minP != null && minP >= 1) {
                minP = ignored("min_p", minP + ": a min-p must be below 1");
            }
            if (penalty != null && penalty <= 0) {
                penalty = ignored(prefix.isEmpty() ? "repetition_penalty" : "penalty_repeat",
                        penalty + ": a repetition penalty must be above 0");
            }
            return new RecommendedSampling(temperature, k, topP, minP, penalty, lastN);
        }

        private Float ignored(String key, String why) {
            LOG.warn("{}: the recommended sampling setting {}{} is left out: {}", file.getFileName(), prefix, key, why);
            return null;
        }
    }

    /** {@code base} with every recommended value in place of its own. */
    public GenerationConfig applyTo(GenerationConfig base) {
        GenerationConfig c = base;
        if (temperature != null) {
            c = c.temperature(temperature);
        }
        if (topK != null) {
            c = c.topK(topK);
        }
        if (topP != null) {
            c = c.topP(topP);
        }
        if (minP != null) {
            c = c.minP(minP);
        }
        if (repetitionPenalty != null || repetitionLastN != null) {
            c = c.repetitionPenalty(repetitionPenalty != null ? repetitionPenalty : c.repetitionPenalty(),
                    repetitionLastN != null ? repetitionLastN : c.repetitionLastN());
        }
        return c;
    }

    /** Whether the files recommend anything. */
    public boolean isEmpty() {
        return equals(NONE);
    }

    /** "temp 0.6, top-k 20, top-p 0.95", or "none". */
    public String describe() {
        List<String> parts = new ArrayList<>();
        if (temperature != null) {
            parts.add("temp " + temperature);
        }
        if (topK != null) {
            parts.add("top-k " + topK);
        }
        if (topP != null) {
            parts.add("top-p " + topP);
        }
        if (minP != null) {
            parts.add("min-p " + minP);
        }
        if (repetitionPenalty != null) {
            parts.add("repeat-penalty " + repetitionPenalty);
        }
        if (repetitionLastN != null) {
            parts.add("repeat-last-n " + (repetitionLastN == Integer.MAX_VALUE ? "all" : repetitionLastN.toString()));
        }
        return parts.isEmpty() ? "none" : String.join(", ", parts);
    }
}
