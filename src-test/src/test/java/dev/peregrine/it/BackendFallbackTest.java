package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.Completion;
import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.tensor.DType;
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
    void theKvCacheTypeIsAnOptionThatTheModelDescribesAndOnlyF32OrF16() {
        try (Model f16 = Model.load(SharedModels.stories260K(), ModelOptions.defaults().withBackend("cpu")
                .withKvCacheType(DType.F16).withKvCacheTokens(1024))) {
            assertThat(f16.describe()).contains("KV cache F16, 1024 tokens");
            Completion c = f16.generator().generate("Once upon a time", GenerationConfig.greedy().maxTokens(40), t -> { });
            assertThat(c.outputTokens()).hasSize(40);
        }
        assertThatThrownBy(() -> ModelOptions.defaults().withKvCacheType(DType.Q8_0))
                .hasMessageContaining("kvCacheType must be F32 or F16, got Q8_0");
    }

    @Test
    void negativeDeviceIndexesAreRejected() {
        assertThatThrownBy(() -> ModelOptions.defaults().withDeviceIndex(-1)).hasMessageContaining("deviceIndex must be >= 0");
    }
}
