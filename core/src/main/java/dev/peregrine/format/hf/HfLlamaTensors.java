package dev.peregrine.format.hf;

import dev.peregrine.ModelFormatException;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Dequant;
import dev.peregrine.tensor.Tensor;
import dev.peregrine.tensor.TensorSource;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Optional;

/**
 * A Hugging Face checkpoint of a Llama-family decoder seen under GGUF tensor names (see
 * {@link HfLlamaLayout}), so that the weight loader written for GGUF reads it. Tensors stay slices
 * of the read-only mapping, except Gemma's norm weights, which are copied into {@code arena} as
 * {@code 1 + w}, the value llama.cpp's converter stores and the graph multiplies by. The q/k rows
 * are still in Hugging Face's rotate-half order: the model loader reorders them. A tensor the
 * model needs but the checkpoint lacks is reported by its Hugging Face name.
 */
public final class HfLlamaTensors implements TensorSource {
    private static final String OUTPUT = "output.weight";
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final TensorSource checkpoint;
    private final HfLlamaLayout.Naming naming;
    private final boolean tiedEmbeddings;
    private final boolean normsOffsetByOne;
    private final Arena arena;

    /**
     * @param checkpoint       the checkpoint's tensors under their Hugging Face names ({@link HfCheckpoint})
     * @param naming           how the family names its tensors
     * @param tiedEmbeddings   config.json's tie_word_embeddings: the output projection is the token
     *                         embedding (a saved lm_head.weight is then ignored, as transformers does)
     * @param normsOffsetByOne whether the checkpoint stores w for norms that multiply by 1 + w (Gemma)
     * @param arena            owns the copies; the model's arena
     */
    public HfLlamaTensors(TensorSource checkpoint, HfLlamaLayout.Naming naming, boolean tiedEmbeddings,
                          boolean normsOffsetByOne, Arena arena) {
        this.checkpoint = checkpoint;
        this.naming = naming;
        this.tiedEmbeddings = tiedEmbeddings;
        this.normsOffsetByOne = normsOffsetByOne;
        this.arena = arena;
    }

    @Override
    public Path path() {
        return checkpoint.path();
    }

    @Override
    public String fileName(String ggufName) {
        try {
            return HfLlamaLayout.hfName(ggufName, naming);
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
            hfName = HfLlamaLayout.hfName(ggufName, naming);
        } catch (IllegalArgumentException noHfName) {
            return Optional.empty();
        }
        Optional<Tensor> found = checkpoint.findTensor(hfName);
        if (found.isEmpty()) {
            if (ggufName.equals(OUTPUT)) {
                // Without this, a missing lm_head would silently fall back to the embedding.
                throw new ModelFormatException(path(), -1, "missing tensor '" + hfName + "' (tie_word_embeddings is false)");
            }
            return Optional.empty();
        }
        Tensor hf = found.get();
        Tensor t = new Tensor(ggufName, hf.type(), hf.shape(), hf.data());
        return Optional.of(normsOffsetByOne && ggufName.endsWith("norm.weight") ? plusOne(t) : t);
    }

    /** A norm weight as F32 {@code 1 + w}, in the arena. */
    private Tensor plusOne(Tensor t) {
        float[] values = Dequant.toFloat(t);
        MemorySegment data = arena.allocate((long) values.length * Float.BYTES, 64);
        for (int i = 0; i < values.length; i++) {
            data.setAtIndex(F32, i, 1 + values[i]);
        }
        return new Tensor(t.name(), DType.F32, t.shape(), data);
    }
}
