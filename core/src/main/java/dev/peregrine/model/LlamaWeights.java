package dev.peregrine.model;

import dev.peregrine.ModelFormatException;
import dev.peregrine.spi.Backend;
import dev.peregrine.spi.Weight;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Dequant;
import dev.peregrine.tensor.Tensor;
import dev.peregrine.tensor.TensorSource;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * The weights of a Llama-family decoder, as the backend holds them, under GGUF tensor names (a
 * Hugging Face checkpoint is seen through {@code HfLlamaTensors}, which maps its names and layout).
 *
 * @param ropeDivisors what each rope frequency is divided by, from a GGUF file's rope_freqs.weight
 *                     (llama.cpp's converter stores Llama 3.1's scaling there); null when absent
 */
public record LlamaWeights(Weight tokenEmbedding, Layer[] layers, Weight outputNorm, Weight output, float[] ropeDivisors) {
    public static final String ROPE_FREQS = "rope_freqs.weight";
    static final String LONG_ROPE_FACTORS = "rope_factors_long.weight";
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /**
     * One transformer block. The family's optional tensors are null when it has none.
     *
     * @param qNorm             per-head RMS-norm weight of q (headDim values): Qwen3, Gemma 3
     * @param kNorm             the same for k
     * @param qBias             bias of the q projection (Qwen2), likewise kBias and vBias
     * @param postAttentionNorm norm of the attention output before the residual add (Gemma)
     * @param postFfnNorm       norm of the feed-forward output before the residual add (Gemma)
     */
    public record Layer(Weight attentionNorm, Weight wq, Weight wk, Weight wv, Weight wo,
                        Weight ffnNorm, Weight gate, Weight up, Weight down, Weight qNorm, Weight kNorm,
                        Weight qBias, Weight kBias, Weight vBias, Weight postAttentionNorm, Weight postFfnNorm) {
    }

    /** Checks every tensor's shape against the config, then hands it to the backend. */
    public static LlamaWeights load(TensorSource file, LlamaConfig c, Backend backend) {
        float[] ropeDivisors = ropeDivisors(file, c); // first: a bad one fails before anything is uploaded
        if (file.findTensor(LONG_ROPE_FACTORS).isPresent()) {
            // Phi-3's 128k models: llama.cpp's converter stores LongRoPE's per-pair factors here.
            throw new ModelFormatException(file.path(), -1, "holds " + LONG_ROPE_FACTORS
                    + ": LongRoPE scaling (Phi-3 128k) is not supported");
        }
        Loader l = new Loader(file, backend);
        Family f = c.family();
        Weight embedding = l.get("token_embd.weight", c.dim(), c.vocabularySize());
        Layer[] layers = new Layer[c.layers()];
        for (int i = 0; i < layers.length; i++) {
            String p = "blk." + i + ".";
            layers[i] = new Layer(
                    l.get(p + "attn_norm.weight", c.dim()),
                    l.get(p + "attn_q.weight", c.dim(), c.queryDim()),
                    l.get(p + "attn_k.weight", c.dim(), c.kvDim()),
                    l.get(p + "attn_v.weight", c.dim(), c.kvDim()),
                    l.get(p + "attn_output.weight", c.queryDim(), c.dim()),
                    l.get(p + "ffn_norm.weight", c.dim()),
                    l.get(p + "ffn_gate.weight", c.dim(), c.ffnDim()),
                    l.get(p + "ffn_up.weight", c.dim(), c.ffnDim()),
                    l.get(p + "ffn_down.weight", c.ffnDim(), c.dim()),
                    // Required when the family has them: a missing one fails naming the tensor.
                    f.qkNorm() ? l.get(p + "attn_q_norm.weight", c.headDim()) : null,
                    f.qkNorm() ? l.get(p + "attn_k_norm.weight", c.headDim()) : null,
                    f.qkvBias() ? l.get(p + "attn_q.bias", c.queryDim()) : null,
                    f.qkvBias() ? l.get(p + "attn_k.bias", c.kvDim()) : null,
                    f.qkvBias() ? l.get(p + "attn_v.bias", c.kvDim()) : null,
                    f.scaledEmbeddingAndPostNorms() ? l.get(p + "post_attention_norm.weight", c.dim()) : null,
                    f.scaledEmbeddingAndPostNorms() ? l.get(p + "post_ffw_norm.weight", c.dim()) : null);
        }
        Weight outputNorm = l.get("output_norm.weight", c.dim());
        // Models with tied embeddings have no output.weight and reuse the embedding table.
        Weight output = file.findTensor("output.weight").isPresent()
                ? l.get("output.weight", c.dim(), c.vocabularySize())
                : embedding;
        return new LlamaWeights(embedding, layers, outputNorm, output, ropeDivisors);
    }

    /** rope_freqs.weight, checked as llama.cpp does (F32, one value per rotated pair), or null. */
    private static float[] ropeDivisors(TensorSource file, LlamaConfig c) {
        Tensor t = file.findTensor(ROPE_FREQS).orElse(null);
        if (t == null) {
            return null;
        }
        int pairs = c.ropeDimensions() / 2;
        long[] shape = t.shape();
        long count = Arrays.stream(shape).reduce(1, Math::multiplyExact);
        if (t.type() != DType.F32 || shape[0] != pairs || count != pairs) {
            throw new ModelFormatException(file.path(), -1, "tensor '" + ROPE_FREQS + "' is " + t.type() + " of shape "
                    + Arrays.toString(shape) + ", expected F32 of shape [" + pairs + "] (one divisor per rotated pair)");
        }
        float[] d = new float[pairs];
        for (int i = 0; i < pairs; i++) {
            d[i] = t.data().get(F32, 4L * i);
            if (!(d[i] > 0) || !Float.isFinite(d[i])) {
                throw new ModelFormatException(file.path(), -1, "tensor '" + ROPE_FREQS + "' holds " + d[i]
                        + " at " + i + "; rope frequency divisors must be positive");
            }
        }
        return d;
    }

    private record Loader(TensorSource file, Backend backend) {
        Weight get(String name, long... expectedShape) {
            Tensor t = file.tensor(name);
            long[] shape = t.shape();
            long[] padded = Arrays.copyOf(shape, Math.max(shape.length, expectedShape.length));
            for (int i = shape.length; i < padded.length; i++) {
                padded[i] = 1;
            }
            long[] expected = Arrays.copyOf(expectedShape, padded.length);
            for (int i = expectedShape.length; i < expected.length; i++) {
                expected[i] = 1;
            }
            if (!Arrays.equals(padded, expected)) {
                throw new ModelFormatException(file.path(), -1, "tensor '" + file.fileName(name) + "' has shape "
                        + Arrays.toString(shape) + ", expected " + Arrays.toString(expectedShape) + " (row length first)");
            }
            if (expectedShape.length == 1) {
                requireFinite(name, t);
            }
            return backend.upload(t);
        }

        /**
         * Norm weights and biases are small, so they are checked whole: one NaN or infinity there
         * (a corrupt file, or a tensor offset pointing into other data) would turn every logit
         * into NaN. Matrices are too large to scan at load; the CPU backend checks their block
         * scales where it repacks them.
         */
        private void requireFinite(String name, Tensor t) {
            // No index in the message: rotate-half models' q/k norms are seen here permuted.
            for (float v : Dequant.toFloat(t)) {
                if (!Float.isFinite(v)) {
                    throw new ModelFormatException(file.path(), -1, "tensor '" + file.fileName(name) + "' holds " + v
                            + ": a norm weight or bias must be finite (is the file corrupt?)");
                }
            }
        }
    }
}
