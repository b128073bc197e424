package dev.peregrine.onnx;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import dev.langchain4j.model.embedding.EmbeddingModel;
import dev.langchain4j.model.embedding.onnx.allminilml6v2.AllMiniLmL6V2EmbeddingModel;
import dev.langchain4j.model.embedding.onnx.allminilml6v2q.AllMiniLmL6V2QuantizedEmbeddingModel;
import dev.langchain4j.model.embedding.onnx.bgesmallenv15q.BgeSmallEnV15QuantizedEmbeddingModel;
import dev.langchain4j.model.embedding.onnx.e5smallv2q.E5SmallV2QuantizedEmbeddingModel;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.Map;

/**
 * Embeddings from LangChain4j's in-process models: an independent Java implementation over the same
 * ONNX files (ONNX Runtime, with DJL's bindings of Hugging Face's Rust tokenizer), one text per run.
 *
 * <p>One difference is made up for here. LangChain4j does not truncate a text longer than the
 * model's 512 positions: it embeds it in pieces of up to 510 tokens and averages them. Peregrine
 * truncates (as sentence-transformers does). For such a text the reference is LangChain4j's
 * embedding of the text cut to its first 510 tokens (checked to tokenize back to exactly those
 * tokens). Texts within the limit are compared as they are. (The MiniLM jars' tokenizer.json asks
 * for truncation at 128 tokens, which LangChain4j's tokenizer applies and Peregrine reads too.)
 */
final class LangChain4jReference {
    /** 512 positions less [CLS] and [SEP], as LangChain4j partitions. */
    private static final int MAX_TEXT_TOKENS = 510;

    private final EmbeddingModel model;
    private final HuggingFaceTokenizer tokenizer;

    LangChain4jReference(TestModels.Jar jar) {
        this.model = switch (jar) {
            case MINILM -> new AllMiniLmL6V2EmbeddingModel();
            case MINILM_Q -> new AllMiniLmL6V2QuantizedEmbeddingModel();
            case BGE_Q -> new BgeSmallEnV15QuantizedEmbeddingModel();
            case E5_Q -> new E5SmallV2QuantizedEmbeddingModel();
        };
        try {
            this.tokenizer = HuggingFaceTokenizer.newInstance(jar.tokenizer(), Map.of("padding", "false"));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    float[] embed(String text) {
        List<String> tokens = tokenizer.tokenize(text); // [CLS] ... [SEP], truncated if the file says so
        if (tokens.size() - 2 <= MAX_TEXT_TOKENS) {
            return model.embed(text).content().vector();
        }
        List<String> kept = tokens.subList(1, 1 + MAX_TEXT_TOKENS);
        String cut = tokenizer.buildSentence(kept);
        List<String> again = tokenizer.tokenize(cut);
        assertThat(again.subList(1, again.size() - 1)).as("the cut text tokenizes back to its tokens").isEqualTo(kept);
        return model.embed(cut).content().vector();
    }

    EmbeddingModel model() {
        return model;
    }
}
