package dev.peregrine;

import java.util.Objects;

/**
 * One message of a conversation, as chat templates see it: {@code {role, content}}. Content may be
 * null (None to the template), as for an assistant turn that only calls tools.
 */
public record ChatMessage(String role, String content) {

    public ChatMessage {
        Objects.requireNonNull(role, "role");
    }

    public static ChatMessage system(String content) {
        return new ChatMessage("system", content);
    }

    public static ChatMessage user(String content) {
        return new ChatMessage("user", content);
    }

    public static ChatMessage assistant(String content) {
        return new ChatMessage("assistant", content);
    }
}
