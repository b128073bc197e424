package dev.peregrine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.peregrine.Completion;
import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.PeregrineException;
import dev.peregrine.spi.BackendConfig;
import dev.peregrine.spi.BackendProvider;
import org.junit.jupiter.api.Test;

/**
 * Selection and fallback: the provider is found, ranks above the CPU, and on a machine without a
 * usable GPU (like the build machines) it says why, cheaply and without throwing, while "auto"
 * loads and runs models on the CPU.
 */
class CudaBackendProviderTest {
    private final CudaBackendProvider provider = new CudaBackendProvider();

    @Test
    void foundByServiceLoaderAndPreferredToTheCpu() {
        BackendProvider found = Backends.provider("cuda");
        assertThat(found).isInstanceOf(CudaBackendProvider.class);
        assertThat(found.priority()).isGreaterThan(Backends.provider("cpu").priority());
    }

    @Test
    void withoutADriverItSaysSoAndCannotBeCreated() {
        assumeTrue(CudaDriver.unavailableReason().isPresent(), "this machine has an NVIDIA driver");
        var reason = provider.unavailableReason();
        assertThat(reason).hasValueSatisfying(r -> assertThat(r).contains("libcuda.so.1").contains("no NVIDIA driver"));
        assertThat(provider.unavailableReason()).as("found out once, then cached").isSameAs(reason);
        assertThatThrownBy(() -> provider.create(new BackendConfig(0, 0)))
                .isInstanceOf(CudaUnavailableException.class)
                .hasMessage(reason.get());
    }

    @Test
    void autoRunsOnTheCpuWhenCudaIsUnavailable() {
        assumeTrue(provider.unavailableReason().isPresent(), "this machine has a usable GPU");
        try (Model model = Model.load(SharedModels.stories260K(), ModelOptions.defaults())) {
            assertThat(model.describe()).contains("CPU");
            Completion c = model.generator().generate("Once upon a time", GenerationConfig.greedy().maxTokens(8));
            assertThat(c.outputTokens()).hasSize(8);
        }
    }

    @Test
    void pinningCudaWhereItIsUnavailableFailsWithTheReason() {
        assumeTrue(provider.unavailableReason().isPresent(), "this machine has a usable GPU");
        assertThatThrownBy(() -> Model.load(SharedModels.stories260K(), ModelOptions.defaults().withBackend("cuda")))
                .isInstanceOf(PeregrineException.class)
                .hasMessageContaining("backend 'cuda' is not usable here")
                .hasMessageContaining(provider.unavailableReason().get());
    }
}
