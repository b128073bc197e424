package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.ChatMessage;
import dev.peregrine.ChatTemplate;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.UnsupportedModelOperationException;
import dev.peregrine.synth.ModelShape;
import dev.peregrine.synth.SyntheticModel;
import dev.peregrine.synth.TokenizerMetadata;
import dev.peregrine.tensor.DType;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@link Model#chatTemplate()} and {@link Model#applyChatTemplate} on GGUF files with and without a template. */
class ChatTemplateModelTest {
    private static final List<ChatMessage> CONVERSATION = List.of(
            ChatMessage.user("Hi!"),
            ChatMessage.assistant("Hello. How can I help?"),
            ChatMessage.user("Tell me a story."));

    @TempDir
    static Path dir;
    /** A tiny synthetic model carrying llama.cpp's Phi-3 vocabulary, whose metadata includes Phi-3's chat template. */
    static Model phi3;

    @BeforeAll
    static void writePhi3Model() {
        TokenizerMetadata vocab = TokenizerMetadata.copiedFrom(SharedModels.dir().resolve("tokenizers/ggml-vocab-phi-3.gguf"));
        ModelShape shape = ModelShape.named("tiny").withVocab(vocab.tokenCount());
        Path file = dir.resolve("phi3-tiny.gguf");
        SyntheticModel.of(shape, 1).writeGguf(file, DType.F16, vocab, 1);
        // One model for all tests, and a small KV cache: the file is only here for its metadata.
        phi3 = Model.load(file, ModelOptions.defaults().withContextLength(256).withKvCacheTokens(256));
    }

    @AfterAll
    static void closePhi3Model() {
        phi3.close();
    }

    @Test
    void chatTemplateComesFromTheGgufMetadata() {
        ChatTemplate template = phi3.chatTemplate().orElseThrow();
        assertThat(template.source()).startsWith("{{ bos_token }}{% for message in messages %}");
        assertThat(template.bosToken()).isEqualTo("<s>");
        assertThat(template.eosToken()).isEqualTo("<|endoftext|>");
        assertThat(phi3.chatTemplate()).as("compiled once").containsSame(template);

        String prompt = phi3.applyChatTemplate(CONVERSATION, true);
        assertThat(prompt).isEqualTo("<s><|user|>\nHi!<|end|>\n<|assistant|>\n"
                + "Hello. How can I help?<|end|>\n"
                + "<|user|>\nTell me a story.<|end|>\n<|assistant|>\n");
        assertThat(template.render(CONVERSATION, true)).isEqualTo(prompt);
    }

    @Test
    void encodingARenderedPromptGivesOneBos() {
        String prompt = phi3.applyChatTemplate(CONVERSATION, true);
        int[] ids = phi3.encode(prompt);
        int bos = phi3.encode("", true)[0];
        assertThat(ids[0]).isEqualTo(bos);
        assertThat(ids[1]).as("no second BOS after the template's").isNotEqualTo(bos);
        // The same ids as llama.cpp gets by stripping the BOS text and letting the tokenizer add BOS.
        assertThat(ids).isEqualTo(phi3.encode(prompt.substring("<s>".length())));
        // Without the BOS text in front, BOS is still added once.
        assertThat(phi3.encode("Hi")[0]).isEqualTo(bos);
    }

    @Test
    void aModelWithoutTemplateSaysSo() {
        try (Model model = Model.load(SharedModels.stories260K())) {
            assertThat(model.chatTemplate()).isEmpty();
            assertThatThrownBy(() -> model.applyChatTemplate(CONVERSATION, true))
                    .isInstanceOf(UnsupportedModelOperationException.class)
                    .hasMessageContaining("stories260K.gguf has no chat template")
                    .hasMessageContaining("tokenizer.chat_template");
        }
    }
}
