package dev.peregrine.tensor;

import java.nio.file.Path;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * A file's tensors, remembering which of them a loader found, so that it can tell which it never
 * read: a tensor the model's graph has no use for (a bias, an expert, a layer of another
 * architecture) would otherwise be dropped without a word and the model run without it. Not
 * thread-safe: a model's weights are loaded on one thread.
 */
public final class TensorReads implements TensorSource {
    private final TensorSource source;
    private final List<String> names;
    private final Set<String> read = new HashSet<>();

    /**
     * @param source the file
     * @param names  every tensor name the file holds, in its order
     */
    public TensorReads(TensorSource source, Collection<String> names) {
        this.source = source;
        this.names = List.copyOf(names);
    }

    @Override
    public Path path() {
        return source.path();
    }

    @Override
    public String fileName(String name) {
        return source.fileName(name);
    }

    @Override
    public Optional<Tensor> findTensor(String name) {
        Optional<Tensor> found = source.findTensor(name);
        if (found.isPresent()) {
            read.add(name);
        }
        return found;
    }

    /** The file's tensors never found through this source so far, in the file's order. */
    public List<String> unread() {
        return names.stream().filter(n -> !read.contains(n)).toList();
    }

    /** Up to {@code shown} of {@code names} quoted, then how many more there are. */
    public static String summary(List<String> names, int shown) {
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < Math.min(shown, names.size()); i++) {
            s.append(i == 0 ? "" : ", ").append('\'').append(names.get(i)).append('\'');
        }
        if (names.size() > shown) {
            s.append(" and ").append(names.size() - shown).append(" more");
        }
        return s.toString();
    }
}
