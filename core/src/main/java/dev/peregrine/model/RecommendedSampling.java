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
    /** Nothing recommended. */
    public static final RecommendedSampling NONE = new RecommendedSampling(null, null, null, null, null, null);

    static final String GGUF_PREFIX = "general.sampling.";

    /**
     * The {@code general.sampling.*} keys llama.cpp reads: temp, top_k, top_p, min_p, penalty_repeat
     * and penalty_last_n (its sampler sequence, XTC and Mirostat keys have no counterpart here).
     *
     * @throws ModelFormatException if a value is not a number, or one no sampler accepts (NaN, a
     *                              penalty of 0 or less, a window below -1, a min-p of 1 or more)
     */
    public static RecommendedSampling fromGguf(Path file, GgufMetadata metadata) {
        Float temperature = metadata.optFloat(GGUF_PREFIX + "temp").orElse(null);
        Integer topK = metadata.optFloat(GGUF_PREFIX + "top_k").map(k -> (int) Math.max(0, Math.min(k, Integer.MAX_VALUE)))
                .orElse(null);
        Float topP = metadata.optFloat(GGUF_PREFIX + "top_p").orElse(null);
        Float minP = metadata.optFloat(GGUF_PREFIX + "min_p").orElse(null);
        Float penalty = metadata.optFloat(GGUF_PREFIX + "penalty_repeat").orElse(null);
        Integer lastN = metadata.optFloat(GGUF_PREFIX + "penalty_last_n").map(n -> {
            if (n < -1 || n != Math.rint(n)) {
                throw new ModelFormatException(file, -1, GGUF_PREFIX + "penalty_last_n is " + n
                        + ": a window is a count of tokens, or -1 for the whole context");
            }
            return n == -1 ? Integer.MAX_VALUE : (int) Math.min(n, Integer.MAX_VALUE);
        }).orElse(null);
        return checked(file, GGUF_PREFIX, temperature, topK, topP, minP, penalty, lastN);
    }

    /**
     * {@code generation_config.json}'s temperature, top_k, top_p, min_p and repetition_penalty, if the
     * directory has one. transformers' repetition penalty covers the whole sequence, so a stated
     * penalty comes with a window of every token. Like vLLM, {@code do_sample} is not read: the values
     * are the model's recommendation whichever way its own default decodes.
     *
     * @throws ModelFormatException if the file is not a JSON object, or a value is not a number or is
     *                              one no sampler accepts
     */
    public static RecommendedSampling fromHuggingFace(Path dir) {
        Path file = dir.resolve(HfGenerationConfig.FILE);
        if (!Files.isRegularFile(file)) {
            return NONE;
        }
        HfConfig json = HfConfig.read(file);
        Float temperature = json.optDouble("temperature").map(Double::floatValue).orElse(null);
        Integer topK = json.optDouble("top_k").map(k -> (int) Math.max(0, Math.min(k, Integer.MAX_VALUE))).orElse(null);
        Float topP = json.optDouble("top_p").map(Double::floatValue).orElse(null);
        Float minP = json.optDouble("min_p").map(Double::floatValue).orElse(null);
        Float penalty = json.optDouble("repetition_penalty").map(Double::floatValue).orElse(null);
        return checked(file, "", temperature, topK, topP, minP, penalty, penalty == null ? null : Integer.MAX_VALUE);
    }

    /** llama.cpp's "off" values mapped to Peregrine's, and what no sampler accepts refused. */
    private static RecommendedSampling checked(Path file, String prefix, Float temperature, Integer topK, Float topP,
                                               Float minP, Float penalty, Integer lastN) {
        finite(file, prefix + "temp", temperature);
        finite(file, prefix + "top_p", topP);
        finite(file, prefix + "min_p", minP);
        finite(file, prefix + (prefix.isEmpty() ? "repetition_penalty" : "penalty_repeat"), penalty);
        if (temperature != null && temperature < 0) {
            temperature = 0f; // llama.cpp: greedy
        }
        if (topP != null && topP <= 0) {
            topK = 1; // llama.cpp's top-p 0 keeps the most likely token only
            topP = 1f;
        } else if (topP != null && topP > 1) {
            topP = 1f;
        }
        if (minP != null && minP < 0) {
            minP = 0f;
        }
        if (minP != null && minP >= 1) {
            throw new ModelFormatException(file, -1, prefix + "min_p is " + minP + ": it must be below 1");
        }
        if (penalty != null && penalty <= 0) {
            throw new ModelFormatException(file, -1, "the repetition penalty is " + penalty + ": it must be above 0");
        }
        return new RecommendedSampling(temperature, topK, topP, minP, penalty, lastN);
    }

    private static void finite(Path file, String key, Float value) {
        if (value != null && !Float.isFinite(value)) {
            throw new ModelFormatException(file, -1, key + " is " + value + ": a finite number was expected");
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
