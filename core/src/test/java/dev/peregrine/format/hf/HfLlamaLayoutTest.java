package dev.peregrine.format.hf;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

class HfLlamaLayoutTest {

    /** GGUF row g of a q/k projection holds HF row ggufOrder[g]. */
    private static long[] ggufOrder(int rows, int headDim) {
        long[] order = new long[rows];
        for (int g = 0; g < rows; g++) {
            order[g] = HfLlamaLayout.hfRowOfGgufRow(g, headDim);
        }
        return order;
    }

    /**
     * Worked by hand from llama.cpp's {@code permute}: {@code w.reshape(n_head, 2, hd/2, in).swapaxes(1, 2)}
     * puts HF row (head, a, b) = head*hd + a*hd/2 + b at GGUF row head*hd + 2b + a. For hd = 4:
     * GGUF rows 0,1,2,3 of a head are HF rows 0,2,1,3; for hd = 6: 0,3,1,4,2,5; for hd = 8:
     * 0,4,1,5,2,6,3,7 — each GGUF pair (2i, 2i+1) is HF's rotate-half pair (i, i + hd/2).
     */
    @Test
    void ggufRowsInterleaveTheHalvesOfEachHfHead() {
        assertThat(ggufOrder(8, 4)).containsExactly(0, 2, 1, 3, 4, 6, 5, 7);
        assertThat(ggufOrder(12, 6)).containsExactly(0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11);
        assertThat(ggufOrder(8, 8)).containsExactly(0, 4, 1, 5, 2, 6, 3, 7);
    }

    @Test
    void theTwoMappingsAreInverse() {
        for (int headDim : new int[] {2, 4, 6, 64, 128}) {
            for (long r = 0; r < 3L * headDim; r++) {
                assertThat(HfLlamaLayout.hfRowOfGgufRow(HfLlamaLayout.ggufRowOfHfRow(r, headDim), headDim)).isEqualTo(r);
                assertThat(HfLlamaLayout.ggufRowOfHfRow(HfLlamaLayout.hfRowOfGgufRow(r, headDim), headDim)).isEqualTo(r);
            }
        }
        assertThatThrownBy(() -> HfLlamaLayout.ggufRowOfHfRow(0, 5)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void namesAndShapes() {
        assertThat(HfLlamaLayout.hfName("token_embd.weight")).isEqualTo("model.embed_tokens.weight");
        assertThat(HfLlamaLayout.hfName("output_norm.weight")).isEqualTo("model.norm.weight");
        assertThat(HfLlamaLayout.hfName("output.weight")).isEqualTo("lm_head.weight");
        assertThat(HfLlamaLayout.hfName("blk.0.attn_norm.weight")).isEqualTo("model.layers.0.input_layernorm.weight");
        assertThat(HfLlamaLayout.hfName("blk.12.attn_q.weight")).isEqualTo("model.layers.12.self_attn.q_proj.weight");
        assertThat(HfLlamaLayout.hfName("blk.1.attn_k.weight")).isEqualTo("model.layers.1.self_attn.k_proj.weight");
        assertThat(HfLlamaLayout.hfName("blk.1.attn_v.weight")).isEqualTo("model.layers.1.self_attn.v_proj.weight");
        assertThat(HfLlamaLayout.hfName("blk.1.attn_output.weight")).isEqualTo("model.layers.1.self_attn.o_proj.weight");
        assertThat(HfLlamaLayout.hfName("blk.1.ffn_norm.weight")).isEqualTo("model.layers.1.post_attention_layernorm.weight");
        assertThat(HfLlamaLayout.hfName("blk.1.ffn_gate.weight")).isEqualTo("model.layers.1.mlp.gate_proj.weight");
        assertThat(HfLlamaLayout.hfName("blk.1.ffn_up.weight")).isEqualTo("model.layers.1.mlp.up_proj.weight");
        assertThat(HfLlamaLayout.hfName("blk.1.ffn_down.weight")).isEqualTo("model.layers.1.mlp.down_proj.weight");
        assertThatThrownBy(() -> HfLlamaLayout.hfName("rope_freqs.weight")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("rope_freqs.weight");

        assertThat(HfLlamaLayout.hfShape(new long[] {2048, 512})).containsExactly(512, 2048);
        assertThat(HfLlamaLayout.hfShape(new long[] {2048})).containsExactly(2048);
        assertThat(HfLlamaLayout.isRopePermuted("blk.3.attn_q.weight")).isTrue();
        assertThat(HfLlamaLayout.isRopePermuted("blk.3.attn_k.weight")).isTrue();
        assertThat(HfLlamaLayout.isRopePermuted("blk.3.attn_v.weight")).isFalse();
    }

    /**
     * The writer's permutation (GGUF rows to HF order, as llama.cpp's converter does it backwards)
     * followed by the reader's copy back to GGUF order is the identity, for every element type
     * (rows are moved as bytes) and with grouped heads.
     */
    @Test
    void toGgufRowOrderUndoesTheConvertersPermutation() {
        int headDim = 6;
        int heads = 3;
        int rowLength = 5;
        int rows = heads * headDim;
        for (DType type : new DType[] {DType.F32, DType.F16, DType.BF16}) {
            int rowBytes = (int) type.bytesFor(rowLength);
            byte[] gguf = new byte[rows * rowBytes];
            for (int i = 0; i < gguf.length; i++) {
                gguf[i] = (byte) (i * 7 + i / rowBytes);
            }
            byte[] hf = new byte[gguf.length];
            for (int h = 0; h < rows; h++) {
                int g = (int) HfLlamaLayout.ggufRowOfHfRow(h, headDim);
                System.arraycopy(gguf, g * rowBytes, hf, h * rowBytes, rowBytes);
            }
            try (Arena arena = Arena.ofConfined()) {
                Tensor t = new Tensor("q", type, new long[] {rowLength, rows}, MemorySegment.ofArray(hf).asReadOnly());
                Tensor back = HfLlamaLayout.toGgufRowOrder(t, headDim, arena);
                assertThat(back.data().toArray(ValueLayout.JAVA_BYTE)).as("%s", type).containsExactly(gguf);
                assertThat(back.shape()).containsExactly(rowLength, rows);
                assertThat(back.type()).isEqualTo(type);
            }
        }
        try (Arena arena = Arena.ofConfined()) {
            Tensor odd = new Tensor("q", DType.F32, new long[] {4, 10}, MemorySegment.ofArray(new float[40]));
            assertThatThrownBy(() -> HfLlamaLayout.toGgufRowOrder(odd, 4, arena)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("10 rows");
        }
    }
}
