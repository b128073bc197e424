package dev.peregrine.model;

import dev.peregrine.ModelFormatException;
import dev.peregrine.tensor.Tensor;
import dev.peregrine.tensor.TensorSource;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Optional;

/**
 * Phi-3's fused projections seen as the separate tensors the graph reads: {@code blk.N.attn_qkv}
 * (q rows, then k rows, then v rows) as {@code attn_q}, {@code attn_k} and {@code attn_v}, and the
 * fused {@code blk.N.ffn_up} (gate rows, then up rows: Phi-3's {@code gate_up_proj.chunk(2)}) as
 * {@code ffn_gate} and {@code ffn_up}. Each part is a slice of the same rows, so nothing is
 * copied and every weight type works. A file that stores the parts separately is read as it is.
 */
final class FusedTensors implements TensorSource {
    private static final String QKV = "attn_qkv.weight";
    private static final String UP = "ffn_up.weight";

    private final TensorSource file;
    private final LlamaConfig c;

    FusedTensors(TensorSource file, LlamaConfig c) {
        this.file = file;
        this.c = c;
    }

    @Override
    public Path path() {
        return file.path();
    }

    /** The fused tensor's name when the file has it, or has neither it nor the part (Phi-3 stores them fused). */
    @Override
    public String fileName(String name) {
        String fused = fusedName(name);
        boolean namesFused = fused != null && (file.findTensor(fused).isPresent() || file.findTensor(name).isEmpty());
        return namesFused ? file.fileName(fused) : file.fileName(name);
    }

    @Override
    public Optional<Tensor> findTensor(String name) {
        String fused = fusedName(name);
        Optional<Tensor> whole = fused == null ? Optional.empty() : file.findTensor(fused);
        if (whole.isEmpty()) {
            return file.findTensor(name);
        }
        Tensor t = whole.get();
        int q = c.queryDim();
        int kv = c.kvDim();
        int ffn = c.ffnDim();
        boolean qkv = fused.endsWith(QKV);
        long expectedRows = qkv ? (long) q + 2L * kv : 2L * ffn;
        if (t.rows() != expectedRows || t.dims() > 2 || !t.rowsAreBlockAligned()) {
            throw new ModelFormatException(path(), -1, "tensor '" + file.fileName(fused) + "' has shape "
                    + Arrays.toString(t.shape()) + ", expected " + expectedRows + " rows of " + c.dim()
                    + (qkv ? " (q, k and v)" : " (gate and up)"));
        }
        String part = name.substring(name.lastIndexOf('.', name.length() - ".weight".length() - 1) + 1);
        long first = switch (part) {
            case "attn_q.weight", "ffn_gate.weight" -> 0;
            case "attn_k.weight" -> q;
            case "attn_v.weight" -> q + kv;
            case "ffn_up.weight" -> ffn;
            default -> throw new IllegalStateException(name);
        };
        long rows = qkv ? (part.equals("attn_q.weight") ? q : kv) : ffn;
        return Optional.of(new Tensor(name, t.type(), new long[] {t.rowLength(), rows},
                t.data().asSlice(first * t.rowBytes(), rows * t.rowBytes())));
    }

    /**
     * The fused tensor that holds {@code name}, or null when it is stored on its own: q/k/v are
     * fused when the layer has attn_qkv, gate/up when it has no ffn_gate.
     */
    private String fusedName(String name) {
        if (!name.startsWith("blk.")) {
            return null;
        }
        String layer = name.substring(0, name.indexOf('.', 4) + 1);
        return switch (name.substring(layer.length())) {
            case "attn_q.weight", "attn_k.weight", "attn_v.weight" -> layer + QKV;
            case "ffn_gate.weight", "ffn_up.weight" -> file.findTensor(layer + "ffn_gate.weight").isPresent() ? null : layer + UP;
            default -> null;
        };
    }
}
