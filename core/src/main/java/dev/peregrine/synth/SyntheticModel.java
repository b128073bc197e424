package dev.peregrine.synth;

import dev.peregrine.PeregrineException;
import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.gguf.GgufWriter;
import dev.peregrine.format.hf.HfDirectoryWriter;
import dev.peregrine.format.hf.HfLlamaConfig;
import dev.peregrine.format.hf.HfLlamaLayout;
import dev.peregrine.format.hf.SafetensorsWriter.TensorSpec;
import dev.peregrine.model.Family;
import dev.peregrine.model.LlamaWeights;
import dev.peregrine.model.RopeScaling;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Quantize;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.BiConsumer;
import java.util.function.LongUnaryOperator;

/**
 * A Llama network of a given {@link ModelShape} with seeded random weights, written as a GGUF file
 * or a Hugging Face directory laid out exactly as real checkpoints are. Weight values do not change
 * what inference costs, so these files stand in for real models in tests and benchmarks.
 *
 * <p>Values: matrices are normally distributed (Irwin-Hall approximation, four 16-bit uniforms per
 * value) with standard deviation {@code 1/sqrt(fan_in)}, and the projections that feed the
 * residual stream (attention output, FFN down) are scaled by a further {@code 1/sqrt(2 layers)},
 * so each of the 2L residual branches adds variance about 1/(2L) and activations stay of order 1
 * through any depth; norm weights are 1 for Llama and 1 plus normal values of deviation 0.5 for
 * the other families (so that a misplaced norm or Gemma's 1 + w read wrongly shows), biases
 * normal of deviation 0.5. The token embedding (also the output projection when
 * tied) has standard deviation {@code 1/sqrt(dim)}, which makes logits of order 1.
 *
 * <p>Determinism: each row of each tensor draws from its own SplitMix64 stream, seeded from the
 * model seed, the tensor's GGUF name and the row's index in GGUF order. Rows are generated and
 * encoded in parallel in chunks and written in order, so the bytes depend on the seed only, not
 * on the thread count or the chunk size; and the HF q/k projections, whose rows are in a
 * different order ({@link HfLlamaLayout}), hold the very same rows as the GGUF file's.
 *
 * <p>Memory: only a few chunks per thread are in flight, so a file of any size is written with a
 * small, fixed heap.
 */
public final class SyntheticModel {
    /** Values per chunk of work: small enough to stay out of the garbage collector's humongous regions. */
    private static final int CHUNK_VALUES = 1 << 17;
    private static final long GOLDEN_GAMMA = 0x9E3779B97F4A7C15L;
    /** Mean and 1/standard deviation of the sum of four uniform 16-bit integers. */
    private static final int IRWIN_HALL_MEAN = 2 * 0xFFFF;
    private static final double IRWIN_HALL_INV_STD = 1 / Math.sqrt((65536.0 * 65536.0 - 1) / 3);
    /** llama.cpp's general.quantization_version. */
    private static final int GGML_QUANT_VERSION = 2;

    /**
     * One weight tensor, in ggml terms: {@code rows} rows of {@code rowLength} values. A vector (a
     * norm weight or a bias) is one row, stored as F32 whatever the matrices' type. Values are
     * {@code mean} plus normal values of standard deviation {@code std} (all {@code mean} for 0).
     */
    public record Weight(String name, long rowLength, long rows, boolean vector, float mean, float std, long seed) {
        /** The ggml shape: row length first. */
        public long[] ggmlShape() {
            return vector ? new long[] {rowLength} : new long[] {rowLength, rows};
        }

        public long elementCount() {
            return rowLength * rows;
        }
    }

    /** What a write produced. */
    public record Written(List<Path> files, long parameters, long bytes, long nanos) {
        public Written {
            files = List.copyOf(files);
        }
    }

    /**
     * A tensor to stream: its name in the output, its values, their encoding and the order of its
     * rows; {@code sourceElement}, when not null, reorders the elements of each row (q/k norm
     * weights and biases in rotate-half order); {@code subtract} is taken from every value (Gemma's
     * norms, stored in Hugging Face checkpoints as w for 1 + w).
     */
    private record Job(String name, Weight weight, DType type, LongUnaryOperator sourceRow, LongUnaryOperator sourceElement,
                       float subtract) {
        Job(String name, Weight weight, DType type, LongUnaryOperator sourceRow) {
            this(name, weight, type, sourceRow, null, 0);
        }

        Job minus(float value) {
            return new Job(name, weight, type, sourceRow, sourceElement, value);
        }
    }

    private final ModelShape shape;
    private final long seed;
    private final List<Weight> weights;
    private final RopeScaling ropeScaling;

    private SyntheticModel(ModelShape shape, long seed, RopeScaling ropeScaling) {
        this.shape = shape;
        this.seed = seed;
        this.weights = layout();
        this.ropeScaling = ropeScaling;
    }

    public static SyntheticModel of(ModelShape shape, long seed) {
        return new SyntheticModel(shape, seed, RopeScaling.NONE);
    }

    /**
     * The same model (same weights) with rope scaling, written as the real files carry it: in GGUF,
     * llama3 as the rope_freqs.weight tensor of divisors (as llama.cpp's converter writes it) and
     * linear or yarn as {@code llama.rope.scaling.*} keys; in config.json as rope_scaling.
     */
    public SyntheticModel withRopeScaling(RopeScaling scaling) {
        return new SyntheticModel(shape, seed, scaling);
    }

    public RopeScaling ropeScaling() {
        return ropeScaling;
    }

    public ModelShape shape() {
        return shape;
    }

    public long seed() {
        return seed;
    }

    /** The tensors in file order, under their GGUF names. */
    public List<Weight> weights() {
        return weights;
    }

    /**
     * llama.cpp's {@code general.file_type} (llama_ftype) of a model whose matrices are all
     * {@code type}. llama.cpp has no file type for "all Q3_K", "all Q4_K", "all Q5_K" or "all Q6_K":
     * these are the ids of Q3_K_S, Q4_K_S, Q5_K_S and Q6_K, under which {@code llama-quantize --pure} writes every matrix as that type.
     */
    public static int llamaFileType(DType type) {
        return switch (type) {
            case F32 -> 0;
            case F16 -> 1;
            case Q4_0 -> 2;
            case Q4_1 -> 3;
            case Q8_0 -> 7;
            case Q5_0 -> 8;
            case Q5_1 -> 9;
            case Q2_K -> 10;
            case Q3_K -> 11;
            case Q4_K -> 14;
            case Q5_K -> 16;
            case Q6_K -> 18;
            case IQ4_NL -> 25;
            case IQ4_XS -> 30;
            case BF16 -> 32;
        };
    }

    private List<Weight> layout() {
        int d = shape.dim();
        int layers = shape.layers();
        Family family = shape.family();
        float inDim = (float) (1 / Math.sqrt(d));
        double residual = 1 / Math.sqrt(2.0 * layers);
        List<Weight> w = new ArrayList<>();
        int qd = shape.queryDim();
        int kvd = shape.kvDim();
        w.add(matrix("token_embd.weight", d, shape.vocab(), inDim));
        for (int i = 0; i < layers; i++) {
            String p = "blk." + i + ".";
            w.add(norm(p + "attn_norm.weight", d));
            if (family.fusedProjections()) {
                w.add(matrix(p + "attn_qkv.weight", d, qd + 2L * kvd, inDim));
            } else {
                w.add(matrix(p + "attn_q.weight", d, qd, inDim));
                w.add(matrix(p + "attn_k.weight", d, kvd, inDim));
                w.add(matrix(p + "attn_v.weight", d, kvd, inDim));
            }
            if (family.qkvBias()) {
                w.add(bias(p + "attn_q.bias", qd));
                w.add(bias(p + "attn_k.bias", kvd));
                w.add(bias(p + "attn_v.bias", kvd));
            }
            w.add(matrix(p + "attn_output.weight", qd, d, (float) (residual / Math.sqrt(qd))));
            if (family.qkNorm()) {
                // Not all ones, unlike Llama's norms: a misplaced element must change the logits.
                w.add(randomNorm(p + "attn_q_norm.weight", shape.headDim()));
                w.add(randomNorm(p + "attn_k_norm.weight", shape.headDim()));
            }
            if (family.scaledEmbeddingAndPostNorms()) {
                w.add(norm(p + "post_attention_norm.weight", d));
            }
            w.add(norm(p + "ffn_norm.weight", d));
            if (family.fusedProjections()) {
                w.add(matrix(p + "ffn_up.weight", d, 2L * shape.ffn(), inDim));
            } else {
                w.add(matrix(p + "ffn_gate.weight", d, shape.ffn(), inDim));
                w.add(matrix(p + "ffn_up.weight", d, shape.ffn(), inDim));
            }
            w.add(matrix(p + "ffn_down.weight", shape.ffn(), d, (float) (residual / Math.sqrt(shape.ffn()))));
            if (family.scaledEmbeddingAndPostNorms()) {
                w.add(norm(p + "post_ffw_norm.weight", d));
            }
        }
        w.add(norm("output_norm.weight", d));
        if (!shape.tiedEmbeddings()) {
            w.add(matrix("output.weight", d, shape.vocab(), inDim));
        }
        return List.copyOf(w);
    }

    private Weight matrix(String name, long rowLength, long rows, float std) {
        return new Weight(name, rowLength, rows, false, 0, std, tensorSeed(name));
    }

    /**
     * A norm weight: all ones for Llama (as real Llama checkpoints start), random around one for
     * the other families, so that a norm applied to the wrong place or Gemma's 1 + w read wrongly
     * changes the logits.
     */
    private Weight norm(String name, long length) {
        return shape.family() == Family.LLAMA ? new Weight(name, length, 1, true, 1, 0, tensorSeed(name)) : randomNorm(name, length);
    }

    private Weight randomNorm(String name, long length) {
        return new Weight(name, length, 1, true, 1, 0.5f, tensorSeed(name));
    }

    private Weight bias(String name, long length) {
        return new Weight(name, length, 1, true, 0, 0.5f, tensorSeed(name));
    }

    /** The model seed mixed with the tensor's name (FNV-1a over its characters). */
    private long tensorSeed(String name) {
        long h = mix64(seed);
        for (int i = 0; i < name.length(); i++) {
            h = (h ^ name.charAt(i)) * 0x100000001B3L;
        }
        return mix64(h);
    }

    /**
     * Fills {@code dst[offset .. offset + rowLength)} with row {@code row} (GGUF order) of {@code w}:
     * its mean plus normal values of its standard deviation.
     */
    static void fillRow(Weight w, long row, float[] dst, int offset) {
        int n = (int) w.rowLength();
        if (w.std() == 0) {
            Arrays.fill(dst, offset, offset + n, w.mean());
            return;
        }
        long state = mix64(w.seed() + row * GOLDEN_GAMMA);
        float scale = (float) (w.std() * IRWIN_HALL_INV_STD);
        for (int i = 0; i < n; i++) {
            state += GOLDEN_GAMMA;
            long z = mix64(state);
            int sum = (int) (z & 0xFFFF) + (int) ((z >>> 16) & 0xFFFF) + (int) ((z >>> 32) & 0xFFFF) + (int) (z >>> 48);
            dst[offset + i] = (sum - IRWIN_HALL_MEAN) * scale + w.mean();
        }
    }

    /** SplitMix64's output function. */
    private static long mix64(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /**
     * Writes the model as a GGUF file in llama.cpp's conventions for its family (architecture,
     * keys, tensor names, NEOX families' q/k rows unpermuted): matrices as {@code type}, norm
     * weights and biases as F32, as llama.cpp's converter and quantizer keep them. A quantised type applies to
     * every matrix, token embedding and output included (llama-quantize --pure).
     *
     * @param threads worker threads; 0 for one per processor
     * @throws IllegalArgumentException if the tokenizer's size differs from the shape's vocabulary,
     *                                  or a quantised type does not fit the rows
     */
    public Written writeGguf(Path file, DType type, TokenizerMetadata tokenizer, int threads) {
        return writeGguf(file, FileType.of(type), tokenizer, threads);
    }

    /**
     * Writes the model as a GGUF file with each matrix stored as {@code fileType} says, norm
     * weights as F32 (see {@link #writeGguf(Path, DType, TokenizerMetadata, int)}).
     *
     * @throws IllegalArgumentException if the tokenizer's size differs from the shape's vocabulary,
     *                                  or a quantised type does not fit the rows of its matrices
     */
    public Written writeGguf(Path file, FileType fileType, TokenizerMetadata tokenizer, int threads) {
        if (tokenizer.tokenCount() != shape.vocab()) {
            throw new IllegalArgumentException("the tokenizer has " + tokenizer.tokenCount()
                    + " tokens but the shape's vocabulary is " + shape.vocab());
        }
        checkBlocks(fileType);
        long start = System.nanoTime();
        try (GgufWriter w = GgufWriter.create(file)) {
            // Each family under its own architecture and keys, and in rotate-half q/k order where
            // llama.cpp's converter leaves it so (Family.ropeRotateHalf).
            Family family = shape.family();
            String arch = family.ggufArchitecture();
            w.putString("general.architecture", arch);
            w.putString("general.type", "model");
            w.putString("general.name", "synthetic " + shape.name() + " (seed " + seed + ")");
            w.putUInt32("general.alignment", GgufFile.DEFAULT_ALIGNMENT);
            w.putUInt32(arch + ".block_count", shape.layers());
            w.putUInt32(arch + ".context_length", shape.contextLength());
            w.putUInt32(arch + ".embedding_length", shape.dim());
            w.putUInt32(arch + ".feed_forward_length", shape.ffn());
            w.putUInt32(arch + ".attention.head_count", shape.heads());
            w.putUInt32(arch + ".attention.head_count_kv", shape.kvHeads());
            w.putFloat32(arch + ".rope.freq_base", shape.ropeTheta());
            w.putFloat32(arch + ".attention.layer_norm_rms_epsilon", shape.rmsEps());
            w.putUInt32(arch + ".attention.key_length", shape.headDim());
            w.putUInt32(arch + ".attention.value_length", shape.headDim());
            w.putUInt32("general.file_type", fileType.llamaId());
            w.putUInt32(arch + ".vocab_size", shape.vocab());
            w.putUInt32(arch + ".rope.dimension_count", shape.headDim());
            writeRopeScalingKeys(w, arch);
            // Written for every family, as the Hugging Face config states it; llama.cpp (and so
            // Peregrine) ignores it in a llama or phi3 file: such a file attends to everything.
            if (shape.slidingWindow() > 0) {
                w.putUInt32(arch + ".attention.sliding_window", shape.slidingWindow());
            }
            if (shape.attentionSoftcap() > 0) {
                w.putFloat32(arch + ".attn_logit_softcapping", shape.attentionSoftcap());
            }
            if (shape.finalSoftcap() > 0) {
                w.putFloat32(arch + ".final_logit_softcapping", shape.finalSoftcap());
            }
            tokenizer.writeTo(w);
            w.putUInt32("general.quantization_version", GGML_QUANT_VERSION);

            // llama.cpp's converter yields rope_freqs.weight before the model's own tensors.
            byte[] ropeFreqs = null;
            if (ropeScaling instanceof RopeScaling.Llama3 llama3) {
                float[] divisors = llama3.divisors(shape.ropeTheta(), shape.headDim());
                w.addTensor(LlamaWeights.ROPE_FREQS, DType.F32, divisors.length);
                ropeFreqs = new byte[(int) DType.F32.bytesFor(divisors.length)];
                Quantize.fromFloat(DType.F32, divisors, 0, divisors.length, MemorySegment.ofArray(ropeFreqs), 0);
            }
            List<Job> jobs = new ArrayList<>();
            for (Weight t : weights) {
                DType stored = storedType(t, fileType);
                w.addTensor(t.name(), stored, t.ggmlShape());
                jobs.add(family.ropeRotateHalf() ? rotateHalfJob(t.name(), t, stored)
                        : new Job(t.name(), t, stored, LongUnaryOperator.identity()));
            }
            if (ropeFreqs != null) {
                w.writeTensorData(LlamaWeights.ROPE_FREQS, ropeFreqs);
            }
            stream(jobs, threads, w::writeTensorData);
        } catch (RuntimeException | Error e) {
            deleteQuietly(List.of(file));
            throw e;
        }
        return new Written(List.of(file), shape.parameterCount(), size(List.of(file)), System.nanoTime() - start);
    }

    /**
     * Writes the model as a Hugging Face directory of its family's class (config.json with the
     * family's keys, generation_config.json, safetensors weights under the family's names, sharded
     * beyond {@code shardLimit} bytes), every tensor as {@code type}, the q/k projections in HF's
     * rotate-half row order and Gemma's norms as w for 1 + w. No tokenizer files are written
     * ({@link SyntheticHfTokenizer} writes them).
     *
     * @throws IllegalArgumentException if {@code type} is not F32, F16 or BF16
     */
    public Written writeHf(Path dir, DType type, long shardLimit, int threads) {
        Family family = shape.family();
        HfLlamaConfig config = new HfLlamaConfig(shape.dim(), shape.ffn(), shape.layers(), shape.heads(),
                shape.kvHeads(), shape.headDim(), shape.contextLength(), shape.rmsEps(), shape.ropeTheta(),
                shape.vocab(), shape.tiedEmbeddings(), type, 1, 2, hfRopeScaling(), hfArchitecture(), hfModelType(),
                hfFamilyKeys());
        HfLlamaLayout.Naming naming = family.hfNaming();
        List<TensorSpec> specs = new ArrayList<>();
        List<Job> jobs = new ArrayList<>();
        for (Weight t : weights) {
            String name = HfLlamaLayout.hfName(t.name(), naming);
            specs.add(new TensorSpec(name, type, HfLlamaLayout.hfShape(t.ggmlShape())));
            Job job = rotateHalfJob(name, t, type);
            jobs.add(family.hfNormsAreOffsetByOne() && t.name().endsWith("norm.weight") ? job.minus(1) : job);
        }
        long start = System.nanoTime();
        List<Path> files = new ArrayList<>(List.of(dir.resolve("config.json"), dir.resolve("generation_config.json")));
        try (HfDirectoryWriter w = HfDirectoryWriter.create(dir, config, specs, shardLimit)) {
            files.addAll(w.weightFiles());
            if (w.weightFiles().size() > 1) {
                files.add(dir.resolve(HfDirectoryWriter.INDEX_FILE));
            }
            stream(jobs, threads, w::writeTensorData);
        } catch (RuntimeException | Error e) {
            deleteQuietly(files);
            throw e;
        }
        return new Written(files, shape.parameterCount(), size(files), System.nanoTime() - start);
    }

    /** The tensor with its q/k rows and q/k norm and bias elements in rotate-half order (HF, and GGUF of the NEOX families). */
    private Job rotateHalfJob(String name, Weight t, DType type) {
        int headDim = shape.headDim();
        LongUnaryOperator toGguf = i -> HfLlamaLayout.ggufRowOfHfRow(i, headDim);
        if (HfLlamaLayout.isRopePermuted(t.name())) {
            return new Job(name, t, type, toGguf);
        }
        if (HfLlamaLayout.isRopePermutedVector(t.name())) {
            return new Job(name, t, type, LongUnaryOperator.identity(), toGguf, 0);
        }
        return new Job(name, t, type, LongUnaryOperator.identity());
    }

    /** The {@code llama.rope.scaling.*} keys llama.cpp's converter writes for linear and yarn. */
    private void writeRopeScalingKeys(GgufWriter w, String arch) {
        String p = arch + ".rope.scaling.";
        switch (ropeScaling) {
            case RopeScaling.None none -> { }
            case RopeScaling.Llama3 llama3 -> { } // the rope_freqs.weight tensor instead
            case RopeScaling.Linear linear -> {
                w.putString(p + "type", "linear");
                w.putFloat32(p + "factor", (float) linear.factor());
            }
            case RopeScaling.Yarn yarn -> {
                if (!yarn.truncate()) {
                    throw new IllegalArgumentException("GGUF has no key for yarn without truncation");
                }
                w.putString(p + "type", "yarn");
                w.putFloat32(p + "factor", (float) yarn.factor());
                w.putUInt32(p + "original_context_length", yarn.originalContext());
                w.putFloat32(p + "yarn_beta_fast", (float) yarn.betaFast());
                w.putFloat32(p + "yarn_beta_slow", (float) yarn.betaSlow());
                // The converter writes it only when config.json states one.
                if (yarn.attentionFactor() != RopeScaling.Yarn.defaultAttentionFactor(yarn.factor())) {
                    w.putFloat32(p + "yarn_attn_factor", (float) yarn.attentionFactor());
                }
            }
        }
    }

    /** config.json's rope_scaling, as transformers writes it; null for none. */
    private Map<String, Object> hfRopeScaling() {
        Map<String, Object> m = new LinkedHashMap<>();
        switch (ropeScaling) {
            case RopeScaling.None none -> {
                return null;
            }
            case RopeScaling.Linear linear -> {
                m.put("rope_type", "linear");
                m.put("factor", linear.factor());
            }
            case RopeScaling.Llama3 llama3 -> {
                m.put("rope_type", "llama3");
                m.put("factor", llama3.factor());
                m.put("low_freq_factor", llama3.lowFreqFactor());
                m.put("high_freq_factor", llama3.highFreqFactor());
                m.put("original_max_position_embeddings", llama3.originalContext());
            }
            case RopeScaling.Yarn yarn -> {
                m.put("rope_type", "yarn");
                m.put("factor", yarn.factor());
                m.put("original_max_position_embeddings", yarn.originalContext());
                m.put("beta_fast", yarn.betaFast());
                m.put("beta_slow", yarn.betaSlow());
                if (yarn.attentionFactor() != RopeScaling.Yarn.defaultAttentionFactor(yarn.factor())) {
                    m.put("attention_factor", yarn.attentionFactor());
                }
                if (!yarn.truncate()) {
                    m.put("truncate", false);
                }
            }
        }
        return m;
    }

    private String hfArchitecture() {
        Family family = shape.family();
        return family == Family.LLAMA && shape.slidingWindow() > 0 ? "MistralForCausalLM" : family.hfArchitectures().getFirst();
    }

    private String hfModelType() {
        return switch (shape.family()) {
            case LLAMA -> shape.slidingWindow() > 0 ? "mistral" : "llama";
            case GEMMA3 -> "gemma3_text";
            default -> shape.family().ggufArchitecture();
        };
    }

    /** What the family's config.json states beyond Llama's keys, as transformers writes it. */
    private Map<String, Object> hfFamilyKeys() {
        Map<String, Object> k = new LinkedHashMap<>();
        Integer window = shape.slidingWindow() > 0 ? shape.slidingWindow() : null;
        switch (shape.family()) {
            case LLAMA -> {
                if (window != null) {
                    k.put("sliding_window", window);
                }
            }
            case QWEN2, QWEN3 -> {
                k.put("use_sliding_window", false);
                k.put("sliding_window", shape.contextLength());
                k.put("max_window_layers", shape.layers());
            }
            case GEMMA2, GEMMA3 -> {
                k.put("hidden_activation", "gelu_pytorch_tanh");
                k.put("hidden_act", "gelu_pytorch_tanh");
                k.put("query_pre_attn_scalar", shape.headDim());
                k.put("sliding_window", window);
                k.put("attn_logit_softcapping", shape.attentionSoftcap() > 0 ? (Object) shape.attentionSoftcap() : null);
                k.put("final_logit_softcapping", shape.finalSoftcap() > 0 ? (Object) shape.finalSoftcap() : null);
                if (shape.family() == Family.GEMMA3) {
                    k.put("rope_local_base_freq", 10000.0);
                    k.put("sliding_window_pattern", 6);
                }
            }
            case PHI3 -> {
                k.put("sliding_window", window);
                k.put("original_max_position_embeddings", shape.contextLength());
            }
        }
        if (shape.family().qkvBias()) {
            k.put("attention_bias", true);
        }
        return k;
    }

    private DType storedType(Weight t, FileType fileType) {
        return t.vector() ? DType.F32 : fileType.typeOf(t.name(), t.rowLength(), shape.layers(), shape.tiedEmbeddings());
    }

    private void checkBlocks(FileType fileType) {
        for (Weight t : weights) {
            DType type = storedType(t, fileType);
            if (t.rowLength() % type.blockSize() != 0) {
                // A row is as long as the matrix's input: dim, ffn, or the attention width (heads x head size).
                String what = t.rowLength() == shape.dim() ? "dim"
                        : t.rowLength() == shape.ffn() ? "ffn" : "the attention width (heads x head size)";
                throw new IllegalArgumentException(type.name().toLowerCase(Locale.ROOT) + " stores rows in blocks of "
                        + type.blockSize() + " values: " + what + " " + t.rowLength() + " is not a multiple of " + type.blockSize());
            }
        }
    }

    /**
     * Generates and encodes every job's rows in chunks on {@code threads} workers and hands the
     * bytes to {@code sink} in order; at most a few chunks per worker are held at once.
     */
    private static void stream(List<Job> jobs, int threads, BiConsumer<String, byte[]> sink) {
        int workers = threads > 0 ? threads : Runtime.getRuntime().availableProcessors();
        int maxInFlight = 3 * workers;
        ExecutorService pool = Executors.newFixedThreadPool(workers, r -> {
            Thread t = new Thread(r, "peregrine-synth");
            t.setDaemon(true);
            return t;
        });
        try {
            ArrayDeque<Future<byte[]>> inFlight = new ArrayDeque<>();
            ArrayDeque<String> names = new ArrayDeque<>();
            for (Job job : jobs) {
                long rowsPerChunk = Math.max(1, CHUNK_VALUES / job.weight().rowLength());
                for (long first = 0; first < job.weight().rows(); first += rowsPerChunk) {
                    long from = first;
                    int count = (int) Math.min(rowsPerChunk, job.weight().rows() - first);
                    inFlight.add(pool.submit(() -> encode(job, from, count)));
                    names.add(job.name());
                    if (inFlight.size() >= maxInFlight) {
                        sink.accept(names.poll(), await(inFlight.poll()));
                    }
                }
            }
            while (!inFlight.isEmpty()) {
                sink.accept(names.poll(), await(inFlight.poll()));
            }
        } finally {
            pool.shutdownNow();
        }
    }

    /** Rows {@code [first, first + count)} of the job's tensor (in its output order), encoded. */
    private static byte[] encode(Job job, long first, int count) {
        Weight w = job.weight();
        int n = (int) w.rowLength();
        float[] values = new float[count * n];
        float[] canonical = job.sourceElement() == null ? null : new float[n];
        for (int r = 0; r < count; r++) {
            if (canonical == null) {
                fillRow(w, job.sourceRow().applyAsLong(first + r), values, r * n);
            } else {
                fillRow(w, job.sourceRow().applyAsLong(first + r), canonical, 0);
                for (int e = 0; e < n; e++) {
                    values[r * n + e] = canonical[(int) job.sourceElement().applyAsLong(e)];
                }
            }
        }
        if (job.subtract() != 0) {
            for (int i = 0; i < values.length; i++) {
                values[i] -= job.subtract();
            }
        }
        byte[] out = new byte[(int) job.type().bytesFor(values.length)];
        Quantize.fromFloat(job.type(), values, 0, values.length, MemorySegment.ofArray(out), 0);
        return out;
    }

    private static byte[] await(Future<byte[]> f) {
        try {
            return f.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            if (e.getCause() instanceof Error err) {
                throw err;
            }
            throw new PeregrineException("generating weights failed: " + e.getCause(), e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new PeregrineException("interrupted while writing a synthetic model", e);
        }
    }

    private static long size(List<Path> files) {
        long total = 0;
        for (Path p : files) {
            try {
                total += Files.size(p);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read the size of " + p, e);
            }
        }
        return total;
    }

    /** Removes what a failed write left behind; the write's own failure is the one reported. */
    private static void deleteQuietly(List<Path> files) {
        for (Path p : files) {
            try {
                Files.deleteIfExists(p);
            } catch (IOException ignored) {
                // best effort
            }
        }
    }
}
