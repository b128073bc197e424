package dev.peregrine.model;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.hf.HfLlamaLayout;
import dev.peregrine.tensor.Tensor;
import dev.peregrine.tensor.TensorSource;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Tensors whose q/k rows are in rotate-half order (a Hugging Face checkpoint, or a GGUF file of an
 * architecture llama.cpp ropes NEOX-style: {@link Family#ropeRotateHalf}), seen in the
 * adjacent-pair layout the rope kernels use.
 *
 * <p>Why a permutation at load rather than a second rope mode: rotating element {@code i} with
 * {@code i + headDim/2} of a head is the adjacent-pair rotation of the same head with its
 * elements reordered ({@link HfLlamaLayout}); reordering the rows of Wq and Wk reorders q and k the
 * same way, and attention's dot products do not depend on the order of a head's elements. The
 * per-head q/k norm sits between the projection and rope, so its weight vector is reordered
 * identically (its sum of squares is order-free), and so are q/k biases. This is exactly what the Hugging Face loader
 * already does for every Llama checkpoint, so both formats reach the backend in the same layout,
 * and no backend (CPU, CUDA) needs a new kernel. The copies cost the q/k projections once, in
 * {@code arena}; quantised rows move whole, so every type works. With partial rope (the first
 * {@code ropeDims} elements of a head rotated, as Phi-4-mini's) only those are reordered, and the
 * rope kernels rotate only those.
 */
final class RotateHalfTensors implements TensorSource {
    private final TensorSource file;
    private final int headDim;
    private final int ropeDims;
    private final Arena arena;

    RotateHalfTensors(TensorSource file, int headDim, int ropeDims, Arena arena) {
        this.file = file;
        this.headDim = headDim;
        this.ropeDims = ropeDims;
        this.arena = arena;
    }

    @Override
    public Path path() {
        return file.path();
    }

    @Override
    public String fileName(String name) {
        return file.fileName(name);
    }

    @Override
    public Optional<Tensor> findTensor(String name) {
        return file.findTensor(name).map(t -> {
            try {
                return HfLlamaLayout.fromRotateHalf(name, t, headDim, ropeDims, arena);
            } catch (IllegalArgumentException e) {
                throw new ModelFormatException(path(), -1, "tensor '" + name + "': " + e.getMessage());
            }
        });
    }
}
