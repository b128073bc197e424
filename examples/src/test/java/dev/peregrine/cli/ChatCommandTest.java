package dev.peregrine.cli;

import static dev.peregrine.cli.PeregrineCliTest.run;
import static dev.peregrine.cli.PeregrineCliTest.runWithInput;
import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.ChatMessage;
import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.format.gguf.GgufWriter;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code peregrine chat} driven through stdin, on stories260K with and without a chat template. */
class ChatCommandTest {
    private static final Path STORIES = PeregrineCliTest.sharedDir().resolve("models/stories260K.gguf");
    /** Zephyr's layout: a role line, the content, EOS. */
    static final String TEMPLATE = "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
            + "{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}";
    private static final Pattern TURN = Pattern.compile("\\[prompt (\\d+) tokens.*reply (\\d+) tokens");
    private static final int REPLY_TOKENS = 12;

    @TempDir
    static Path dir;
    static Path templated;

    @BeforeAll
    static void writeTemplatedModel() throws IOException {
        templated = withChatTemplate(STORIES, dir.resolve("stories260K-chat.gguf"), TEMPLATE);
    }

    /** A copy of a GGUF file with {@code tokenizer.chat_template} set: the same metadata and tensor bytes. */
    static Path withChatTemplate(Path source, Path target, String template) {
        return withMetadata(source, target, w -> w.putString("tokenizer.chat_template", template));
    }

    /** A copy of a GGUF file with the same metadata and tensor bytes, and what {@code extra} puts. */
    static Path withMetadata(Path source, Path target, java.util.function.Consumer<GgufWriter> extra) {
        GgufCopy.copy(source, target, Map.of(), extra, Map.of());
        return target;
    }

    /** The evaluated prompt tokens and generated tokens of each turn, from the stderr summaries. */
    private static List<int[]> turns(PeregrineCliTest.Result r) {
        return r.errLines().stream().map(TURN::matcher).filter(Matcher::find)
                .map(m -> new int[] {Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2))}).toList();
    }

    private static String greedyReply(Model model, String prompt) {
        return model.generator().generate(prompt, GenerationConfig.greedy().maxTokens(REPLY_TOKENS)).text();
    }

    @Test
    void twoTurnsInOneSessionEvaluateOnlyTheNewTokens() {
        PeregrineCliTest.Result r = runWithInput("Tell me a story.\nAnd then?\n",
                "chat", "-m", templated.toString(), "--system", "You tell stories.", "--temp", "0", "-n", "" + REPLY_TOKENS);
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.err()).doesNotContain("no chat template");
        List<int[]> turns = turns(r);
        assertThat(turns).as(r.err()).hasSize(2);

        try (Model model = Model.load(templated)) {
            ChatMessage system = ChatMessage.system("You tell stories.");
            ChatMessage user1 = ChatMessage.user("Tell me a story.");
            String prompt1 = model.applyChatTemplate(List.of(system, user1), true);
            String reply1 = greedyReply(model, prompt1);
            String prompt2 = model.applyChatTemplate(
                    List.of(system, user1, ChatMessage.assistant(reply1), ChatMessage.user("And then?")), true);
            String reply2 = greedyReply(model, prompt2);
            // Replies are what plain greedy generation gives for the whole rendered conversation.
            String nl = System.lineSeparator();
            assertThat(r.out()).isEqualTo(reply1 + nl + reply2 + nl);

            int[] ids1 = model.encode(prompt1);
            int[] ids2 = model.encode(prompt2);
            assertThat(ids2).startsWith(ids1);
            assertThat(turns.get(0)[0]).as("turn 1 evaluates its whole prompt").isEqualTo(ids1.length);
            // Turn 2 evaluates only what follows the tokens the session already holds: at most the
            // reply (re-tokenised) and the new message, never the first turn's prompt again.
            assertThat(turns.get(1)[0]).isPositive().isLessThanOrEqualTo(ids2.length - ids1.length);
        }
    }

    @Test
    void resetStartsOver() {
        PeregrineCliTest.Result r = runWithInput("Hello!\n/reset\nHello!\n/exit\nnever read\n",
                "chat", "-m", templated.toString(), "--temp", "0", "-n", "" + REPLY_TOKENS);
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.err()).contains("(conversation cleared)");
        List<String> replies = r.out().lines().toList();
        List<int[]> turns = turns(r);
        assertThat(turns).hasSize(2);
        // After /reset the same message gets the same reply from the same prompt, whose first
        // blocks the prefix cache still holds: fewer prompt tokens are evaluated the second time.
        assertThat(turns.get(1)[0]).isPositive().isLessThan(turns.get(0)[0]);
        assertThat(r.out()).isEqualTo(r.out().substring(0, r.out().length() / 2).repeat(2));
        assertThat(replies).isNotEmpty();
    }

    @Test
    void withoutTemplateUsesAPlainFormat() {
        PeregrineCliTest.Result r = runWithInput("Once upon a time\nWhat next?\n",
                "chat", "-m", STORIES.toString(), "--temp", "0", "-n", "" + REPLY_TOKENS);
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.err()).contains("peregrine: note: stories260K.gguf has no chat template; using a plain \"User: ... Assistant:\" format");
        List<int[]> turns = turns(r);
        assertThat(turns).hasSize(2);
        try (Model model = Model.load(STORIES)) {
            String prompt1 = "User: Once upon a time\nAssistant:";
            assertThat(turns.get(0)[0]).isEqualTo(model.encode(prompt1).length);
            String reply1 = greedyReply(model, prompt1);
            assertThat(r.out()).startsWith(reply1 + System.lineSeparator());
            String prompt2 = prompt1 + reply1 + "\nUser: What next?\nAssistant:";
            assertThat(turns.get(1)[0]).isLessThanOrEqualTo(model.encode(prompt2).length - model.encode(prompt1).length);
        }
    }

    /** A template that does not compile: the plain format, with a note that names the error, as without one. */
    @Test
    void aTemplateThatDoesNotCompileFallsBackToThePlainFormat() throws IOException {
        Path broken = withChatTemplate(STORIES, dir.resolve("stories260K-broken.gguf"),
                "{% for m in messages %}{{ m.content }{% endfor %}");
        PeregrineCliTest.Result r = runWithInput("Once upon a time\n", "chat", "-m", broken.toString(), "--temp", "0",
                "-n", "" + REPLY_TOKENS);
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.err()).contains("peregrine: note: stories260K-broken.gguf has a chat template that does not compile (line 1,")
                .contains("using a plain \"User: ... Assistant:\" format");
        try (Model model = Model.load(STORIES)) {
            assertThat(r.out()).startsWith(greedyReply(model, "User: Once upon a time\nAssistant:") + System.lineSeparator());
        }
    }

    @Test
    void endOfInputWithoutMessagesIsFine() {
        PeregrineCliTest.Result r = runWithInput("", "chat", "-m", templated.toString());
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).isEmpty();
    }

    @Test
    void usageErrors() {
        PeregrineCliTest.Result noModel = run("chat", "--system", "hi");
        assertThat(noModel.status()).isEqualTo(2);
        assertThat(noModel.err()).startsWith("peregrine: missing -m FILE").contains("peregrine chat -m MODEL");
        PeregrineCliTest.Result unknown = run("chat", "-m", STORIES.toString(), "--prompt", "hi");
        assertThat(unknown.status()).isEqualTo(2);
        assertThat(unknown.err()).startsWith("peregrine: unknown option --prompt");
        PeregrineCliTest.Result positional = run("chat", "-m", STORIES.toString(), "hello");
        assertThat(positional.status()).isEqualTo(2);
        assertThat(positional.err()).startsWith("peregrine: unexpected argument 'hello'");
        assertThat(run("chat", "-m", STORIES.toString(), "--temp", "hot").err())
                .startsWith("peregrine: --temp expects a number, got 'hot'");
    }
}
