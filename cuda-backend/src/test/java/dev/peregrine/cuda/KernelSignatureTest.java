package dev.peregrine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * The parameter lists {@link Kernel} declares (and every launch is checked against) are those of
 * the compiled kernels, for every shipped architecture; and every compiled kernel is declared.
 */
class KernelSignatureTest {

    @Test
    void everyKernelMatchesItsPtxEntryPoint() {
        for (int arch : Ptx.ARCHITECTURES) {
            for (String module : Kernel.MODULES) {
                Map<String, String> entries = Ptx.entries(Ptx.read(module, arch));
                Set<String> declared = Arrays.stream(Kernel.values()).filter(k -> k.module.equals(module))
                        .map(k -> k.entry).collect(Collectors.toSet());
                assertThat(entries.keySet()).as("entry points of %s", Ptx.resource(module, arch))
                        .containsExactlyInAnyOrderElementsOf(declared);
                for (Kernel k : Kernel.values()) {
                    if (k.module.equals(module)) {
                        assertThat(entries.get(k.entry)).as("%s in %s", k.entry, Ptx.resource(module, arch))
                                .isEqualTo(k.ptxSignature());
                    }
                }
            }
        }
    }

    @Test
    void parsesPtxParameterLists() {
        String ptx = """
                .visible .entry pg_x(
                \t.param .u64 .ptr .align 1 pg_x_param_0,
                \t.param .u32 pg_x_param_1,
                \t.param .f32 pg_x_param_2
                )
                {
                """;
        assertThat(Ptx.entries(ptx)).containsExactly(Map.entry("pg_x", "84F"));
    }

    @Test
    void launchArgumentsMustMatchTheKernel() {
        try (Arena arena = Arena.ofConfined()) {
            LaunchArgs args = new LaunchArgs(arena);
            args.reset().ptr(1).ptr(2).ptr(0).ptr(3).i32(4).f32(5f);
            args.check(Kernel.RMS_NORM);
            args.reset().ptr(1).ptr(2).ptr(0).ptr(3).f32(5f).i32(4);
            assertThatThrownBy(() -> args.check(Kernel.RMS_NORM))
                    .hasMessageContaining("pg_rms_norm takes (PPPPIF) but was given (PPPPFI)");
        }
    }

    @Test
    void architectureIsTheNewestNotAboveTheDevice() {
        assertThat(Ptx.architectureFor(75)).isEqualTo(-1);
        assertThat(Ptx.architectureFor(80)).isEqualTo(80);
        assertThat(Ptx.architectureFor(89)).isEqualTo(80);
        assertThat(Ptx.architectureFor(90)).isEqualTo(90);
        assertThat(Ptx.architectureFor(120)).isEqualTo(90);
    }
}
