package dev.peregrine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Library lookup and the cuBLAS binding where cuBLAS is not installed (as on the build machines). */
class NativeLibraryTest {

    @Test
    void aMissingLibraryIsReportedWithEverythingTried(@TempDir Path dir) {
        assertThatThrownBy(() -> NativeLibrary.load(List.of("libperegrine-absent.so.7"), List.of(dir), Arena.global()))
                .isInstanceOf(CudaUnavailableException.class)
                .hasMessageContaining("libperegrine-absent.so.7 not found")
                .hasMessageContaining(dir.toString());
    }

    @Test
    void aLibraryOnTheLinkerPathIsFoundBySoname() {
        NativeLibrary.Loaded libc = NativeLibrary.load(List.of("libperegrine-absent.so.7", "libc.so.6"), List.of(), Arena.global());
        assertThat(libc.path()).isEqualTo("libc.so.6");
        assertThat(libc.symbols().find("strlen")).isPresent();
    }

    @Test
    void aFailedStatusBecomesAnExceptionNamingTheCall() {
        // libc's abs(int) stands in for a CUDA function: it returns its argument's magnitude as the "status".
        NativeLibrary.Loaded libc = NativeLibrary.load(List.of("libc.so.6"), List.of(), Arena.global());
        List<String> missing = new java.util.ArrayList<>();
        NativeFunction abs = NativeFunction.bind(libc.symbols(), "abs", status -> new String[] {"STATUS_" + status, "what it means"},
                missing, java.lang.foreign.ValueLayout.JAVA_INT);
        abs.call(0);
        assertThatThrownBy(() -> abs.call(-7)).isInstanceOf(CudaException.class)
                .hasMessage("abs failed: STATUS_7 (7, what it means)")
                .satisfies(e -> {
                    assertThat(((CudaException) e).call()).isEqualTo("abs");
                    assertThat(((CudaException) e).status()).isEqualTo(7);
                });
        NativeFunction absent = NativeFunction.bind(libc.symbols(), "cuPeregrineAbsent", status -> new String[] {"", ""}, missing);
        assertThat(absent.handle()).isNull();
        assertThat(missing).containsExactly("cuPeregrineAbsent");
    }

    @Test
    void toolkitDirectoriesIncludeTheUsualCudaLocations() {
        assertThat(NativeLibrary.toolkitDirs()).contains(Path.of("/usr/local/cuda/lib64"),
                Path.of("/usr/local/cuda/targets/x86_64-linux/lib"));
    }

    @Test
    void withoutCublasTheBindingSaysWhichLibrariesItLookedFor() {
        assumeTrue(Cublas.unavailableReason().isPresent(), "cuBLAS is installed on this machine");
        assertThat(Cublas.unavailableReason().get())
                .contains("cuBLAS is not installed").contains("libcublas.so.13").contains("libcublas.so.12");
        assertThatThrownBy(() -> Cublas.create(new FakeDevice()))
                .isInstanceOf(CudaUnavailableException.class)
                .hasMessageContaining("libcublas.so.13");
    }
}
