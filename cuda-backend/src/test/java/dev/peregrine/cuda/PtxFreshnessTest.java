package dev.peregrine.cuda;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The shipped PTX was built from the kernel sources as they are now: the hash on each PTX file's
 * first line must equal the hash native/build-ptx.sh computes (the .cu, every *.cuh sorted by
 * name, then build-ptx.sh itself). Git keeps no file times, so the check is by content.
 */
class PtxFreshnessTest {
    /** The module's directory is the working directory under Maven. */
    static final Path NATIVE = Path.of("..", "native");
    static final Path SHIPPED = Path.of("src", "main", "resources", "dev", "peregrine", "cuda", "ptx");

    /** SHA-256 of the .cu, the headers and the build script, as build-ptx.sh's {@code source_hash} computes it. */
    static String sourceHash(Path cu) {
        try (Stream<Path> files = Files.list(NATIVE)) {
            List<Path> headers = files.filter(p -> p.getFileName().toString().endsWith(".cuh"))
                    .sorted((a, b) -> a.getFileName().toString().compareTo(b.getFileName().toString())).toList();
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            sha.update(Files.readAllBytes(cu));
            for (Path h : headers) {
                sha.update(Files.readAllBytes(h));
            }
            sha.update(Files.readAllBytes(NATIVE.resolve("build-ptx.sh")));
            return HexFormat.of().formatHex(sha.digest());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    static List<String> sourceModules() throws IOException {
        try (Stream<Path> files = Files.list(NATIVE)) {
            return files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".cu"))
                    .map(n -> n.substring(0, n.length() - 3)).sorted().toList();
        }
    }

    @Test
    void everyShippedPtxWasBuiltFromTheCurrentSources() throws IOException {
        for (String module : sourceModules()) {
            String expected = sourceHash(NATIVE.resolve(module + ".cu"));
            for (int arch : Ptx.ARCHITECTURES) {
                assertThat(Ptx.sourceHash(Ptx.read(module, arch)))
                        .as("dev/peregrine/cuda/%s is older than native/%s.cu or a header: run native/build-ptx.sh "
                                + "(needs nvcc) and commit the PTX", Ptx.resource(module, arch), module)
                        .isEqualTo(expected);
            }
        }
    }

    @Test
    void theBackendLoadsExactlyTheModulesThatHaveSources() throws IOException {
        assertThat(Arrays.stream(Kernel.MODULES).sorted().toList()).isEqualTo(sourceModules());
    }

    @Test
    void noPtxIsShippedWithoutASource() throws IOException {
        List<String> expected = sourceModules().stream()
                .flatMap(m -> Arrays.stream(Ptx.ARCHITECTURES).mapToObj(a -> m + ".sm_" + a + ".ptx")).sorted().toList();
        try (Stream<Path> shipped = Files.list(SHIPPED)) {
            assertThat(shipped.map(p -> p.getFileName().toString()).sorted().toList()).isEqualTo(expected);
        }
    }

    @Test
    void theHashLineIsFoundAndOnlyOnTheFirstLine() {
        assertThat(Ptx.sourceHash("// peregrine-source-sha256 abc\n.version 9.0\n")).isEqualTo("abc");
        assertThat(Ptx.sourceHash("//\n// peregrine-source-sha256 abc\n")).isNull();
    }
}
