package dev.peregrine.cuda;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * Finds a shared library by its soname: first through the dynamic linker's own search (ld cache,
 * LD_LIBRARY_PATH), then in the directories where drivers and CUDA toolkits are usually installed,
 * which a JVM started without LD_LIBRARY_PATH would otherwise miss.
 */
final class NativeLibrary {
    /** Where the NVIDIA driver puts libcuda.so.1 besides the linker's search path (containers mount /usr/local/nvidia). */
    static final List<Path> DRIVER_DIRS = List.of(Path.of("/usr/lib/x86_64-linux-gnu"), Path.of("/usr/lib64"),
            Path.of("/usr/local/nvidia/lib64"), Path.of("/usr/lib/wsl/lib"));

    /** A loaded library: its symbols and where it was found. */
    record Loaded(SymbolLookup symbols, String path) {
    }

    private NativeLibrary() {
    }

    /**
     * Loads the first of {@code names} that can be opened, each tried through the linker and then in
     * {@code dirs}. The library stays loaded for the life of {@code arena}.
     *
     * @throws CudaUnavailableException naming everything tried when none loads
     */
    @SuppressWarnings("restricted") // loading the CUDA libraries is what this class is for
    static Loaded load(List<String> names, List<Path> dirs, Arena arena) {
        List<String> failures = new ArrayList<>();
        for (String name : names) {
            try {
                return new Loaded(SymbolLookup.libraryLookup(name, arena), name);
            } catch (IllegalArgumentException e) {
                // not on the linker's search path: look in the usual directories
            }
            for (Path dir : dirs) {
                Path file = dir.resolve(name);
                if (Files.isRegularFile(file)) {
                    try {
                        return new Loaded(SymbolLookup.libraryLookup(file, arena), file.toString());
                    } catch (IllegalArgumentException e) {
                        failures.add(file + ": " + e.getMessage());
                    }
                }
            }
        }
        throw new CudaUnavailableException(String.join(" or ", names) + " not found (searched the dynamic linker's path"
                + " and " + dirs.stream().map(Path::toString).toList() + ")"
                + (failures.isEmpty() ? "" : "; could not open " + failures));
    }

    /**
     * Directories of installed CUDA toolkits, where libcublas lives: $CUDA_HOME and $CUDA_PATH, then
     * /usr/local/cuda and every /usr/local/cuda-* (newest name first), each as lib64 and targets/x86_64-linux/lib.
     */
    static List<Path> toolkitDirs() {
        List<Path> roots = new ArrayList<>();
        Stream.of(System.getenv("CUDA_HOME"), System.getenv("CUDA_PATH"))
                .filter(s -> s != null && !s.isBlank()).map(Path::of).forEach(roots::add);
        roots.add(Path.of("/usr/local/cuda"));
        try (Stream<Path> versions = Files.list(Path.of("/usr/local"))) {
            versions.filter(p -> p.getFileName().toString().startsWith("cuda-"))
                    .sorted((a, b) -> b.getFileName().toString().compareTo(a.getFileName().toString()))
                    .forEach(roots::add);
        } catch (IOException | SecurityException e) {
            // no /usr/local listing: the fixed roots above are all we have
        }
        List<Path> dirs = new ArrayList<>();
        for (Path root : roots) {
            dirs.add(root.resolve("lib64"));
            dirs.add(root.resolve("targets/x86_64-linux/lib"));
        }
        return dirs;
    }
}
