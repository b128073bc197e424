package dev.peregrine.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.Model;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code peregrine synth}, run in-process. */
class SynthCommandTest {
    @TempDir
    Path dir;

    private static PeregrineCliTest.Result run(String... args) {
        return PeregrineCliTest.run(args);
    }

    @Test
    void writesANamedShapeThatLoads() {
        Path file = dir.resolve("tiny.gguf");
        PeregrineCliTest.Result r = run("synth", "--shape", "tiny", "--dtype", "q8_0", "--seed", "3", "-o", file.toString());
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).startsWith("wrote " + file + " (1 file): tiny: llama, dim 64, 3 layers")
                .contains("q8_0, seed 3, 195,008 parameters");
        try (Model model = Model.load(file)) {
            assertThat(model.vocabularySize()).isEqualTo(512);
        }
    }

    /** Overriding a size of a Qwen3 shape keeps what makes it Qwen3: its own head size and the q/k norms. */
    @Test
    void overridingASizeKeepsAQwen3ShapesHeadSizeAndNorms() {
        Path file = dir.resolve("qwen3.gguf");
        PeregrineCliTest.Result r = run("synth", "--shape", "qwen3-tiny", "--layers", "1", "--dtype", "f32", "-o", file.toString());
        assertThat(r.status()).as(r.err()).isZero();
        try (Model model = Model.load(file)) {
            assertThat(model.generator().generate("x", dev.peregrine.GenerationConfig.greedy().maxTokens(2)).outputTokens())
                    .hasSize(2);
        }
        dev.peregrine.synth.ModelShape base = dev.peregrine.synth.ModelShape.named("qwen3-tiny");
        try (var arena = java.lang.foreign.Arena.ofConfined()) {
            var gguf = dev.peregrine.format.gguf.GgufFile.open(file, arena);
            assertThat(gguf.findTensor("blk.0.attn_q_norm.weight")).isPresent();
            assertThat(gguf.metadata().optInt("qwen3.attention.key_length")).hasValue(base.headDim());
        }
    }

    @Test
    void writesExplicitSizesAndHfDirectories() throws IOException {
        Path file = dir.resolve("custom.gguf");
        PeregrineCliTest.Result r = run("synth", "--dim", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2",
                "--ffn", "96", "--vocab", "300", "--ctx", "256", "--tied", "-o", file.toString());
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).contains("custom: llama, dim 64, 2 layers, 4 heads (2 KV), FFN 96, vocab 300, context 256, tied embeddings, f16");
        try (Model model = Model.load(file)) {
            assertThat(model.contextLength()).isEqualTo(256);
        }

        Path hf = dir.resolve("hf");
        r = run("synth", "--shape", "tiny", "--format", "hf", "--dtype", "bf16", "-o", hf.toString());
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).contains("(5 files)");
        try (Stream<Path> files = Files.list(hf)) {
            assertThat(files.map(p -> p.getFileName().toString())).containsExactlyInAnyOrder("config.json",
                    "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json");
        }

        r = run("info", "-m", hf.toString());
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out())
                .contains("Hugging Face directory, 1 safetensors file(s), 30 tensors")
                .contains("\"architectures\": [")
                .containsPattern("model.layers.2.self_attn.q_proj.weight +BF16 +\\[64, 64\\]")
                .contains("model.embed_tokens.weight")
                .contains("model: ").doesNotContain("does not load");
    }

    /** synth --format hf writes a directory that generate loads, with the greedy tokens of the GGUF form. */
    @Test
    void hfDirectoryGeneratesTheGgufFormsGreedyTokens() {
        Path gguf = dir.resolve("tiny.gguf");
        Path hf = dir.resolve("tiny-hf");
        for (String[] format : List.of(new String[] {"--format", "gguf", "-o", gguf.toString()},
                new String[] {"--format", "hf", "-o", hf.toString()})) {
            PeregrineCliTest.Result r = run(Stream.concat(
                    Stream.of("synth", "--shape", "tiny", "--dtype", "f32", "--seed", "5"), Stream.of(format))
                    .toArray(String[]::new));
            assertThat(r.status()).as(r.err()).isZero();
        }
        String prompt = "Once upon a time, there was a little dog";
        List<?> fromGguf = outputIds(gguf, prompt);
        assertThat(fromGguf).hasSize(32);
        assertThat(outputIds(hf, prompt)).isEqualTo(fromGguf);
        // the prompt is tokenized alike, with BOS
        assertThat(field(hf, prompt, "prompt_ids")).isEqualTo(field(gguf, prompt, "prompt_ids"));
        assertThat(field(hf, prompt, "text")).isEqualTo(field(gguf, prompt, "text"));
    }

    private static List<?> outputIds(Path model, String prompt) {
        return (List<?>) field(model, prompt, "output_ids");
    }

    private static Object field(Path model, String prompt, String name) {
        PeregrineCliTest.Result r = run("generate", "-m", model.toString(), "-p", prompt, "--temp", "0", "-n", "32",
                "--json");
        assertThat(r.status()).as(r.err()).isZero();
        return ((Map<?, ?>) PeregrineCliTest.MiniJson.parse(r.out().strip())).get(name);
    }

    @Test
    void writesTheQ4_K_MMix() {
        Path file = dir.resolve("k.gguf");
        PeregrineCliTest.Result r = run("synth", "--dim", "256", "--layers", "2", "--heads", "4", "--ffn", "512",
                "--vocab", "300", "--dtype", "Q4_K_M", "-o", file.toString());
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).contains("custom: llama, dim 256, 2 layers", ", q4_k_m, seed 0");
        try (Model model = Model.load(file)) {
            assertThat(model.vocabularySize()).isEqualTo(300);
        }
    }

    /** llama-quantize's Q4_0 without --pure: Q4_0 matrices, the (tied) output projection Q6_K. */
    @Test
    void outputTypeSetsTheOutputProjectionApart() {
        Path file = dir.resolve("q4.gguf");
        PeregrineCliTest.Result r = run("synth", "--dim", "256", "--layers", "2", "--heads", "4", "--ffn", "512",
                "--vocab", "300", "--tied", "--dtype", "q4_0", "--output-type", "Q6_K", "-o", file.toString());
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).contains(", q4_0, output q6_k, seed 0");
        PeregrineCliTest.Result info = run("info", "-m", file.toString());
        assertThat(info.status()).as(info.err()).isZero();
        assertThat(info.out()).containsPattern("token_embd\\.weight\\s.*Q6_K").containsPattern("blk\\.1\\.ffn_down\\.weight\\s.*Q4_0");
        PeregrineCliTest.Result g = run("generate", "-m", file.toString(), "-p", "Once", "--temp", "0", "-n", "4");
        assertThat(g.status()).as(g.err()).isZero();
    }

    @Test
    void vocabFromSetsTheVocabularySize() {
        Path vocab = sharedDir().resolve("models/tokenizers/ggml-vocab-llama-spm.gguf");
        assertThat(vocab).as("the shared tokenizer file").isRegularFile();
        Path file = dir.resolve("spm.gguf");
        PeregrineCliTest.Result r = run("synth", "--shape", "tiny", "--vocab-from", vocab.toString(), "-o", file.toString());
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).contains("vocab 32000");
        try (Model model = Model.load(file)) {
            assertThat(model.vocabularySize()).isEqualTo(32000);
        }
    }

    @Test
    void qwenShapesKeepTheirFamilyWhenResized() {
        Path file = dir.resolve("q.gguf");
        PeregrineCliTest.Result r = run("synth", "--shape", "qwen2.5-0.5b", "--dim", "64", "--heads", "4", "--kv-heads", "2",
                "--layers", "1", "--ffn", "64", "--vocab", "300", "-o", file.toString());
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).contains("qwen2.5-0.5b: qwen2, dim 64", "q/k/v biases");
        PeregrineCliTest.Result g = run("generate", "-m", file.toString(), "-p", "Once", "--temp", "0", "-n", "4");
        assertThat(g.status()).as(g.err()).isZero();
    }

    /** Each bad request: exit status 1 and exactly one line saying what is wrong. */
    @Test
    void badCombinationsFailWithOneClearLine() {
        String out = dir.resolve("x.gguf").toString();
        assertFails("peregrine: heads (5) must divide dim (64)",
                "synth", "--dim", "64", "--layers", "1", "--heads", "5", "--ffn", "64", "--vocab", "300", "-o", out);
        assertFails("peregrine: unknown shape 'llama9' (known: llama3.2-1b, smollm2-135m, qwen2.5-0.5b, llama3.1-8b, qwen3-0.6b, gemma2-2b, gemma3-1b, phi3-mini, tiny, qwen3-tiny, qwen2-tiny, mistral-tiny, gemma2-tiny, gemma3-tiny, phi3-tiny)",
                "synth", "--shape", "llama9", "-o", out);
        assertFails("peregrine: --format hf stores f32, f16 or bf16 tensors, not q8_0 (quantised types are GGUF-only)",
                "synth", "--shape", "tiny", "--format", "hf", "--dtype", "q8_0", "-o", dir.resolve("hf").toString());
        assertFails("peregrine: unknown --dtype 'iq2_xxs' (known: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k,"
                        + " q5_k, q6_k, iq4_nl, iq4_xs, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m)",
                "synth", "--shape", "tiny", "--dtype", "iq2_xxs", "-o", out);
        assertFails("peregrine: unknown --output-type 'q4_k_m' (known: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k,"
                        + " q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs)",
                "synth", "--shape", "tiny", "--dtype", "q4_0", "--output-type", "q4_k_m", "-o", out);
        assertFails("peregrine: q6_k stores rows in blocks of 256 values: dim 64 is not a multiple of 256",
                "synth", "--shape", "tiny", "--dtype", "q4_0", "--output-type", "q6_k", "-o", out);
        assertFails("peregrine: --output-type applies to --format gguf (hf directories hold one type)",
                "synth", "--shape", "tiny", "--format", "hf", "--output-type", "f16", "-o", dir.resolve("hf").toString());
        assertFails("peregrine: unknown --format 'onnx' (known: gguf, hf)",
                "synth", "--shape", "tiny", "--format", "onnx", "-o", out);
        assertFails("peregrine: --vocab-from applies to --format gguf (hf directories get the synthetic vocabulary's tokenizer.json)",
                "synth", "--shape", "tiny", "--format", "hf", "--vocab-from", "v.gguf", "-o", dir.resolve("hf").toString());
        assertFails("peregrine: --vocab and --vocab-from both set the vocabulary size: give one",
                "synth", "--shape", "tiny", "--vocab", "300", "--vocab-from", "v.gguf", "-o", out);
        assertFails("peregrine: q4_0 stores rows in blocks of 32 values: dim 48 is not a multiple of 32",
                "synth", "--dim", "48", "--layers", "1", "--heads", "4", "--ffn", "64", "--vocab", "300", "--dtype", "q4_0", "-o", out);
        assertFails("peregrine: q4_k stores rows in blocks of 256 values: dim 64 is not a multiple of 256",
                "synth", "--shape", "tiny", "--dtype", "q4_k", "-o", out);
        assertFails("peregrine: --format hf stores f32, f16 or bf16 tensors, not q4_k_m (quantised types are GGUF-only)",
                "synth", "--shape", "tiny", "--format", "hf", "--dtype", "q4_k_m", "-o", dir.resolve("hf").toString());
        assertFails("peregrine: a synthetic SentencePiece vocabulary needs more than 259 tokens (3 special + 256 byte tokens), got 100",
                "synth", "--shape", "tiny", "--vocab", "100", "-o", out);
        assertFails("peregrine: a synthetic SentencePiece vocabulary needs more than 259 tokens (3 special + 256 byte tokens), got 100",
                "synth", "--shape", "tiny", "--vocab", "100", "--format", "hf", "-o", dir.resolve("hf-small").toString());
        assertThat(dir.resolve("hf-small")).as("no weights written without their tokenizer").doesNotExist();
        assertFails("peregrine: " + dir + " is a directory: -o names the GGUF file to write",
                "synth", "--shape", "tiny", "-o", dir.toString());
        assertThat(dir.resolve("x.gguf")).doesNotExist();
    }

    @Test
    void missingOptionsAreUsageErrors() {
        PeregrineCliTest.Result r = run("synth", "--shape", "tiny");
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.errLines().getFirst()).isEqualTo("peregrine: missing -o PATH");
        r = run("synth", "--dim", "64", "-o", dir.resolve("y.gguf").toString());
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.errLines().getFirst()).isEqualTo("peregrine: missing --layers (or give --shape NAME)");
    }

    /** Maven sets peregrine.shared.dir; an IDE may run from the project root or from this module. */
    private static Path sharedDir() {
        String configured = System.getProperty("peregrine.shared.dir");
        if (configured != null) {
            return Path.of(configured);
        }
        Path fromRoot = Path.of("../shared");
        return Files.isDirectory(fromRoot) ? fromRoot : Path.of("../../shared");
    }

    private static void assertFails(String line, String... args) {
        PeregrineCliTest.Result r = run(args);
        assertThat(r.status()).as(String.join(" ", args)).isEqualTo(1);
        assertThat(r.errLines()).as(String.join(" ", args)).containsExactly(line);
        assertThat(r.out()).isEmpty();
    }
}
