package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** "auto" gets past a backend that is present but fails to start; a pinned backend reports its failure. */
class BackendFallbackTest {
    @AfterEach
    void reset() {
        FailingBackendProvider.failure = null;
    }

    @Test
    void autoFallsBackToTheCpuWhenTheBestBackendFailsToLoad() {
        FailingBackendProvider.failure = "out of device memory (test)";
        try (Model model = Model.load(SharedModels.stories260K(), ModelOptions.defaults().withDeviceIndex(3))) {
            assertThat(FailingBackendProvider.lastDeviceIndex).as("the device index reaches the backend").isEqualTo(3);
            assertThat(model.describe()).containsIgnoringCase("cpu");
            assertThat(model.generator().generate("Once upon a time", GenerationConfig.greedy().maxTokens(8), t -> { })
                    .outputTokens()).hasSize(8);
        }
    }

    @Test
    void aPinnedBackendThatFailsToLoadSaysWhy() {
        FailingBackendProvider.failure = "out of device memory (test)";
        assertThatThrownBy(() -> Model.load(SharedModels.stories260K(), ModelOptions.defaults().withBackend("failing-test")))
                .hasMessageContaining("out of device memory (test)");
    }

    @Test
    void negativeDeviceIndexesAreRejected() {
        assertThatThrownBy(() -> ModelOptions.defaults().withDeviceIndex(-1)).hasMessageContaining("deviceIndex must be >= 0");
    }
}
