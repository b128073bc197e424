package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.Session;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Sessions keep their cached keys and values between calls, but not at any price: when the KV
 * cache runs out, the blocks of idle sessions (least recently used first) and of waiting
 * requests are taken back before any running request is preempted, and those sessions evaluate
 * their tokens again at their next call, with exactly the results they would have had.
 */
class SessionEvictionTest {
    private static final GenerationConfig GREEDY = GenerationConfig.greedy().maxTokens(40).ignoreEos(true);

    /** Two turns of a conversation in one session; everything it generated. */
    private static List<int[]> conversation(Model model, String first, String second) {
        try (Session s = model.newSession()) {
            List<int[]> out = new ArrayList<>();
            out.add(s.append(first).generate(GREEDY).outputTokens());
            out.add(s.append(second).generate(GREEDY.seed(3).temperature(0.8f)).outputTokens());
            out.add(s.tokens());
            return out;
        }
    }

    @Test
    void anIdleSessionGivesItsBlocksBackAndContinuesExactly() {
        List<int[]> expected;
        try (Model roomy = Model.load(SharedModels.stories260K())) {
            expected = conversationWithAnotherInBetween(roomy);
        }
        // 8 blocks of 16: each session holds 3-4 after its first turn, 5-6 after its second.
        try (Model tight = Model.load(SharedModels.stories260K(), ModelOptions.defaults().withKvCacheTokens(128))) {
            List<int[]> actual = conversationWithAnotherInBetween(tight);
            for (int i = 0; i < expected.size(); i++) {
                assertThat(actual.get(i)).as("part %d", i).containsExactly(expected.get(i));
            }
            assertThat(tight.generator().metrics().kvBlocksUsed()).isZero();
        }
    }

    /** Session a's first turn; session b's two turns, which need a's blocks; a's second turn. */
    private static List<int[]> conversationWithAnotherInBetween(Model model) {
        List<int[]> out = new ArrayList<>();
        try (Session a = model.newSession(); Session b = model.newSession()) {
            out.add(a.append("Once upon a time").generate(GREEDY).outputTokens());
            out.add(b.append("The cat sat on the mat").generate(GREEDY).outputTokens());
            out.add(b.append(" and then").generate(GREEDY).outputTokens());
            out.add(a.append(" One day").generate(GREEDY.seed(5).temperature(0.9f)).outputTokens());
            out.add(a.tokens());
            out.add(b.tokens());
        }
        return out;
    }

    /**
     * Eight sessions on eight threads, two turns each, in a cache that holds about three of them:
     * none fails for want of room, and each gives what it gives alone.
     */
    @Test
    void concurrentSessionsInASmallCacheAllCompleteExactly() throws Exception {
        String[] firsts = {"Once upon a time", "The cat", "Lily and Tom went to the park", "One day", "Sam had a dog",
                "Tim", "A little bird sat on a tree", "The sun was hot"};
        List<List<int[]>> alone = new ArrayList<>();
        try (Model roomy = Model.load(SharedModels.stories260K())) {
            for (String first : firsts) {
                alone.add(conversation(roomy, first, " Then"));
            }
        }
        try (Model tight = Model.load(SharedModels.stories260K(), ModelOptions.defaults().withKvCacheTokens(256))) {
            ExecutorService pool = Executors.newFixedThreadPool(firsts.length);
            try {
                List<Future<List<int[]>>> together = new ArrayList<>();
                for (String first : firsts) {
                    together.add(pool.submit(() -> conversation(tight, first, " Then")));
                }
                for (int i = 0; i < firsts.length; i++) {
                    List<int[]> got = together.get(i).get(60, TimeUnit.SECONDS);
                    for (int part = 0; part < got.size(); part++) {
                        assertThat(got.get(part)).as("session %d, part %d: %s", i, part, Arrays.toString(got.get(part)))
                                .containsExactly(alone.get(i).get(part));
                    }
                }
            } finally {
                pool.shutdownNow();
            }
            assertThat(tight.generator().metrics().kvBlocksUsed()).isZero();
        }
    }
}
