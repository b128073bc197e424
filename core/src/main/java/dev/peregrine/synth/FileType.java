package dev.peregrine.synth;

import dev.peregrine.tensor.DType;
import java.util.Locale;

/**
 * The types a synthetic GGUF file stores its matrices as, under the llama.cpp file type
 * ({@code llama_ftype}, written as {@code general.file_type}) that names them: one type for every
 * matrix, as {@code llama-quantize --pure} writes, or llama.cpp's Q4_K_M and Q5_K_M mixes. Norm
 * weights are F32 whatever the file type.
 *
 * @param name     lower-case name, as {@code peregrine synth --dtype} takes it
 * @param llamaId  the {@code llama_ftype} id
 * @param base     the type of most matrices
 * @param moreBits the type of the matrices a K-quant "_M" mix gives more bits ({@link #typeOf});
 *                 {@code base} again for a single-type file
 */
public record FileType(String name, int llamaId, DType base, DType moreBits) {
    /**
     * llama.cpp's Q4_K_M for a Llama model: Q6_K for the output projection (the token embedding
     * when tied) and for attn_v and ffn_down in the layers {@link #useMoreBits} picks, Q4_K for the
     * rest.
     */
    public static final FileType Q4_K_M = new FileType("q4_k_m", 15, DType.Q4_K, DType.Q6_K);

    /** llama.cpp's Q5_K_M for a Llama model: as {@link #Q4_K_M}, with Q5_K for the rest. */
    public static final FileType Q5_K_M = new FileType("q5_k_m", 17, DType.Q5_K, DType.Q6_K);

    /** The mixes, by name. */
    public static final java.util.List<FileType> MIXES = java.util.List.of(Q4_K_M, Q5_K_M);

    /** Every matrix as {@code type}. */
    public static FileType of(DType type) {
        return new FileType(type.name().toLowerCase(Locale.ROOT), SyntheticModel.llamaFileType(type), type, type);
    }

    /**
     * The type of matrix {@code tensor} (its GGUF name, rows of {@code rowLength} values) in a model
     * of {@code layers} layers, following llama.cpp's llama_tensor_get_type for the Q4_K_M and
     * Q5_K_M mixes on a Llama model, including its fallback for rows that are not whole 256-value
     * super-blocks (models of width 576 or 896, such as SmolLM2 and Qwen2.5-0.5B): Q4_K becomes
     * Q5_0, Q5_K becomes Q5_1 and Q6_K becomes Q8_0. A single-type file has no fallback, as
     * {@code llama-quantize --pure}.
     */
    public DType typeOf(String tensor, long rowLength, int layers, boolean tiedEmbeddings) {
        boolean more = tensor.equals("output.weight")
                || tensor.equals("token_embd.weight") && tiedEmbeddings
                || (tensor.endsWith(".attn_v.weight") || tensor.endsWith(".ffn_down.weight"))
                        && useMoreBits(layer(tensor), layers);
        DType type = more ? moreBits : base;
        if (isMix() && rowLength % type.blockSize() != 0) {
            return switch (type) {
                case Q4_K -> DType.Q5_0;
                case Q5_K -> DType.Q5_1;
                case Q6_K -> DType.Q8_0;
                default -> type;
            };
        }
        return type;
    }

    /** Whether this is a mix of types rather than one type for every matrix. */
    public boolean isMix() {
        return base != moreBits;
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
