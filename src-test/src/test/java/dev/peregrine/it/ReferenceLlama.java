package dev.peregrine.it;

import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.gguf.GgufMetadata;
import dev.peregrine.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A deliberately naive, test-only Llama forward pass in double precision, used as the ground truth
 * for Peregrine's real forward pass. It shares no code with the real path beyond reading the GGUF
 * file: it reads the hyper-parameters from the metadata itself, dequantises every tensor itself
 * (ggml's definitions of F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K) and computes everything with plain loops
 * over {@code double}s. One token at a time, with its own full-precision KV cache.
 *
 * <p>Conventions (ggml): a tensor of shape {@code [in, out]} holds {@code out} rows of {@code in}
 * values; {@code y[o] = sum_i W[o*in + i] * x[i]}. Rotary embedding uses ggml's "normal" layout:
 * adjacent pairs {@code (2i, 2i+1)} of each head are rotated by {@code pos * freq[i]}, where
 * {@code freq[i] = theta^(-2i/ropeDims)} changed by the model's rope scaling ({@link Rope}), and
 * cos and sin are multiplied by the scaling's attention factor (YaRN), as transformers does.
 *
 * <p>Qwen3 (GGUF architecture qwen3): the same with each head of q and k RMS-normed by its own
 * weight after the projections and before rope, and rope in llama.cpp's NEOX layout, as the file
 * holds it: element {@code i} of a head rotated with element {@code i + ropeDims/2}. Computed here
 * as written, with no permutation (the real path permutes rows instead).
 */
final class ReferenceLlama {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    // ggml type ids
    private static final int GGML_F32 = 0;
    private static final int GGML_F16 = 1;
    private static final int GGML_Q4_0 = 2;
    private static final int GGML_Q8_0 = 8;
    private static final int GGML_Q4_K = 12;
    private static final int GGML_Q6_K = 14;
    private static final int GGML_BF16 = 30;

    final int dim;
    final int layers;
    final int heads;
    final int kvHeads;
    final int headDim;
    final int ffnDim;
    final int vocab;
    final double eps;
    final double theta;
    final int ropeDims;
    final boolean tiedOutput;
    final Rope rope;
    final boolean qwen3;

    private final double[] tokenEmbedding; // [vocab][dim]
    private final double[][] attnNorm;     // [layer][dim]
    private final double[][] wq;           // [layer][heads*headDim][dim]
    private final double[][] wk;           // [layer][kvHeads*headDim][dim]
    private final double[][] wv;           // [layer][kvHeads*headDim][dim]
    private final double[][] wo;           // [layer][dim][heads*headDim]
    private final double[][] ffnNorm;      // [layer][dim]
    private final double[][] wGate;        // [layer][ffn][dim]
    private final double[][] wUp;          // [layer][ffn][dim]
    private final double[][] wDown;        // [layer][dim][ffn]
    private final double[][] qNorm;        // [layer][headDim], Qwen3 only
    private final double[][] kNorm;        // [layer][headDim], Qwen3 only
    private final double[] outputNorm;     // [dim]
    private final double[] output;         // [vocab][dim]

    /** Keys and values of every position so far: [layer][position * kvDim + i]. */
    private double[][] keyCache;
    private double[][] valueCache;
    private int length;

    /** The model as the GGUF file describes it, rope scaling (keys and rope_freqs.weight) included. */
    ReferenceLlama(GgufFile file) {
        this(file, null);
    }

    /** The GGUF file's weights with the given rope (null: the one the file describes). */
    ReferenceLlama(GgufFile file, Rope rope) {
        GgufMetadata m = file.metadata();
        String arch = m.getString("general.architecture");
        qwen3 = arch.equals("qwen3");
        String k = arch + ".";
        dim = m.getInt(k + "embedding_length");
        layers = m.getInt(k + "block_count");
        heads = m.getInt(k + "attention.head_count");
        kvHeads = m.optInt(k + "attention.head_count_kv").orElse(heads);
        headDim = m.optInt(k + "attention.key_length").orElse(dim / heads);
        ffnDim = m.getInt(k + "feed_forward_length");
        eps = m.optFloat(k + "attention.layer_norm_rms_epsilon").orElse(1e-5f);
        theta = m.optFloat(k + "rope.freq_base").orElse(10000f);
        ropeDims = m.optInt(k + "rope.dimension_count").orElse(headDim);
        this.rope = rope != null ? rope : Rope.fromGguf(file, theta, ropeDims);

        Tensor embd = file.tensor("token_embd.weight");
        vocab = (int) embd.shape()[1];
        tokenEmbedding = matrix(file, "token_embd.weight", dim, vocab);
        int qDim = heads * headDim;
        int kvDim = kvHeads * headDim;
        attnNorm = new double[layers][];
        wq = new double[layers][];
        wk = new double[layers][];
        wv = new double[layers][];
        wo = new double[layers][];
        ffnNorm = new double[layers][];
        wGate = new double[layers][];
        wUp = new double[layers][];
        wDown = new double[layers][];
        qNorm = new double[layers][];
        kNorm = new double[layers][];
        for (int l = 0; l < layers; l++) {
            String p = "blk." + l + ".";
            if (qwen3) {
                qNorm[l] = matrix(file, p + "attn_q_norm.weight", headDim);
                kNorm[l] = matrix(file, p + "attn_k_norm.weight", headDim);
            }
            attnNorm[l] = matrix(file, p + "attn_norm.weight", dim);
            wq[l] = matrix(file, p + "attn_q.weight", dim, qDim);
            wk[l] = matrix(file, p + "attn_k.weight", dim, kvDim);
            wv[l] = matrix(file, p + "attn_v.weight", dim, kvDim);
            wo[l] = matrix(file, p + "attn_output.weight", qDim, dim);
            ffnNorm[l] = matrix(file, p + "ffn_norm.weight", dim);
            wGate[l] = matrix(file, p + "ffn_gate.weight", dim, ffnDim);
            wUp[l] = matrix(file, p + "ffn_up.weight", dim, ffnDim);
            wDown[l] = matrix(file, p + "ffn_down.weight", ffnDim, dim);
        }
        outputNorm = matrix(file, "output_norm.weight", dim);
        tiedOutput = file.findTensor("output.weight").isEmpty();
        output = tiedOutput ? tokenEmbedding : matrix(file, "output.weight", dim, vocab);

        keyCache = new double[layers][16 * kvDim];
        valueCache = new double[layers][16 * kvDim];
    }

    /** Positions held in the KV cache. */
    int length() {
        return length;
    }

    /** Forgets every cached position. */
    void reset() {
        length = 0;
    }

    /**
     * Runs {@code token} at {@code position} (which must be the next position: the cache holds
     * exactly {@code position} earlier tokens) and returns the logits that follow it.
     */
    double[] forward(int token, int position) {
        if (position != length) {
            throw new IllegalArgumentException("next position is " + length + ", got " + position);
        }
        if (token < 0 || token >= vocab) {
            throw new IllegalArgumentException("token " + token + " outside vocabulary " + vocab);
        }
        int qDim = heads * headDim;
        int kvDim = kvHeads * headDim;
        ensureCapacity(position + 1);

        double[] x = new double[dim];
        System.arraycopy(tokenEmbedding, token * dim, x, 0, dim);

        for (int l = 0; l < layers; l++) {
            // Attention
            double[] xb = rmsNorm(x, attnNorm[l]);
            double[] q = matVec(wq[l], xb, qDim, dim);
            double[] k = matVec(wk[l], xb, kvDim, dim);
            double[] v = matVec(wv[l], xb, kvDim, dim);
            if (qwen3) {
                headNorm(q, heads, qNorm[l]);
                headNorm(k, kvHeads, kNorm[l]);
            }
            rope(q, heads, position);
            rope(k, kvHeads, position);
            System.arraycopy(k, 0, keyCache[l], position * kvDim, kvDim);
            System.arraycopy(v, 0, valueCache[l], position * kvDim, kvDim);

            double[] att = new double[qDim];
            int group = heads / kvHeads;
            double scale = 1.0 / Math.sqrt(headDim);
            double[] scores = new double[position + 1];
            for (int h = 0; h < heads; h++) {
                int kvh = h / group;
                double max = Double.NEGATIVE_INFINITY;
                for (int p = 0; p <= position; p++) {
                    double dot = 0;
                    for (int i = 0; i < headDim; i++) {
                        dot += q[h * headDim + i] * keyCache[l][p * kvDim + kvh * headDim + i];
                    }
                    scores[p] = dot * scale;
                    max = Math.max(max, scores[p]);
                }
                double sum = 0;
                for (int p = 0; p <= position; p++) {
                    scores[p] = Math.exp(scores[p] - max);
                    sum += scores[p];
                }
                for (int p = 0; p <= position; p++) {
                    double a = scores[p] / sum;
                    for (int i = 0; i < headDim; i++) {
                        att[h * headDim + i] += a * valueCache[l][p * kvDim + kvh * headDim + i];
                    }
                }
            }
            double[] proj = matVec(wo[l], att, dim, qDim);
            for (int i = 0; i < dim; i++) {
                x[i] += proj[i];
            }

            // Feed-forward (SwiGLU)
            xb = rmsNorm(x, ffnNorm[l]);
            double[] gate = matVec(wGate[l], xb, ffnDim, dim);
            double[] up = matVec(wUp[l], xb, ffnDim, dim);
            for (int i = 0; i < ffnDim; i++) {
                double g = gate[i];
                gate[i] = g / (1.0 + Math.exp(-g)) * up[i];
            }
            double[] down = matVec(wDown[l], gate, dim, ffnDim);
            for (int i = 0; i < dim; i++) {
                x[i] += down[i];
            }
        }

        double[] xn = rmsNorm(x, outputNorm);
        length = position + 1;
        return matVec(output, xn, vocab, dim);
    }

    private double[] rmsNorm(double[] x, double[] w) {
        double ss = 0;
        for (double v : x) {
            ss += v * v;
        }
        double inv = 1.0 / Math.sqrt(ss / x.length + eps);
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = x[i] * inv * w[i];
        }
        return out;
    }

    /** {@code y[o] = sum_i W[o*in + i] * x[i]} for a matrix of {@code out} rows of {@code in} values. */
    private static double[] matVec(double[] w, double[] x, int out, int in) {
        double[] y = new double[out];
        for (int o = 0; o < out; o++) {
            double acc = 0;
            int base = o * in;
            for (int i = 0; i < in; i++) {
                acc += w[base + i] * x[i];
            }
            y[o] = acc;
        }
        return y;
    }

    /** RMS-norms each head of {@code v} on its own, with the weight {@code w} of headDim values. */
    private void headNorm(double[] v, int headCount, double[] w) {
        for (int h = 0; h < headCount; h++) {
            double[] head = Arrays.copyOfRange(v, h * headDim, (h + 1) * headDim);
            System.arraycopy(rmsNorm(head, w), 0, v, h * headDim, headDim);
        }
    }

    /**
     * Rotates adjacent pairs (2i, 2i+1) of the first ropeDims elements of each head; for Qwen3,
     * NEOX pairs (i, i + ropeDims/2) instead, with the same frequency per pair index.
     */
    private void rope(double[] v, int headCount, int position) {
        for (int h = 0; h < headCount; h++) {
            for (int i = 0; i < ropeDims / 2; i++) {
                double angle = position * rope.frequencies[i];
                double c = Math.cos(angle) * rope.cosSinFactor;
                double s = Math.sin(angle) * rope.cosSinFactor;
                int a = qwen3 ? h * headDim + i : h * headDim + 2 * i;
                int b = qwen3 ? a + ropeDims / 2 : a + 1;
                double x0 = v[a];
                double x1 = v[b];
                v[a] = x0 * c - x1 * s;
                v[b] = x0 * s + x1 * c;
            }
        }
    }

    private void ensureCapacity(int positions) {
        int kvDim = kvHeads * headDim;
        if (keyCache[0].length < positions * kvDim) {
            int n = Math.max(positions, keyCache[0].length / kvDim * 2) * kvDim;
            for (int l = 0; l < layers; l++) {
                keyCache[l] = Arrays.copyOf(keyCache[l], n);
                valueCache[l] = Arrays.copyOf(valueCache[l], n);
            }
        }
    }

    /** A tensor as one flat run of doubles, after checking its shape (trailing 1s ignored). */
    private static double[] matrix(GgufFile file, String name, long... expectedShape) {
        Tensor t = file.tensor(name);
        long[] shape = t.shape();
        long elements = 1;
        for (long d : shape) {
            elements *= d;
        }
        long expectedElements = 1;
        for (long d : expectedShape) {
            expectedElements *= d;
        }
        for (int i = 0; i < Math.max(shape.length, expectedShape.length); i++) {
            long got = i < shape.length ? shape[i] : 1;
            long want = i < expectedShape.length ? expectedShape[i] : 1;
            if (got != want) {
                throw new IllegalArgumentException(name + " has shape " + Arrays.toString(shape)
                        + ", expected " + Arrays.toString(expectedShape));
            }
        }
        if (elements != expectedElements || elements > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(name + ": bad element count " + elements);
        }
        return dequantize(t.type().ggmlId(), t.data(), (int) elements);
    }

    /**
     * Dequantises {@code n} values stored from the start of {@code data} as one flat run (blocks are
     * consecutive regardless of rows, which also reads old files whose rows cross block boundaries).
     */
    static double[] dequantize(int ggmlType, MemorySegment data, int n) {
        double[] out = new double[n];
        switch (ggmlType) {
            case GGML_F32 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = data.get(F32, 4L * i);
                }
            }
            case GGML_F16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = halfToDouble(data.get(I16, 2L * i));
                }
            }
            case GGML_BF16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Float.intBitsToFloat((data.get(I16, 2L * i) & 0xFFFF) << 16);
                }
            }
            case GGML_Q8_0 -> {
                requireBlocks(n, 32);
                for (int b = 0; b < n / 32; b++) {
                    long off = 34L * b;
                    double d = halfToDouble(data.get(I16, off));
                    for (int j = 0; j < 32; j++) {
                        out[b * 32 + j] = d * data.get(ValueLayout.JAVA_BYTE, off + 2 + j);
                    }
                }
            }
            case GGML_Q4_0 -> {
                requireBlocks(n, 32);
                for (int b = 0; b < n / 32; b++) {
                    long off = 18L * b;
                    double d = halfToDouble(data.get(I16, off));
                    for (int j = 0; j < 16; j++) {
                        int q = data.get(ValueLayout.JAVA_BYTE, off + 2 + j) & 0xFF;
                        out[b * 32 + j] = d * ((q & 0x0F) - 8);
                        out[b * 32 + j + 16] = d * ((q >> 4) - 8);
                    }
                }
            }
            case GGML_Q4_K -> {
                // ggml's dequantize_row_q4_K: 4 chunks of 64 values, each from 32 bytes of nibbles
                // (low nibbles the first 32 values, high nibbles the next 32), with the 6-bit scales
                // and mins unpacked as get_scale_min_k4 does.
                requireBlocks(n, 256);
                for (int b = 0; b < n / 256; b++) {
                    long off = 144L * b;
                    double d = halfToDouble(data.get(I16, off));
                    double dmin = halfToDouble(data.get(I16, off + 2));
                    int[] s = new int[12];
                    for (int i = 0; i < 12; i++) {
                        s[i] = data.get(ValueLayout.JAVA_BYTE, off + 4 + i) & 0xFF;
                    }
                    int[] sc = new int[8];
                    int[] m = new int[8];
                    for (int j = 0; j < 8; j++) {
                        if (j < 4) {
                            sc[j] = s[j] & 63;
                            m[j] = s[j + 4] & 63;
                        } else {
                            sc[j] = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
                            m[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
                        }
                    }
                    for (int c = 0; c < 4; c++) {
                        for (int l = 0; l < 32; l++) {
                            int q = data.get(ValueLayout.JAVA_BYTE, off + 16 + 32 * c + l) & 0xFF;
                            out[b * 256 + 64 * c + l] = d * sc[2 * c] * (q & 0xF) - dmin * m[2 * c];
                            out[b * 256 + 64 * c + 32 + l] = d * sc[2 * c + 1] * (q >> 4) - dmin * m[2 * c + 1];
                        }
                    }
                }
            }
            case GGML_Q6_K -> {
                // ggml's dequantize_row_q6_K: two halves of 128 values, each reading 64 bytes of ql,
                // 32 of qh and 8 scales; four values per l from ql[l], ql[l + 32] and qh[l].
                requireBlocks(n, 256);
                for (int b = 0; b < n / 256; b++) {
                    long off = 210L * b;
                    double d = halfToDouble(data.get(I16, off + 208));
                    for (int half = 0; half < 2; half++) {
                        long ql = off + 64 * half;
                        long qh = off + 128 + 32 * half;
                        long sc = off + 192 + 8 * half;
                        int y = b * 256 + 128 * half;
                        for (int l = 0; l < 32; l++) {
                            int is = l / 16;
                            int lo1 = data.get(ValueLayout.JAVA_BYTE, ql + l) & 0xFF;
                            int lo2 = data.get(ValueLayout.JAVA_BYTE, ql + l + 32) & 0xFF;
                            int hi = data.get(ValueLayout.JAVA_BYTE, qh + l) & 0xFF;
                            int q1 = ((lo1 & 0xF) | ((hi & 3) << 4)) - 32;
                            int q2 = ((lo2 & 0xF) | (((hi >> 2) & 3) << 4)) - 32;
                            int q3 = ((lo1 >> 4) | (((hi >> 4) & 3) << 4)) - 32;
                            int q4 = ((lo2 >> 4) | (((hi >> 6) & 3) << 4)) - 32;
                            out[y + l] = d * data.get(ValueLayout.JAVA_BYTE, sc + is) * q1;
                            out[y + l + 32] = d * data.get(ValueLayout.JAVA_BYTE, sc + is + 2) * q2;
                            out[y + l + 64] = d * data.get(ValueLayout.JAVA_BYTE, sc + is + 4) * q3;
                            out[y + l + 96] = d * data.get(ValueLayout.JAVA_BYTE, sc + is + 6) * q4;
                        }
                    }
                }
            }
            default -> throw new IllegalArgumentException("reference does not support ggml type " + ggmlType);
        }
        return out;
    }

    private static void requireBlocks(int n, int blockSize) {
        if (n % blockSize != 0) {
            throw new IllegalArgumentException(n + " values are not a whole number of " + blockSize + "-value blocks");
        }
    }

    /** IEEE 754 binary16 to double, decoded by hand (sign, 5-bit exponent, 10-bit mantissa). */
    static double halfToDouble(short bits) {
        int h = bits & 0xFFFF;
        int sign = (h >>> 15) != 0 ? -1 : 1;
        int exp = (h >>> 10) & 0x1F;
        int mant = h & 0x3FF;
        if (exp == 0) {
            return sign * Math.scalb((double) mant, -24); // subnormal (or zero)
        }
        if (exp == 31) {
            return mant == 0 ? sign * Double.POSITIVE_INFINITY : Double.NaN;
        }
        return sign * Math.scalb(1024.0 + mant, exp - 25);
    }

    /**
     * Rotary frequencies per pair and the factor on cos and sin, written straight from the formulas
     * of transformers' modeling_rope_utils (and llama.cpp's rope_freqs divisors), independently of
     * Peregrine's RopeScaling.
     */
    record Rope(double[] frequencies, double cosSinFactor) {
        static double[] plainFrequencies(double theta, int dims) {
            double[] f = new double[dims / 2];
            for (int i = 0; i < f.length; i++) {
                f[i] = 1 / Math.pow(theta, 2.0 * i / dims);
            }
            return f;
        }

        static Rope plain(double theta, int dims) {
            return new Rope(plainFrequencies(theta, dims), 1);
        }

        static Rope linear(double theta, int dims, double factor) {
            double[] f = plainFrequencies(theta, dims);
            for (int i = 0; i < f.length; i++) {
                f[i] = f[i] / factor;
            }
            return new Rope(f, 1);
        }

        /** transformers' _compute_llama3_parameters. */
        static Rope llama3(double theta, int dims, double factor, double lowFreqFactor, double highFreqFactor,
                           double originalContext) {
            double[] f = plainFrequencies(theta, dims);
            for (int i = 0; i < f.length; i++) {
                double wavelen = 2 * Math.PI / f[i];
                if (wavelen > originalContext / lowFreqFactor) {
                    f[i] = f[i] / factor;
                } else if (!(wavelen < originalContext / highFreqFactor)) {
                    double smooth = (originalContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                    f[i] = (1 - smooth) * f[i] / factor + smooth * f[i];
                }
            }
            return new Rope(f, 1);
        }

        /** transformers' _compute_yarn_parameters (with truncation), attention factor on cos and sin. */
        static Rope yarn(double theta, int dims, double factor, double originalContext, double betaFast, double betaSlow,
                         double attentionFactor) {
            // The dimension at which a pair turns `rotations` times over the original context.
            java.util.function.DoubleUnaryOperator correction =
                    rotations -> dims * Math.log(originalContext / (rotations * 2 * Math.PI)) / (2 * Math.log(theta));
            double low = Math.max(Math.floor(correction.applyAsDouble(betaFast)), 0);
            double high = Math.min(Math.ceil(correction.applyAsDouble(betaSlow)), dims - 1);
            if (low == high) {
                high += 0.001;
            }
            double[] f = new double[dims / 2];
            for (int i = 0; i < f.length; i++) {
                double posFreq = Math.pow(theta, 2.0 * i / dims);
                double extrapolation = 1 / posFreq;
                double interpolation = 1 / (factor * posFreq);
                double ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
                double extrapolationWeight = 1 - ramp;
                f[i] = interpolation * (1 - extrapolationWeight) + extrapolation * extrapolationWeight;
            }
            return new Rope(f, attentionFactor);
        }

        /**
         * From the GGUF file as llama.cpp reads it: llama.rope.scaling.type (linear when only a
         * factor is given), factor, original_context_length, yarn betas and attention factor, and
         * rope_freqs.weight, which divides every frequency.
         */
        static Rope fromGguf(GgufFile file, double theta, int dims) {
            GgufMetadata m = file.metadata();
            String p = "llama.rope.scaling.";
            double factor = m.optFloat(p + "factor").orElse(1f);
            String type = m.optString(p + "type").orElse(m.optFloat(p + "factor").isPresent() ? "linear" : "none");
            Rope r = switch (type) {
                case "none" -> plain(theta, dims);
                case "linear" -> linear(theta, dims, factor);
                case "yarn" -> yarn(theta, dims, factor,
                        m.optInt(p + "original_context_length").orElse(m.getInt("llama.context_length")),
                        m.optFloat(p + "yarn_beta_fast").orElse(32f), m.optFloat(p + "yarn_beta_slow").orElse(1f),
                        m.optFloat(p + "yarn_attn_factor").map(Float::doubleValue).orElse(0.1 * Math.log(factor) + 1));
                default -> throw new IllegalArgumentException("reference does not support rope scaling " + type);
            };
            if (file.findTensor("rope_freqs.weight").isPresent()) {
                double[] divisors = matrix(file, "rope_freqs.weight", dims / 2);
                for (int i = 0; i < divisors.length; i++) {
                    r.frequencies[i] /= divisors[i];
                }
            }
            return r;
        }
    }
}
