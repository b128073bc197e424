package dev.peregrine.cuda;

import dev.peregrine.tensor.DType;

/**
 * Every kernel the backend launches: its module (native/&lt;module&gt;.cu), its entry point and its
 * parameters, one letter each: P a device pointer, L a 64-bit integer, I a 32-bit integer, F a
 * float. The letters are checked against the PTX when the modules load (and by a test without a
 * GPU), and every launch's arguments against the letters.
 */
enum Kernel {
    RMS_NORM("elementwise", "pg_rms_norm", "PPPPIF"),
    ROPE_ANGLES("elementwise", "pg_rope_angles", "PPPI"),
    ROPE_STORE_KV("elementwise", "pg_rope_store_kv", "PPPPPPPIIIII"),
    GATED_ACTIVATION("elementwise", "pg_gated_activation", "PPLI"),
    ADD_BIAS("elementwise", "pg_add_bias", "PPI"),
    SCALE("elementwise", "pg_scale", "PLF"),
    ADD("elementwise", "pg_add", "PPPL"),
    TO_F16("elementwise", "pg_to_f16", "PPL"),
    TO_BF16_SPLIT("elementwise", "pg_to_bf16_split", "PPL"),
    SPLIT_BLOCKS("weights", "pg_split_blocks", "PPPLI"),
    EMBED_F32("weights", "pg_embed_f32", "PPPPII"),
    EMBED_F16("weights", "pg_embed_f16", "PPPPII"),
    EMBED_BF16("weights", "pg_embed_bf16", "PPPPII"),
    EMBED_Q8_0("weights", "pg_embed_q8_0", "PPPPII"),
    EMBED_Q4_0("weights", "pg_embed_q4_0", "PPPPII"),
    DEQUANT_F16_Q8_0("weights", "pg_dequant_f16_q8_0", "PPPII"),
    DEQUANT_F16_Q4_0("weights", "pg_dequant_f16_q4_0", "PPPII"),
    MATVEC_F32("matvec", "pg_matvec_f32", "PPPPPPPPPPIIIIIII"),
    MATVEC_F16("matvec", "pg_matvec_f16", "PPPPPPPPPPIIIIIII"),
    MATVEC_BF16("matvec", "pg_matvec_bf16", "PPPPPPPPPPIIIIIII"),
    MATVEC_Q8_0("matvec", "pg_matvec_q8_0", "PPPPPPPPPPIIIIIII"),
    MATVEC_Q4_0("matvec", "pg_matvec_q4_0", "PPPPPPPPPPIIIIIII"),
    MATVEC_BATCH_F32("matvec", "pg_matvec_batch_f32", "PPPPPPPPPPIIIIIII"),
    MATVEC_BATCH_F16("matvec", "pg_matvec_batch_f16", "PPPPPPPPPPIIIIIII"),
    MATVEC_BATCH_BF16("matvec", "pg_matvec_batch_bf16", "PPPPPPPPPPIIIIIII"),
    MATVEC_BATCH_Q8_0("matvec", "pg_matvec_batch_q8_0", "PPPPPPPPPPIIIIIII"),
    MATVEC_BATCH_Q4_0("matvec", "pg_matvec_batch_q4_0", "PPPPPPPPPPIIIIIII"),
    ATTENTION("attention", "pg_attention", "PPPPPPPPPIIIIFIFIII"),
    ATTENTION_COMBINE("attention", "pg_attention_combine", "PPII"),
    ARGMAX("sampling", "pg_argmax", "PPPII"),
    TOP_K("sampling", "pg_top_k", "PPPIII");

    /** The modules, in the order they are loaded. */
    static final String[] MODULES = {"elementwise", "weights", "matvec", "attention", "sampling"};

    final String module;
    final String entry;
    final String parameters;

    Kernel(String module, String entry, String parameters) {
        this.module = module;
        this.entry = entry;
        this.parameters = parameters;
    }

    /** The parameters as PTX declares them: 8 for a 64-bit value, 4 for a 32-bit integer, F for a float. */
    String ptxSignature() {
        return parameters.replace('P', '8').replace('L', '8').replace('I', '4');
    }

    static Kernel embed(DType type) {
        return switch (type) {
            case F32 -> EMBED_F32;
            case F16 -> EMBED_F16;
            case BF16 -> EMBED_BF16;
            case Q8_0 -> EMBED_Q8_0;
            case Q4_0 -> EMBED_Q4_0;
            default -> throw CudaBackend.heldAsF16(type);
        };
    }

    /** The matrix-vector kernel for {@code tokens} token rows: the lean one-token kernel, or the batch kernel (2..8). */
    static Kernel matvec(DType type, int tokens) {
        boolean one = tokens == 1;
        return switch (type) {
            case F32 -> one ? MATVEC_F32 : MATVEC_BATCH_F32;
            case F16 -> one ? MATVEC_F16 : MATVEC_BATCH_F16;
            case BF16 -> one ? MATVEC_BF16 : MATVEC_BATCH_BF16;
            case Q8_0 -> one ? MATVEC_Q8_0 : MATVEC_BATCH_Q8_0;
            case Q4_0 -> one ? MATVEC_Q4_0 : MATVEC_BATCH_Q4_0;
            default -> throw CudaBackend.heldAsF16(type);
        };
    }
}
