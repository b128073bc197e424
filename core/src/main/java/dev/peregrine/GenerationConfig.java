package dev.peregrine;

import java.time.Duration;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.TreeMap;
import java.util.function.Consumer;

/**
 * How to generate: sampling parameters, stop conditions and limits. Immutable; every
 * {@code withX} method returns a copy.
 *
 * <pre>{@code
 * GenerationConfig.greedy().maxTokens(64)
 * GenerationConfig.defaults().temperature(0.7f).topP(0.9f).seed(42)
 * }</pre>
 *
 * <p>Sampling applies, in this order: the logit bias, the repetition, frequency and presence
 * penalties over the last {@link #repetitionLastN()} tokens, temperature, top-k, top-p, min-p,
 * then a draw with the request's random generator; top-p and min-p thus see the distribution at
 * the given temperature, as in Hugging Face transformers and vLLM. llama.cpp's default chain
 * applies the temperature after top-k, top-p and min-p instead (its filters see the distribution
 * at temperature 1): {@link #temperatureLast(boolean)} samples that way. The default values
 * are llama.cpp's (the order is not: with them, llama.cpp's draws match only with
 * {@code temperatureLast(true)}). Temperature 0 means greedy (argmax of the biased and penalised logits) whatever
 * the other settings.
 *
 * <p>{@link #withSpeculation} makes a request decode speculatively; it changes speed, never the
 * distribution of the output (see {@link Speculation}).
 */
public final class GenerationConfig {
    private final int maxTokens;
    private final float temperature;
    private final int topK;
    private final float topP;
    private final float minP;
    private final boolean temperatureLast;
    private final float repetitionPenalty;
    private final int repetitionLastN;
    private final float frequencyPenalty;
    private final float presencePenalty;
    private final int[] biasTokens;
    private final float[] biasValues;
    private final long seed;
    private final boolean seeded;
    private final List<String> stopStrings;
    private final int[] stopTokens;
    private final boolean ignoreEos;
    private final Duration timeout;
    private final int priority;
    private final Speculation speculation;
    private final int logprobs;
    private final boolean jsonOutput;
    private final int promptLogprobs;

    /** The most alternatives {@link #logprobs} reports per token (as vLLM's and OpenAI's default limit). */
    public static final int MAX_TOP_LOGPROBS = 20;

    /** The mutable twin used to make modified copies. */
    private static final class Values {
        int maxTokens = 256;
        float temperature = 0.8f;
        int topK = 40;
        float topP = 0.95f;
        float minP = 0.05f;
        boolean temperatureLast;
        float repetitionPenalty = 1.0f;
        int repetitionLastN = 64;
        float frequencyPenalty;
        float presencePenalty;
        int[] biasTokens = new int[0];
        float[] biasValues = new float[0];
        long seed;
        boolean seeded;
        List<String> stopStrings = List.of();
        int[] stopTokens = new int[0];
        boolean ignoreEos;
        Duration timeout = Duration.ZERO;
        int priority;
        Speculation speculation;
        int logprobs = -1;
        boolean jsonOutput;
        int promptLogprobs = -1;
    }

    private GenerationConfig(Values v) {
        if (v.maxTokens < 0) {
            throw new IllegalArgumentException("maxTokens must be >= 0, got " + v.maxTokens);
        }
        if (!(v.temperature >= 0) || Float.isInfinite(v.temperature)) {
            throw new IllegalArgumentException("temperature must be a finite number >= 0, got " + v.temperature);
        }
        if (v.topK < 0) {
            throw new IllegalArgumentException("topK must be >= 0 (0 = off), got " + v.topK);
        }
        if (!(v.topP > 0 && v.topP <= 1)) {
            throw new IllegalArgumentException("topP must be in (0, 1] (1 = off), got " + v.topP);
        }
        if (!(v.minP >= 0 && v.minP < 1)) {
            throw new IllegalArgumentException("minP must be in [0, 1) (0 = off), got " + v.minP);
        }
        if (!(v.repetitionPenalty > 0) || Float.isInfinite(v.repetitionPenalty)) {
            throw new IllegalArgumentException("repetitionPenalty must be > 0 (1 = off), got " + v.repetitionPenalty);
        }
        if (v.repetitionLastN < 0) {
            throw new IllegalArgumentException("repetitionLastN must be >= 0, got " + v.repetitionLastN);
        }
        if (!Float.isFinite(v.frequencyPenalty) || !Float.isFinite(v.presencePenalty)) {
            throw new IllegalArgumentException("frequency and presence penalties must be finite, got "
                    + v.frequencyPenalty + " and " + v.presencePenalty);
        }
        for (int i = 0; i < v.biasTokens.length; i++) {
            if (v.biasTokens[i] < 0) {
                throw new IllegalArgumentException("logit bias for token " + v.biasTokens[i] + ": token ids are >= 0");
            }
            if (Float.isNaN(v.biasValues[i]) || v.biasValues[i] == Float.POSITIVE_INFINITY) {
                throw new IllegalArgumentException("logit bias for token " + v.biasTokens[i]
                        + " must be finite or -Infinity (to ban it), got " + v.biasValues[i]);
            }
        }
        for (String s : v.stopStrings) {
            if (s.isEmpty()) {
                throw new IllegalArgumentException("stop strings must not be empty");
            }
        }
        if (v.timeout.isNegative()) {
            throw new IllegalArgumentException("timeout must not be negative, got " + v.timeout);
        }
        if (v.logprobs < -1 || v.logprobs > MAX_TOP_LOGPROBS) {
            throw new IllegalArgumentException("logprobs takes 0 to " + MAX_TOP_LOGPROBS + " alternatives per token, got "
                    + v.logprobs);
        }
        if (v.promptLogprobs < -1 || v.promptLogprobs > MAX_TOP_LOGPROBS) {
            throw new IllegalArgumentException("promptLogprobs takes 0 to " + MAX_TOP_LOGPROBS + " alternatives per token, got "
                    + v.promptLogprobs);
        }
        this.maxTokens = v.maxTokens;
        this.temperature = v.temperature;
        this.topK = v.topK;
        this.topP = v.topP;
        this.minP = v.minP;
        this.temperatureLast = v.temperatureLast;
        this.repetitionPenalty = v.repetitionPenalty;
        this.repetitionLastN = v.repetitionLastN;
        this.frequencyPenalty = v.frequencyPenalty;
        this.presencePenalty = v.presencePenalty;
        this.biasTokens = v.biasTokens;
        this.biasValues = v.biasValues;
        this.seed = v.seed;
        this.seeded = v.seeded;
        this.stopStrings = List.copyOf(v.stopStrings);
        this.stopTokens = v.stopTokens.clone();
        this.ignoreEos = v.ignoreEos;
        this.timeout = v.timeout;
        this.priority = v.priority;
        this.speculation = v.speculation;
        this.logprobs = v.logprobs;
        this.jsonOutput = v.jsonOutput;
        this.promptLogprobs = v.promptLogprobs;
    }

    /** Sampling at temperature 0.8, top-k 40, top-p 0.95, min-p 0.05 (llama.cpp's defaults), 256 tokens. */
    public static GenerationConfig defaults() {
        return new GenerationConfig(new Values());
    }

    /** Greedy decoding (always the most likely token), 256 tokens. */
    public static GenerationConfig greedy() {
        return defaults().temperature(0);
    }

    private GenerationConfig with(Consumer<Values> change) {
        Values v = new Values();
        v.maxTokens = maxTokens;
        v.temperature = temperature;
        v.topK = topK;
        v.topP = topP;
        v.minP = minP;
        v.temperatureLast = temperatureLast;
        v.repetitionPenalty = repetitionPenalty;
        v.repetitionLastN = repetitionLastN;
        v.frequencyPenalty = frequencyPenalty;
        v.presencePenalty = presencePenalty;
        v.biasTokens = biasTokens;
        v.biasValues = biasValues;
        v.seed = seed;
        v.seeded = seeded;
        v.stopStrings = stopStrings;
        v.stopTokens = stopTokens;
        v.ignoreEos = ignoreEos;
        v.timeout = timeout;
        v.priority = priority;
        v.speculation = speculation;
        v.logprobs = logprobs;
        v.jsonOutput = jsonOutput;
        v.promptLogprobs = promptLogprobs;
        change.accept(v);
        return new GenerationConfig(v);
    }

    /** The most tokens to generate. */
    public GenerationConfig maxTokens(int n) {
        return with(v -> v.maxTokens = n);
    }

    /** Softmax temperature; 0 = greedy. */
    public GenerationConfig temperature(float t) {
        return with(v -> v.temperature = t);
    }

    /** Keep only the k most likely tokens; 0 = off. */
    public GenerationConfig topK(int k) {
        return with(v -> v.topK = k);
    }

    /** Keep the smallest set of most likely tokens whose probability reaches p; 1 = off. */
    public GenerationConfig topP(float p) {
        return with(v -> v.topP = p);
    }

    /** Drop tokens whose probability is below p times the most likely one's; 0 = off. */
    public GenerationConfig minP(float p) {
        return with(v -> v.minP = p);
    }

    /**
     * Whether the temperature applies after top-k, top-p and min-p (llama.cpp's default sampler
     * chain: its filters see the distribution at temperature 1, the draw the distribution of the
     * survivors at the temperature) rather than before them (the default, as in Hugging Face
     * transformers and vLLM). Top-k keeps the same tokens either way; top-p and min-p keep more
     * at temperatures below 1 when the temperature comes last, fewer above.
     */
    public GenerationConfig temperatureLast(boolean last) {
        return with(v -> v.temperatureLast = last);
    }

    /** Penalise tokens seen in the last {@code lastN} tokens (CTRL-style: divide positive logits, multiply negative ones); 1 = off. */
    public GenerationConfig repetitionPenalty(float penalty, int lastN) {
        return with(v -> {
            v.repetitionPenalty = penalty;
            v.repetitionLastN = lastN;
        });
    }

    /**
     * OpenAI-style penalties over the last {@link #repetitionLastN()} tokens, as llama.cpp applies
     * them: a token seen c times there has c * frequency + presence subtracted from its logit (after
     * the repetition penalty). 0 = off; negative values favour repeats.
     */
    public GenerationConfig frequencyAndPresencePenalty(float frequency, float presence) {
        return with(v -> {
            v.frequencyPenalty = frequency;
            v.presencePenalty = presence;
        });
    }

    /**
     * Adds {@code bias.get(id)} to token id's logit before anything else ({@code -Infinity} bans the
     * token); ids must be in the model's vocabulary (checked when generation starts). Replaces any
     * earlier bias; an empty map turns it off.
     */
    public GenerationConfig logitBias(Map<Integer, Float> bias) {
        Objects.requireNonNull(bias, "bias (an empty map for none)");
        int[] ids = bias.keySet().stream().mapToInt(Integer::intValue).sorted().toArray();
        float[] values = new float[ids.length];
        for (int i = 0; i < ids.length; i++) {
            values[i] = Objects.requireNonNull(bias.get(ids[i]), "bias value");
        }
        return with(v -> {
            v.biasTokens = ids;
            v.biasValues = values;
        });
    }

    /** Seed of the request's random generator: the same seed, prompt and config give the same output. */
    public GenerationConfig seed(long s) {
        return with(v -> {
            v.seed = s;
            v.seeded = true;
        });
    }

    /** Stop when the generated text contains any of these strings (the stop string is not returned). */
    public GenerationConfig stopStrings(String... strings) {
        List<String> list = List.of(strings);
        return with(v -> v.stopStrings = list);
    }

    /** Stop when one of these token ids is generated (in addition to the model's end-of-generation tokens). */
    public GenerationConfig stopTokens(int... ids) {
        int[] copy = Objects.requireNonNull(ids, "stop token ids").clone();
        return with(v -> v.stopTokens = copy);
    }

    /** Keep generating past the model's end-of-generation tokens (for benchmarks). */
    public GenerationConfig ignoreEos(boolean ignore) {
        return with(v -> v.ignoreEos = ignore);
    }

    /**
     * Give up on the request after this long (from its submission): it ends with
     * {@link FinishReason#TIMEOUT} and the text generated so far. {@link Duration#ZERO} = no limit.
     */
    public GenerationConfig timeout(Duration limit) {
        Objects.requireNonNull(limit, "timeout (Duration.ZERO for none)");
        return with(v -> v.timeout = limit);
    }

    /**
     * The request's place among concurrent ones: lower values first (vLLM's convention), 0 by
     * default, equal values first come, first served. A waiting request is admitted before every
     * waiting one of a higher value, and takes batch places and KV cache room from running requests
     * of higher values, which are preempted and recomputed later (with the same output); when the
     * cache runs out during a step, the request of the highest value is preempted first.
     */
    public GenerationConfig priority(int priority) {
        return with(v -> v.priority = priority);
    }

    /**
     * Decode speculatively: {@code speculation}'s drafter proposes tokens that the model verifies
     * several at a time ({@link Speculation#draftModel}, {@link Speculation#promptLookup},
     * {@link Speculation#drafter}); null turns speculation off.
     */
    public GenerationConfig withSpeculation(Speculation speculation) {
        return with(v -> v.speculation = speculation);
    }

    /**
     * Report each generated token's log-probability under the model's distribution, with the
     * {@code top} most likely tokens at its position (0 to {@value #MAX_TOP_LOGPROBS}): in
     * {@link GeneratedToken#logprob()} and {@link Completion#logprobs()}. The distribution is the
     * softmax of the model's logits before any sampling setting ({@link TokenLogprob}). Costs a
     * pass over each logits row; on a backend that would otherwise hand back only a few candidates
     * per row (a GPU), the whole row.
     */
    public GenerationConfig logprobs(int top) {
        return with(v -> v.logprobs = top);
    }

    /**
     * Constrain the output to one JSON object (RFC 8259; as OpenAI's JSON mode and llama.cpp's json
     * grammar): at each step only tokens that keep the text a prefix of a JSON object can be drawn,
     * and the generation ends with the model's end-of-generation token as soon as the object
     * closes. The text is valid JSON unless max tokens (or a stop string) cut it short first. The
     * model should also be asked for JSON in the prompt: the constraint decides what is allowed,
     * not what the model wants to say.
     */
    public GenerationConfig jsonOutput(boolean json) {
        return with(v -> v.jsonOutput = json);
    }

    /**
     * Also report the log-probability of each prompt token given the ones before it, with the
     * {@code top} most likely tokens at its position (0 to {@value #MAX_TOP_LOGPROBS}), in
     * {@link Completion#promptLogprobs()} (and the prompt's perplexity,
     * {@link Completion#promptPerplexity()}): vLLM's prompt_logprobs, llama.cpp's perplexity. The
     * prompt is then evaluated in chunks of at most {@value dev.peregrine.engine.Scheduler#PROMPT_LOGPROB_CHUNK}
     * tokens with a logits row for each, and not taken from the prefix cache (every position must
     * be evaluated). -1 turns it off (the default).
     */
    public GenerationConfig promptLogprobs(int top) {
        return with(v -> v.promptLogprobs = top);
    }

    /** Whether the prompt's tokens are scored ({@link #promptLogprobs(int)}). */
    public boolean wantsPromptLogprobs() {
        return promptLogprobs >= 0;
    }

    /** How many most likely alternatives each prompt token's log-probability comes with; -1 when off. */
    public int topPromptLogprobs() {
        return promptLogprobs;
    }

    /** Whether the output is constrained to a JSON object ({@link #jsonOutput}). */
    public boolean isJsonOutput() {
        return jsonOutput;
    }

    /** Turns log-probabilities off (the default). */
    public GenerationConfig withoutLogprobs() {
        return with(v -> v.logprobs = -1);
    }

    /** Whether each generated token comes with its log-probability ({@link #logprobs(int)}). */
    public boolean wantsLogprobs() {
        return logprobs >= 0;
    }

    /** How many most likely alternatives each token's log-probability comes with; -1 when they are off. */
    public int topLogprobs() {
        return logprobs;
    }

    public int maxTokens() {
        return maxTokens;
    }

    public float temperature() {
        return temperature;
    }

    public boolean isGreedy() {
        return temperature == 0;
    }

    public int topK() {
        return topK;
    }

    public float topP() {
        return topP;
    }

    public float minP() {
        return minP;
    }

    /** Whether the temperature applies after the filters (llama.cpp's order) rather than before them. */
    public boolean temperatureLast() {
        return temperatureLast;
    }

    public float repetitionPenalty() {
        return repetitionPenalty;
    }

    public int repetitionLastN() {
        return repetitionLastN;
    }

    public float frequencyPenalty() {
        return frequencyPenalty;
    }

    public float presencePenalty() {
        return presencePenalty;
    }

    /** The logit bias, by token id (empty when off). */
    public Map<Integer, Float> logitBias() {
        Map<Integer, Float> m = new TreeMap<>();
        for (int i = 0; i < biasTokens.length; i++) {
            m.put(biasTokens[i], biasValues[i]);
        }
        return Collections.unmodifiableMap(m);
    }

    /** Whether anything changes logits before the ranking: a logit bias or a penalty. */
    public boolean changesLogits() {
        return biasTokens.length > 0 || (repetitionPenalty != 1f && repetitionLastN > 0)
                || ((frequencyPenalty != 0 || presencePenalty != 0) && repetitionLastN > 0);
    }

    /** Whether a seed was set; without one each request draws a fresh random seed. */
    public boolean isSeeded() {
        return seeded;
    }

    public long seed() {
        return seed;
    }

    public List<String> stopStrings() {
        return stopStrings;
    }

    public int[] stopTokens() {
        return stopTokens.clone();
    }

    public boolean ignoreEos() {
        return ignoreEos;
    }

    /** The request's time limit; {@link Duration#ZERO} = none. */
    public Duration timeout() {
        return timeout;
    }

    /** The request's scheduling priority: lower values first; 0 by default. */
    public int priority() {
        return priority;
    }

    /** The request's speculative decoding, if any. */
    public Optional<Speculation> speculation() {
        return Optional.ofNullable(speculation);
    }

    @Override
    public String toString() {
        return "GenerationConfig[maxTokens=" + maxTokens + ", temperature=" + temperature + ", topK=" + topK
                + ", topP=" + topP + ", minP=" + minP + (temperatureLast ? ", temperatureLast" : "")
                + ", repetitionPenalty=" + repetitionPenalty
                + ", repetitionLastN=" + repetitionLastN
                + (frequencyPenalty == 0 && presencePenalty == 0 ? ""
                        : ", frequencyPenalty=" + frequencyPenalty + ", presencePenalty=" + presencePenalty)
                + (biasTokens.length == 0 ? "" : ", logitBias=" + logitBias())
                + (seeded ? ", seed=" + seed : "")
                + ", stopStrings=" + stopStrings + ", stopTokens=" + Arrays.toString(stopTokens)
                + ", ignoreEos=" + ignoreEos + (timeout.isZero() ? "" : ", timeout=" + timeout)
                + (priority == 0 ? "" : ", priority=" + priority)
                + (speculation == null ? "" : ", speculation=" + speculation)
                + (logprobs < 0 ? "" : ", logprobs=" + logprobs) + (jsonOutput ? ", jsonOutput" : "")
                + (promptLogprobs < 0 ? "" : ", promptLogprobs=" + promptLogprobs) + "]";
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof GenerationConfig c && c.toString().equals(toString());
    }

    @Override
    public int hashCode() {
        return Objects.hash(toString());
    }
}
