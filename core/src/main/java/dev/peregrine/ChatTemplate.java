package dev.peregrine;

import dev.peregrine.template.Template;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A model's chat template (the Jinja {@code chat_template} of tokenizer_config.json or
 * {@code tokenizer.chat_template} of a GGUF file), which turns a conversation into the prompt text
 * the model was trained on. Renders exactly as Hugging Face transformers' apply_chat_template
 * (jinja2 with trim_blocks and lstrip_blocks). Compiled once; thread-safe.
 *
 * <pre>{@code
 * ChatTemplate t = ChatTemplate.of(source, "<|begin_of_text|>", "<|eot_id|>");
 * String prompt = t.render(List.of(ChatMessage.system("Be brief."), ChatMessage.user("Hi!")), true);
 * }</pre>
 */
public final class ChatTemplate {
    private final Template template;
    private final String bosToken;
    private final String eosToken;

    private ChatTemplate(Template template, String bosToken, String eosToken) {
        this.template = template;
        this.bosToken = bosToken;
        this.eosToken = eosToken;
    }

    /**
     * @param bosToken the text of the model's BOS token, or null when it has none (then bos_token is
     *                 undefined to the template, as in transformers)
     * @param eosToken the text of the EOS token, or null
     * @throws TemplateException when the template does not compile
     */
    public static ChatTemplate of(String source, String bosToken, String eosToken) {
        return new ChatTemplate(Template.compile(source), bosToken, eosToken);
    }

    /** The prompt for these messages; with addGenerationPrompt, ending where the assistant's reply starts. */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
        return render(messages, addGenerationPrompt, Map.of());
    }

    /**
     * As {@link #render(List, boolean)}, with more template variables (for example {@code tools},
     * {@code enable_thinking}, {@code date_string}). A variable given here replaces the default of
     * the same name, including {@code messages}: pass a list of maps there for messages with more
     * fields than role and content ({@code tool_calls}, {@code reasoning_content}).
     *
     * <p>Values may be String, Integer/Long, Double, Boolean, null, List and Map (nested freely).
     *
     * @throws TemplateRaisedException when the template rejects the conversation (raise_exception)
     * @throws TemplateException when the template fails to render
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt, Map<String, ?> variables) {
        Map<String, Object> context = new HashMap<>();
        List<Object> list = new ArrayList<>(messages.size());
        for (ChatMessage m : messages) {
            Map<String, Object> map = new LinkedHashMap<>();
            map.put("role", m.role());
            map.put("content", m.content());
            list.add(map);
        }
        context.put("messages", list);
        // transformers always passes these two, None when absent
        context.put("tools", null);
        context.put("documents", null);
        context.put("add_generation_prompt", addGenerationPrompt);
        if (bosToken != null) {
            context.put("bos_token", bosToken);
        }
        if (eosToken != null) {
            context.put("eos_token", eosToken);
        }
        context.putAll(variables);
        return template.render(context);
    }

    public String source() {
        return template.source();
    }

    public String bosToken() {
        return bosToken;
    }

    public String eosToken() {
        return eosToken;
    }
}
