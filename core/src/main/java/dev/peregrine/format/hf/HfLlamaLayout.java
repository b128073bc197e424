package dev.peregrine.format.hf;

import dev.peregrine.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How a Llama checkpoint's tensors differ between Hugging Face and GGUF: names, dimension order,
 * and the row order of the query and key projections.
 *
 * <p>Rope rotates pairs of elements of each head. Hugging Face's Llama rotates element {@code i}
 * with element {@code i + headDim/2} ("rotate half"); ggml's Llama rotates {@code 2i} with
 * {@code 2i+1}. llama.cpp's converter ({@code LlamaModel.permute} in convert_hf_to_gguf.py:
 * {@code reshape(n_head, 2, headDim/2, in).swapaxes(1, 2)}) therefore reorders the rows of
 * q_proj and k_proj within each head: GGUF row {@code 2i + j} of a head is HF row
 * {@code j * headDim/2 + i} of that head ({@code j} = 0 or 1). The same matrix in the two layouts
 * computes the same attention.
 *
 * <p>Other matrices hold the same bytes in both: HF's {@code [out, in]} row-major is ggml's
 * {@code [in, out]}.
 */
public final class HfLlamaLayout {
    private static final Pattern LAYER_TENSOR = Pattern.compile("blk\\.(\\d+)\\.(\\w+)\\.(weight|bias)");

    /** How a family names its tensors in Hugging Face checkpoints, where that differs from Llama. */
    public enum Naming {
        /** Llama, Mistral, Qwen: input_layernorm and post_attention_layernorm (the norm before the MLP). */
        LLAMA,
        /**
         * Gemma 2/3: four norms per layer; post_attention_layernorm is the norm of the attention
         * output, pre_feedforward_layernorm the norm before the MLP.
         */
        GEMMA,
        /** Phi-3: qkv_proj and gate_up_proj, which GGUF keeps fused as attn_qkv and ffn_up. */
        FUSED
    }

    private HfLlamaLayout() {
    }

    /** The Hugging Face name of a GGUF Llama tensor ("blk.3.attn_q.weight" is "model.layers.3.self_attn.q_proj.weight"). */
    public static String hfName(String ggufName) {
        return hfName(ggufName, Naming.LLAMA);
    }

    /** The Hugging Face name of a GGUF tensor of a family that names its tensors {@code naming}'s way. */
    public static String hfName(String ggufName, Naming naming) {
        switch (ggufName) {
            case "token_embd.weight":
                return "model.embed_tokens.weight";
            case "output_norm.weight":
                return "model.norm.weight";
            case "output.weight":
                return "lm_head.weight";
            default:
                break;
        }
        Matcher m = LAYER_TENSOR.matcher(ggufName);
        if (m.matches()) {
            boolean gemma = naming == Naming.GEMMA;
            boolean fused = naming == Naming.FUSED;
            String part = switch (m.group(2)) {
                case "attn_norm" -> "input_layernorm";
                case "attn_q" -> "self_attn.q_proj";
                case "attn_k" -> "self_attn.k_proj";
                case "attn_v" -> "self_attn.v_proj";
                case "attn_qkv" -> fused ? "self_attn.qkv_proj" : null;
                case "attn_q_norm" -> "self_attn.q_norm";
                case "attn_k_norm" -> "self_attn.k_norm";
                case "attn_output" -> "self_attn.o_proj";
                case "post_attention_norm" -> gemma ? "post_attention_layernorm" : null;
                case "ffn_norm" -> gemma ? "pre_feedforward_layernorm" : "post_attention_layernorm";
                case "post_ffw_norm" -> gemma ? "post_feedforward_layernorm" : null;
                case "ffn_gate" -> "mlp.gate_proj";
                case "ffn_up" -> fused ? "mlp.gate_up_proj" : "mlp.up_proj";
                case "ffn_down" -> "mlp.down_proj";
                default -> null;
            };
            // Only the q/k/v projections have biases (Qwen2).
            boolean bias = m.group(3).equals("bias");
            if (part != null && (!bias || part.matches("self_attn\\.[qkv]_proj"))) {
                return "model.layers." + m.group(1) + "." + part + "." + m.group(3);
            }
        }
        throw new IllegalArgumentException("'" + ggufName + "' is not a Llama tensor with a Hugging Face name");
    }

    /** Whether the tensor's rows are in a different order in the two layouts (the q and k projections). */
    public static boolean isRopePermuted(String ggufName) {
        return ggufName.endsWith(".attn_q.weight") || ggufName.endsWith(".attn_k.weight");
    }

    /**
     * Whether the tensor is a vector whose elements belong to the rows of the q or k projection: a
     * per-head q or k norm weight (Qwen3, Gemma 3: headDim values that multiply each head; the
     * norm's sum of squares does not depend on the order) or a q or k bias (Qwen2: one value per
     * row). Its elements move exactly as the rows do.
     */
    public static boolean isRopePermutedVector(String ggufName) {
        return ggufName.endsWith(".attn_q_norm.weight") || ggufName.endsWith(".attn_k_norm.weight")
                || ggufName.endsWith(".attn_q.bias") || ggufName.endsWith(".attn_k.bias");
    }

    /**
     * The tensor in adjacent-pair (GGUF Llama) order when it is held in rotate-half order: q/k
     * projections by rows, q/k norm weights by elements; any other tensor unchanged. The first
     * {@code ropeDims} elements of each head are rotated (all of them but for partial rope, e.g.
     * Phi-4-mini's three quarters); the rest keep their places.
     */
    public static Tensor fromRotateHalf(String ggufName, Tensor t, int headDim, int ropeDims, Arena arena) {
        if (isRopePermuted(ggufName)) {
            return toGgufRowOrder(t, headDim, ropeDims, arena);
        }
        if (isRopePermutedVector(ggufName)) {
            return toGgufElementOrder(t, headDim, ropeDims, arena);
        }
        return t;
    }

    /**
     * A q or k norm weight or bias (whole heads of headDim values of F32, F16 or BF16) with its
     * elements in GGUF Llama order: element {@code g} is the rotate-half element {@link #hfRowOfGgufRow}(g).
     */
    public static Tensor toGgufElementOrder(Tensor hf, int headDim, int ropeDims, Arena arena) {
        checkHeadDim(headDim, ropeDims);
        long count = 1;
        for (long d : hf.shape()) {
            count *= d;
        }
        if (count % headDim != 0) {
            throw new IllegalArgumentException(hf.name() + " has " + count + " values, not whole heads of " + headDim);
        }
        long size = switch (hf.type()) {
            case F32 -> 4;
            case F16, BF16 -> 2;
            default -> throw new IllegalArgumentException(hf.name() + " is " + hf.type() + "; a norm weight or bias must be F32, F16 or BF16");
        };
        MemorySegment src = hf.data();
        MemorySegment dst = arena.allocate(count * size, 64);
        for (long g = 0; g < count; g++) {
            MemorySegment.copy(src, hfRowOfGgufRow(g, headDim, ropeDims) * size, dst, g * size, size);
        }
        return new Tensor(hf.name(), hf.type(), hf.shape(), dst);
    }

    /** The shape in HF order (outermost first) of a tensor whose ggml shape (row length first) is {@code ggmlShape}. */
    public static long[] hfShape(long[] ggmlShape) {
        long[] s = new long[ggmlShape.length];
        for (int i = 0; i < s.length; i++) {
            s[i] = ggmlShape[ggmlShape.length - 1 - i];
        }
        return s;
    }

    /** The GGUF row that HF row {@code hfRow} of a q or k projection becomes (the whole head rotated). */
    public static long ggufRowOfHfRow(long hfRow, int headDim) {
        return ggufRowOfHfRow(hfRow, headDim, headDim);
    }

    /** The GGUF row that HF row {@code hfRow} of a q or k projection becomes, the first {@code ropeDims} of a head rotated. */
    public static long ggufRowOfHfRow(long hfRow, int headDim, int ropeDims) {
        checkHeadDim(headDim, ropeDims);
        int half = ropeDims / 2;
        long head = hfRow / headDim;
        int within = (int) (hfRow % headDim);
        if (within >= ropeDims) {
            return hfRow; // not rotated: in place
        }
        int j = within / half;
        int i = within % half;
        return head * headDim + 2L * i + j;
    }

    /** The HF row that GGUF row {@code ggufRow} of a q or k projection came from: the inverse of {@link #ggufRowOfHfRow}. */
    public static long hfRowOfGgufRow(long ggufRow, int headDim) {
        return hfRowOfGgufRow(ggufRow, headDim, headDim);
    }

    /** The inverse of {@link #ggufRowOfHfRow(long, int, int)}. */
    public static long hfRowOfGgufRow(long ggufRow, int headDim, int ropeDims) {
        checkHeadDim(headDim, ropeDims);
        long head = ggufRow / headDim;
        int within = (int) (ggufRow % headDim);
        if (within >= ropeDims) {
            return ggufRow;
        }
        return head * headDim + (long) (within % 2) * (ropeDims / 2) + within / 2;
    }

    /**
     * A q or k projection in GGUF row order, copied into {@code arena}: the inverse of the
     * converter's permutation, applied to a tensor read from a Hugging Face checkpoint. A copy,
     * because the checkpoint's mapping is read-only and the rows move.
     *
     * @throws IllegalArgumentException if the rows are not a whole number of heads of {@code headDim}
     */
    public static Tensor toGgufRowOrder(Tensor hf, int headDim, Arena arena) {
        return toGgufRowOrder(hf, headDim, headDim, arena);
    }

    /** {@link #toGgufRowOrder(Tensor, int, Arena)} with the first {@code ropeDims} of each head rotated. */
    public static Tensor toGgufRowOrder(Tensor hf, int headDim, int ropeDims, Arena arena) {
        checkHeadDim(headDim, ropeDims);
        long rows = hf.rows();
        if (rows % headDim != 0) {
            throw new IllegalArgumentException(hf.name() + " has " + rows + " rows, not a whole number of heads of " + headDim);
        }
        long rowBytes = hf.rowBytes();
        MemorySegment src = hf.data();
        MemorySegment dst = arena.allocate(rows * rowBytes, 64);
        for (long g = 0; g < rows; g++) {
            MemorySegment.copy(src, hfRowOfGgufRow(g, headDim, ropeDims) * rowBytes, dst, g * rowBytes, rowBytes);
        }
        return new Tensor(hf.name(), hf.type(), hf.shape(), dst);
    }

    private static void checkHeadDim(int headDim, int ropeDims) {
        if (headDim <= 0 || headDim % 2 != 0) {
            throw new IllegalArgumentException("head size " + headDim + " must be positive and even");
        }
        if (ropeDims <= 0 || ropeDims % 2 != 0 || ropeDims > headDim) {
            throw new IllegalArgumentException("rotated elements " + ropeDims + " must be positive, even and at most the head size "
                    + headDim);
        }
    }
}
