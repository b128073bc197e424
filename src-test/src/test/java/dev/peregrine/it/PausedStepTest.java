package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.it.ReferenceForwardTest.RealPath;
import dev.peregrine.kv.KvSequence;
import dev.peregrine.model.LlamaGraph;
import dev.peregrine.spi.BatchLayout;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A forward step that pauses between two layers while another step runs on the same graph (what
 * the engine does for a request that arrives during a long prompt step) gives both steps exactly
 * the logits they give alone: the paused step keeps what its next layer reads, and the other
 * step's scratch and angles do not leak into it.
 */
class PausedStepTest {

    static Stream<Path> models() {
        return Stream.of(SharedModels.stories260K(), SharedModels.tinyLlamaQ4());
    }

    @ParameterizedTest
    @MethodSource("models")
    void bothStepsGetTheLogitsTheyGetAlone(Path model) {
        try (RealPath real = new RealPath(model, 128, 16, 64)) {
            int vocab = real.config.vocabularySize();
            int layers = real.config.layers();
            int[] longPrompt = tokens(100, 7, vocab);
            // The other sequence's step in the pause is at other positions than the paused one's
            // first rows (its angles differ), after a start evaluated before.
            int[] otherStart = tokens(13, 5, vocab);
            int[] shortPrompt = tokens(9, 11, vocab);
            float[] longAlone = new float[vocab];
            float[] shortAlone = new float[vocab];
            float[] ignored = new float[vocab];
            try (KvSequence a = real.kv.newSequence(); KvSequence b = real.kv.newSequence()) {
                step(real, a, longPrompt, longAlone, null);
                step(real, b, otherStart, ignored, null);
                step(real, b, shortPrompt, shortAlone, null);
            }
            for (int pauseAfter = 1; pauseAfter < layers; pauseAfter += Math.max(1, layers / 3)) {
                float[] longPaused = new float[vocab];
                float[] shortPaused = new float[vocab];
                try (KvSequence a = real.kv.newSequence(); KvSequence b = real.kv.newSequence()) {
                    step(real, b, otherStart, ignored, null);
                    int at = pauseAfter;
                    LlamaGraph.Pause pause = new LlamaGraph.Pause() {
                        int layer;

                        @Override
                        public boolean wanted() {
                            return ++layer == at;
                        }

                        @Override
                        public void run() {
                            step(real, b, shortPrompt, shortPaused, null);
                        }
                    };
                    step(real, a, longPrompt, longPaused, pause);
                }
                assertThat(longPaused).as("the paused step, paused after layer %d", pauseAfter).containsExactly(longAlone);
                assertThat(shortPaused).as("the step in the pause after layer %d", pauseAfter).containsExactly(shortAlone);
            }
        }
    }

    /** Appends {@code tokens} to the sequence in one step; the last position's logits into {@code logits}. */
    private static void step(RealPath real, KvSequence seq, int[] tokens, float[] logits, LlamaGraph.Pause pause) {
        int start = seq.length();
        seq.reserve(tokens.length);
        BatchLayout layout = new BatchLayout(real.kv.blockSize());
        int s = layout.addSequence(seq.blockTable(), seq.blockCount());
        for (int i = 0; i < tokens.length; i++) {
            layout.addToken(s, tokens[i], start + i, i == tokens.length - 1);
        }
        real.graph.forward(layout, logits, pause);
        seq.advance(start + tokens.length);
    }

    private static int[] tokens(int n, int stride, int vocab) {
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = 1 + (i * stride) % (vocab - 1);
        }
        return ids;
    }
}
