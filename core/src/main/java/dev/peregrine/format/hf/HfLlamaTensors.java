package dev.peregrine.format.hf;

import dev.peregrine.ModelFormatException;
import dev.peregrine.tensor.Tensor;
import dev.peregrine.tensor.TensorSource;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Optional;

/**
 * A Hugging Face Llama checkpoint seen under GGUF tensor names and in GGUF layout, so that the
 * weight loader written for GGUF reads it unchanged (see {@link HfLlamaLayout}). Tensors stay
 * slices of the read-only mapping, except the q and k projections, whose rows are put back in
 * GGUF's order in a copy in {@code arena} (and Qwen3's q/k norm weights, whose elements move with them). A tensor a Llama checkpoint must hold but this one
 * lacks is reported by its Hugging Face name.
 */
public final class HfLlamaTensors implements TensorSource {
    private static final String OUTPUT = "output.weight";

    private final HfCheckpoint checkpoint;
    private final int headDim;
    private final boolean tiedEmbeddings;
    private final Arena arena;

    /**
     * @param tiedEmbeddings config.json's tie_word_embeddings: the output projection is the token
     *                       embedding (a saved lm_head.weight is then ignored, as transformers does)
     * @param arena          owns the reordered q/k copies; the model's arena
     */
    public HfLlamaTensors(HfCheckpoint checkpoint, int headDim, boolean tiedEmbeddings, Arena arena) {
        this.checkpoint = checkpoint;
        this.headDim = headDim;
        this.tiedEmbeddings = tiedEmbeddings;
        this.arena = arena;
    }

    @Override
    public Path path() {
        return checkpoint.path();
    }

    @Override
    public String fileName(String ggufName) {
        try {
            return HfLlamaLayout.hfName(ggufName);
        } catch (IllegalArgumentException noHfName) {
            return ggufName;
        }
    }

    @Override
    public Optional<Tensor> findTensor(String ggufName) {
        if (ggufName.equals(OUTPUT) && tiedEmbeddings) {
            return Optional.empty(); // the loader then uses the token embedding
        }
        String hfName;
        try {
            hfName = HfLlamaLayout.hfName(ggufName);
        } catch (IllegalArgumentException noHfName) {
            return Optional.empty();
        }
        Optional<Tensor> found = checkpoint.findTensor(hfName);
        if (found.isEmpty()) {
            if (ggufName.equals(OUTPUT)) {
                // Without this, a missing lm_head would silently fall back to the embedding.
                throw new ModelFormatException(path(), -1, "missing tensor '" + hfName + "' (tie_word_embeddings is false)");
            }
            throw new ModelFormatException(path(), -1, "missing required tensor '" + hfName + "'");
        }
        Tensor hf = found.get();
        Tensor t = new Tensor(ggufName, hf.type(), hf.shape(), hf.data());
        if (HfLlamaLayout.isRopePermuted(ggufName) || HfLlamaLayout.isRopePermutedVector(ggufName)) {
            try {
                t = HfLlamaLayout.fromRotateHalf(ggufName, t, headDim, arena);
            } catch (IllegalArgumentException e) {
                throw new ModelFormatException(path(), -1, "tensor '" + hfName + "': " + e.getMessage());
            }
        }
        return Optional.of(t);
    }
}
