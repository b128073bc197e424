package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.peregrine.Completion;
import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.ModelFormatException;
import dev.peregrine.cpu.CpuBackendProvider;
import dev.peregrine.format.hf.HfDirectoryWriter;
import dev.peregrine.kv.KvCache;
import dev.peregrine.kv.KvSequence;
import dev.peregrine.model.LlamaCheckpoint;
import dev.peregrine.model.LlamaGraph;
import dev.peregrine.model.LlamaWeights;
import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BackendConfig;
import dev.peregrine.spi.BatchLayout;
import dev.peregrine.synth.ModelShape;
import dev.peregrine.synth.SyntheticHfTokenizer;
import dev.peregrine.synth.SyntheticModel;
import dev.peregrine.synth.SyntheticVocabulary;
import dev.peregrine.synth.TokenizerMetadata;
import dev.peregrine.tensor.DType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The same synthetic model written as a GGUF file and as a Hugging Face directory (same seed, same
 * element type) loads through {@link Model#load} from either, and computes the same thing: the
 * HF reader's names, shapes, q/k row order and tied output must all be right for the logits to be
 * bit-identical. The GGUF file keeps norm weights in F32 and the directory in the checkpoint's type,
 * but synthetic norms are all ones, exact in every type, so the two hold the same values.
 */
class HfDirectoryTest {
    private static final ModelShape TINY = ModelShape.named("tiny"); // untied
    private static final ModelShape TINY_TIED =
            new ModelShape("tiny-tied", 64, 3, 4, 2, 160, 512, 2048, 10000f, 1e-5f, true, false);
    private static final String PROMPT = "Once upon a time, the day was long.";
    private static final String TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}";

    @TempDir
    Path dir;

    private Path gguf(ModelShape shape, DType type, long seed) {
        Path file = dir.resolve(shape.name() + "-" + type + ".gguf");
        SyntheticModel.of(shape, seed).writeGguf(file, type, TokenizerMetadata.synthetic(shape.vocab()), 1);
        return file;
    }

    private Path hf(ModelShape shape, DType type, long seed, long shardLimit) throws IOException {
        Path out = dir.resolve(shape.name() + "-" + type + "-hf");
        SyntheticModel.of(shape, seed).writeHf(out, type, shardLimit, 1);
        writeTokenizer(out, shape.vocab());
        return out;
    }

    @ParameterizedTest(name = "{0}, tied {1}, shard limit {2}")
    @CsvSource({
            "F32, false, 0",
            "F16, false, 0",
            "BF16, false, 0",
            "F32, true, 0",
            "F16, true, 40000",
            "BF16, false, 40000",
    })
    void sameLogitsAndGreedyTokensAsTheGgufFile(DType type, boolean tied, long shardLimit) throws IOException {
        ModelShape shape = tied ? TINY_TIED : TINY;
        Path gguf = gguf(shape, type, 11);
        Path hf = hf(shape, type, 11, shardLimit > 0 ? shardLimit : HfDirectoryWriter.DEFAULT_SHARD_LIMIT);
        if (shardLimit > 0) {
            try (var files = Files.list(hf)) {
                assertThat(files.filter(p -> p.toString().endsWith(".safetensors")).count()).isGreaterThan(2);
            }
            assertThat(hf.resolve(HfDirectoryWriter.INDEX_FILE)).exists();
        }
        assertThat(Files.exists(hf.resolve("model-00001-of-00001.safetensors"))).isFalse();

        int[] tokens = randomTokens(shape.vocab(), 40);
        float[] fromGguf = logits(gguf, tokens);
        float[] fromHf = logits(hf, tokens);
        assertThat(fromHf).containsExactly(fromGguf);

        GenerationConfig greedy = GenerationConfig.greedy().maxTokens(24).ignoreEos(true);
        try (Model a = Model.load(gguf); Model b = Model.load(hf)) {
            assertThat(b.vocabularySize()).isEqualTo(a.vocabularySize());
            assertThat(b.contextLength()).isEqualTo(a.contextLength());
            assertThat(b.encode(PROMPT)).containsExactly(a.encode(PROMPT));
            Completion ca = a.generator().generate(PROMPT, greedy);
            Completion cb = b.generator().generate(PROMPT, greedy);
            assertThat(cb.outputTokens()).hasSize(24).containsExactly(ca.outputTokens());
            assertThat(cb.text()).isEqualTo(ca.text());
            assertThat(b.describe()).contains("3 layers", "dim 64", "vocab 512");
        }
    }

    /** The logits at every position of {@code tokens}, in one step, through the pieces Model.load uses. */
    static float[] logits(Path path, int[] tokens) {
        try (Arena arena = Arena.ofShared()) {
            LlamaCheckpoint checkpoint = LlamaCheckpoint.open(path, arena);
            var config = checkpoint.config();
            Backend backend = new CpuBackendProvider().create(new BackendConfig(1, 0));
            try {
                LlamaWeights weights = LlamaWeights.load(checkpoint.tensors(), config, backend);
                KvCache kv = new KvCache(backend, config.layers(), config.kvHeads(), config.headDim(), 4, 16);
                LlamaGraph graph = new LlamaGraph(config, weights, backend, kv, tokens.length);
                float[] out = new float[tokens.length * config.vocabularySize()];
                BatchLayout layout = new BatchLayout(kv.blockSize());
                try (KvSequence seq = kv.newSequence()) {
                    seq.reserve(tokens.length);
                    layout.addSequence(seq.blockTable(), seq.blockCount());
                    for (int p = 0; p < tokens.length; p++) {
                        layout.addToken(0, tokens[p], p, true);
                    }
                    graph.forward(layout, out);
                }
                return out;
            } finally {
                backend.close();
            }
        }
    }

    private static int[] randomTokens(int vocab, int n) {
        Random random = new Random(5);
        int[] t = new int[n];
        t[0] = SyntheticVocabulary.BOS_ID;
        for (int i = 1; i < n; i++) {
            t[i] = random.nextInt(3, vocab);
        }
        return t;
    }

    @Test
    void chatTemplateFromTokenizerConfigOrChatTemplateJinja() throws IOException {
        Path hf = hf(TINY, DType.F32, 1, HfDirectoryWriter.DEFAULT_SHARD_LIMIT);
        try (Arena arena = Arena.ofShared()) {
            assertThat(LlamaCheckpoint.open(hf, arena).chatTemplate()).isEqualTo(TEMPLATE);
        }
        Files.writeString(hf.resolve("chat_template.jinja"), "{{ messages[0].content }}");
        try (Arena arena = Arena.ofShared()) {
            assertThat(LlamaCheckpoint.open(hf, arena).chatTemplate()).isEqualTo("{{ messages[0].content }}");
        }
    }

    @Test
    void brokenDirectoriesGiveTypedErrors() throws IOException {
        Path hf = hf(TINY_TIED, DType.F32, 1, HfDirectoryWriter.DEFAULT_SHARD_LIMIT);
        Path config = hf.resolve("config.json");
        String good = Files.readString(config);

        // Untied, but the file has no lm_head.weight: an error, not a silent fallback to the embedding.
        Files.writeString(config, good.replace("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false"));
        assertThat(loadFails(hf)).hasMessageContaining("lm_head.weight").hasMessageContaining("tie_word_embeddings");

        Files.writeString(config, good.replace("LlamaForCausalLM", "GPTNeoXForCausalLM"));
        assertThat(loadFails(hf)).hasMessageContaining("GPTNeoXForCausalLM").hasMessageContaining("config.json");

        // Declared Qwen2, whose attention has biases, without them: the first missing one is named.
        Files.writeString(config, good.replace("LlamaForCausalLM", "Qwen2ForCausalLM"));
        assertThat(loadFails(hf)).hasMessageContaining("missing required tensor 'model.layers.0.self_attn.q_proj.bias'");

        Files.writeString(config, good.replace("\"hidden_size\": 64,", ""));
        assertThat(loadFails(hf)).hasMessageContaining("\"hidden_size\" is missing").hasMessageContaining("config.json");

        Files.writeString(config, good.replace("\"head_dim\": 16", "\"head_dim\": 8"));
        assertThat(loadFails(hf)).hasMessageContaining("q_proj");

        Files.writeString(config, good);
        Files.delete(hf.resolve("tokenizer.json"));
        assertThat(loadFails(hf)).hasMessageContaining("tokenizer.json");

        Files.delete(config);
        assertThat(loadFails(hf)).hasMessageContaining("config.json");
    }

    private static Throwable loadFails(Path path) {
        Throwable t = catchThrowable(() -> Model.load(path).close());
        assertThat(t).isInstanceOf(ModelFormatException.class);
        return t;
    }

    /**
     * The synthetic vocabulary's tokenizer.json and tokenizer_config.json as {@code peregrine synth
     * --format hf} writes them, and a chat template (chat_template.jinja, where recent transformers
     * saves it).
     */
    static void writeTokenizer(Path dir, int size) throws IOException {
        SyntheticHfTokenizer.write(dir, size);
        Files.writeString(dir.resolve("chat_template.jinja"), TEMPLATE);
    }
}
