package dev.peregrine.synth;

import dev.peregrine.tensor.DType;
import java.util.List;
import java.util.Locale;

/**
 * The types a synthetic GGUF file stores its matrices as, under the llama.cpp file type
 * ({@code llama_ftype}, written as {@code general.file_type}) that names them: one type for every
 * matrix, as {@code llama-quantize --pure} writes, or one of llama.cpp's K-quant mixes (Q3_K_S/M/L,
 * Q4_K_S/M, Q5_K_S/M); either with the output projection's type set apart, as
 * {@code llama-quantize --output-tensor-type} does ({@link #withOutputType}). Norm weights are F32
 * whatever the file type.
 *
 * @param name       lower-case name, as {@code peregrine synth --dtype} takes it
 * @param llamaId    the {@code llama_ftype} id
 * @param base       the type of most matrices
 * @param mix        whether llama.cpp's rules for this file type choose other types for some
 *                   matrices ({@link #typeOf}); false for a single-type file
 * @param outputType the type of the output projection (the token embedding where it is also the
 *                   output), or null for the file type's own choice
 */
public record FileType(String name, int llamaId, DType base, boolean mix, DType outputType) {
    // llama_ftype ids of the mixes.
    private static final int Q3_K_S_ID = 11;
    private static final int Q3_K_M_ID = 12;
    private static final int Q3_K_L_ID = 13;
    private static final int Q4_K_S_ID = 14;
    private static final int Q4_K_M_ID = 15;
    private static final int Q5_K_S_ID = 16;
    private static final int Q5_K_M_ID = 17;

    public static final FileType Q3_K_S = mix("q3_k_s", Q3_K_S_ID, DType.Q3_K);
    public static final FileType Q3_K_M = mix("q3_k_m", Q3_K_M_ID, DType.Q3_K);
    public static final FileType Q3_K_L = mix("q3_k_l", Q3_K_L_ID, DType.Q3_K);
    public static final FileType Q4_K_S = mix("q4_k_s", Q4_K_S_ID, DType.Q4_K);
    /** The mix most published GGUF files use: Q4_K, with Q6_K for the output and half the attn_v and ffn_down matrices. */
    public static final FileType Q4_K_M = mix("q4_k_m", Q4_K_M_ID, DType.Q4_K);
    public static final FileType Q5_K_S = mix("q5_k_s", Q5_K_S_ID, DType.Q5_K);
    public static final FileType Q5_K_M = mix("q5_k_m", Q5_K_M_ID, DType.Q5_K);

    /** The mixes, by name. */
    public static final List<FileType> MIXES = List.of(Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M);

    /** Every matrix as {@code type}. */
    public static FileType of(DType type) {
        return new FileType(type.name().toLowerCase(Locale.ROOT), SyntheticModel.llamaFileType(type), type, false, null);
    }

    private static FileType mix(String name, int llamaId, DType base) {
        return new FileType(name, llamaId, base, true, null);
    }

    /**
     * This file type with the output projection (or the token embedding, where it is also the
     * output) stored as {@code type}, as {@code llama-quantize --output-tensor-type} writes it: e.g.
     * Q4_0 with a Q6_K output is what {@code llama-quantize} makes of Q4_0 without {@code --pure}.
     * As there, the type is taken as given: rows that are not whole blocks of it are refused when the
     * file is written.
     */
    public FileType withOutputType(DType type) {
        return new FileType(name, llamaId, base, mix, type);
    }

    /** The name with the output's type where it is set apart: "q4_0" or "q4_0, output q6_k". */
    public String describe() {
        return outputType == null ? name : name + ", output " + outputType.name().toLowerCase(Locale.ROOT);
    }

    /**
     * The type of matrix {@code tensor} (its GGUF name, rows of {@code rowLength} values) in a Llama
     * model of {@code layers} layers, as llama.cpp's
     * llama_tensor_get_type chooses it for this file type (a dense, non-Falcon model, no importance
     * matrix): the output projection (or the token embedding when it is also the output) as Q6_K, or
     * Q8_0 where its rows are not whole super-blocks; attn_v, ffn_down and attn_output by the mix's
     * rules; then its fallback for rows that are not whole blocks (SmolLM2's width 576, Qwen2.5-0.5B's
     * 896): Q3_K to Q4_0, Q4_K to Q5_0, Q5_K to Q5_1, Q6_K to Q8_0, and F16 where even those do not
     * fit. A single-type file has none of these, as {@code llama-quantize --pure} without fallbacks.
     * An {@link #outputType} set apart replaces the output's type in either, without a fallback.
     */
    public DType typeOf(String tensor, long rowLength, int layers, boolean tiedEmbeddings) {
        boolean output = tensor.equals("output.weight") || tensor.equals("token_embd.weight") && tiedEmbeddings;
        if (output && outputType != null) {
            return outputType;
        }
        if (!mix) {
            return base;
        }
        DType type = base;
        if (output) {
            type = rowLength % base.blockSize() != 0 ? DType.Q8_0 : DType.Q6_K;
        } else if (tensor.startsWith("blk.")) {
            int layer = layer(tensor);
            if (tensor.endsWith(".attn_v.weight")) {
                type = switch (llamaId) {
                    case Q3_K_M_ID -> layer < 2 ? DType.Q5_K : DType.Q4_K;
                    case Q3_K_L_ID -> DType.Q5_K;
                    case Q4_K_M_ID, Q5_K_M_ID -> useMoreBits(layer, layers) ? DType.Q6_K : base;
                    case Q4_K_S_ID -> layer < 4 ? DType.Q5_K : base;
                    default -> base;
                };
            } else if (tensor.endsWith(".ffn_down.weight")) {
                type = switch (llamaId) {
                    case Q3_K_M_ID -> layer < layers / 16 ? DType.Q5_K : DType.Q4_K;
                    case Q3_K_L_ID -> DType.Q5_K;
                    case Q4_K_M_ID, Q5_K_M_ID -> useMoreBits(layer, layers) ? DType.Q6_K : base;
                    case Q4_K_S_ID -> layer < layers / 8 ? DType.Q5_K : base;
                    default -> base;
                };
            } else if (tensor.endsWith(".attn_output.weight")) {
                type = switch (llamaId) {
                    case Q3_K_M_ID -> DType.Q4_K;
                    case Q3_K_L_ID -> DType.Q5_K;
                    default -> base;
                };
            }
        }
        return fallback(type, rowLength);
    }

    /** llama.cpp's tensor_type_fallback: a type whose blocks fit rows of {@code rowLength} values. */
    private static DType fallback(DType type, long rowLength) {
        if (rowLength % type.blockSize() == 0) {
            return type;
        }
        DType smaller = switch (type) {
            case Q2_K, Q3_K -> DType.Q4_0;
            case Q4_K -> DType.Q5_0;
            case Q5_K -> DType.Q5_1;
            case Q6_K -> DType.Q8_0;
            case IQ4_XS -> DType.IQ4_NL;
            default -> DType.F16;
        };
        return rowLength % smaller.blockSize() == 0 ? smaller : DType.F16;
    }

    /** llama.cpp's use_more_bits: the first and last eighth of the layers, and every third layer between. */
    static boolean useMoreBits(int layer, int layers) {
        return layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;
    }

    /** The layer of a tensor named "blk.N.…". */
    private static int layer(String tensor) {
        return Integer.parseInt(tensor.substring("blk.".length(), tensor.indexOf('.', "blk.".length())));
    }
}
