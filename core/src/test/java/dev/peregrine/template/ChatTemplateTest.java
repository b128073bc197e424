package dev.peregrine.template;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.ChatMessage;
import dev.peregrine.ChatTemplate;
import dev.peregrine.TemplateException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The chat templates of the real tokenizer_config.json files in the shared directory, rendered
 * through {@link ChatTemplate} for each conversation of conversations.json, with and without
 * add_generation_prompt, against jinja2's renderings in Hugging Face's environment
 * (chat-MODEL.expected), character for character.
 */
class ChatTemplateTest {
    private static final List<String> MODELS = List.of("llama3", "llama3-new", "qwen3", "deepseek-v3");
    private static final Map<String, Object> CONVERSATIONS =
            TemplateTestData.json(TemplateTestData.resource("conversations.json"));
    private static final Map<String, ChatTemplate> TEMPLATES = new ConcurrentHashMap<>();
    private static final Map<String, Map<String, String>> EXPECTED = new ConcurrentHashMap<>();

    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (String model : MODELS) {
            for (String conversation : CONVERSATIONS.keySet()) {
                out.add(Arguments.of(model, conversation, true));
                out.add(Arguments.of(model, conversation, false));
            }
        }
        return out.stream();
    }

    private static Map<String, Object> config(String model) {
        Path file = TemplateTestData.sharedDir().resolve("models/tokenizers/hf").resolve(model)
                .resolve("tokenizer_config.json");
        if (!Files.isRegularFile(file)) {
            throw new IllegalStateException("missing test file " + file.toAbsolutePath()
                    + " (set -Dperegrine.shared.dir to the shared directory)");
        }
        return TemplateTestData.json(file);
    }

    /** A special token of tokenizer_config.json: a string, an AddedToken object, or null. */
    private static String token(Object value) {
        return value instanceof Map<?, ?> m ? (String) m.get("content") : (String) value;
    }

    /** The model's chat template, compiled once for all cases. */
    static ChatTemplate chatTemplate(String model) {
        return TEMPLATES.computeIfAbsent(model, m -> {
            Map<String, Object> config = config(m);
            return ChatTemplate.of((String) config.get("chat_template"), token(config.get("bos_token")),
                    token(config.get("eos_token")));
        });
    }

    @ParameterizedTest(name = "{0} {1} generation prompt {2}")
    @MethodSource("cases")
    @SuppressWarnings("unchecked")
    void rendersAsTransformers(String model, String conversation, boolean addGenerationPrompt) {
        Map<String, Object> conv = (Map<String, Object>) CONVERSATIONS.get(conversation);
        List<Map<String, Object>> messages = (List<Map<String, Object>>) conv.get("messages");
        Map<String, Object> variables = new HashMap<>((Map<String, Object>) conv.getOrDefault("variables", Map.of()));
        // plain {role, content} messages go through the ChatMessage API; richer ones as a variable
        List<ChatMessage> chat = new ArrayList<>();
        for (Map<String, Object> m : messages) {
            chat.add(new ChatMessage((String) m.get("role"), (String) m.get("content")));
        }
        if (messages.stream().anyMatch(m -> m.size() != 2)) {
            variables.put("messages", messages);
        }
        ChatTemplate template = chatTemplate(model);
        String expected = EXPECTED.computeIfAbsent(model, m -> TemplateTestData.sections("chat-" + m + ".expected"))
                .get(conversation + (addGenerationPrompt ? "/gen" : "/nogen"));
        if (expected.startsWith(TemplateTestData.ERROR)) {
            assertThatThrownBy(() -> template.render(chat, addGenerationPrompt, variables))
                    .as("jinja2 fails with %s", expected)
                    .isInstanceOf(TemplateException.class);
        } else {
            assertThat(template.render(chat, addGenerationPrompt, variables)).isEqualTo(expected);
        }
    }

    @Test
    void simpleOverloadMatchesTheFullOne() {
        ChatTemplate template = chatTemplate("qwen3");
        List<ChatMessage> chat = List.of(ChatMessage.system("Be brief."), ChatMessage.user("Hi!"));
        assertThat(template.render(chat, true)).isEqualTo(
                "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
        assertThat(template.render(chat, true)).isEqualTo(template.render(chat, true, Map.of()));
        assertThat(template.eosToken()).isEqualTo("<|im_end|>");
        assertThat(template.bosToken()).isNull();
    }

    @Test
    void tokensAndGenerationFlagReachTheTemplate() {
        ChatTemplate template = ChatTemplate.of(
                "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools }}|{{ messages|length }}"
                        + "|{{ bos_token is defined }}|{{ extra }}", null, "</s>");
        assertThat(template.render(List.of(ChatMessage.user("x")), false, Map.of("extra", 42)))
                .isEqualTo("|</s>|False|None|1|False|42");
    }

    @Test
    void nullContentIsNone() {
        ChatTemplate template = ChatTemplate.of("{{ messages[0].content is none }}", "<s>", "</s>");
        assertThat(template.render(List.of(ChatMessage.assistant(null)), false)).isEqualTo("True");
    }

    @Test
    void roleIsRequired() {
        assertThatThrownBy(() -> new ChatMessage(null, "x")).isInstanceOf(NullPointerException.class);
    }
}
