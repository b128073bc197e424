package dev.peregrine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.hf.HfConfig;
import dev.peregrine.format.hf.HfLlamaConfig;

import dev.peregrine.tensor.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** config.json to {@link LlamaConfig}: the keys, transformers' defaults, and what is refused. */
class LlamaConfigHuggingFaceTest {
    /** Llama 3.2 1B's config.json, less rope_scaling (see {@link #llama32RopeScaling}). */
    private static final String LLAMA_3_2 = """
            {
              "architectures": ["LlamaForCausalLM"],
              "attention_bias": false,
              "attention_dropout": 0.0,
              "bos_token_id": 128000,
              "eos_token_id": [128001, 128008, 128009],
              "head_dim": 64,
              "hidden_act": "silu",
              "hidden_size": 2048,
              "initializer_range": 0.02,
              "intermediate_size": 8192,
              "max_position_embeddings": 131072,
              "mlp_bias": false,
              "model_type": "llama",
              "num_attention_heads": 32,
              "num_hidden_layers": 16,
              "num_key_value_heads": 8,
              "pretraining_tp": 1,
              "rms_norm_eps": 1e-05,
              "rope_scaling": null,
              "rope_theta": 500000.0,
              "tie_word_embeddings": true,
              "torch_dtype": "bfloat16",
              "vocab_size": 128256,
              "use_cache": true
            }
            """;

    @TempDir
    Path dir;

    private HfConfig config(String json) throws IOException {
        Path file = dir.resolve("config.json");
        Files.writeString(file, json);
        return HfConfig.read(file);
    }

    private ModelFormatException rejected(String json) throws IOException {
        HfConfig c = config(json);
        Throwable t = catchThrowable(() -> LlamaConfig.fromHuggingFace(c));
        assertThat(t).isInstanceOf(ModelFormatException.class);
        assertThat(t.getMessage()).contains(dir.resolve("config.json").toString());
        return (ModelFormatException) t;
    }

    @Test
    void llama32() throws IOException {
        LlamaConfig c = LlamaConfig.fromHuggingFace(config(LLAMA_3_2));
        assertThat(c).isEqualTo(new LlamaConfig(2048, 16, 32, 8, 64, 8192, 128256, 131072, 1e-5f, 500000f, 64));
        assertThat(config(LLAMA_3_2).optInts("eos_token_id")).containsExactly(128001, 128008, 128009);
    }

    @Test
    void whatTheWriterWritesReadsBack() throws IOException {
        HfLlamaConfig w = new HfLlamaConfig(64, 160, 3, 4, 2, 16, 2048, 1e-5f, 10000f, 512, false, DType.F16, 1, 2);
        assertThat(LlamaConfig.fromHuggingFace(config(w.configJson())))
                .isEqualTo(new LlamaConfig(64, 3, 4, 2, 16, 160, 512, 2048, 1e-5f, 10000f, 16));
    }

    @Test
    void transformersDefaults() throws IOException {
        LlamaConfig c = LlamaConfig.fromHuggingFace(config("""
                {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
                 "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 300}"""));
        assertThat(c).isEqualTo(new LlamaConfig(64, 2, 4, 4, 16, 128, 300, 2048, 1e-6f, 10000f, 16));
    }

    @Test
    void mistralSlidesEveryLayerWhenItStatesAWindow() throws IOException {
        String mistral = LLAMA_3_2.replace("LlamaForCausalLM", "MistralForCausalLM");
        LlamaConfig none = LlamaConfig.fromHuggingFace(config(mistral.replace("\"use_cache\"", "\"sliding_window\": null, \"use_cache\"")));
        assertThat(none.layerWindows()).hasSize(16).containsOnly(0);
        LlamaConfig sliding = LlamaConfig.fromHuggingFace(config(mistral.replace("\"use_cache\"", "\"sliding_window\": 4096, \"use_cache\"")));
        assertThat(sliding.layerWindows()).hasSize(16).containsOnly(4096);
        // transformers' LlamaForCausalLM has no sliding window: stating one is refused, not ignored.
        assertThat(rejected(LLAMA_3_2.replace("\"use_cache\"", "\"sliding_window\": 4096, \"use_cache\"")))
                .hasMessageContaining("\"sliding_window\"");
    }

    @Test
    void missingRequiredKeysAreNamed() throws IOException {
        for (String key : new String[] {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "vocab_size", "architectures"}) {
            String json = LLAMA_3_2.replaceAll("\"" + key + "\": [^\\n]*\\n", "");
            assertThat(rejected(json)).as(key).hasMessageContaining("\"" + key + "\" is missing");
        }
    }

    @Test
    void layerCountsBeyondLlamaCppsLimitAreRefused() throws IOException {
        for (String count : new String[] {"0", "513", "2147483647"}) {
            assertThat(rejected(LLAMA_3_2.replace("\"num_hidden_layers\": 16", "\"num_hidden_layers\": " + count)))
                    .as(count).hasMessageContaining("\"num_hidden_layers\"").hasMessageContaining("it must be 1 to 512");
        }
    }

    @Test
    void mistypedKeysAreNamed() throws IOException {
        assertThat(rejected(LLAMA_3_2.replace("\"hidden_size\": 2048", "\"hidden_size\": \"2048\"")))
                .hasMessageContaining("\"hidden_size\" must be an integer");
        assertThat(rejected(LLAMA_3_2.replace("\"rope_theta\": 500000.0", "\"rope_theta\": true")))
                .hasMessageContaining("\"rope_theta\" must be a number");
        assertThat(rejected(LLAMA_3_2.replace("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 5")))
                .hasMessageContaining("invalid LlamaForCausalLM hyper-parameters");
        // A size that is not positive is named with its value (the message once listed a config of zeros).
        assertThat(rejected(LLAMA_3_2.replace("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 0")))
                .hasMessageEndingWith("invalid LlamaForCausalLM hyper-parameters: sizes must be positive, got KV heads 0");
    }

    @Test
    void unsupportedModelsAreRefusedByName() throws IOException {
        assertThat(LlamaConfig.fromHuggingFace(config(LLAMA_3_2.replace("LlamaForCausalLM", "Qwen2ForCausalLM"))).family())
                .isEqualTo(Family.QWEN2);
        assertThat(rejected(LLAMA_3_2.replace("LlamaForCausalLM", "GPTNeoXForCausalLM")))
                .hasMessageContaining("GPTNeoXForCausalLM")
                .hasMessageContaining("supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, "
                        + "Gemma2ForCausalLM, Gemma3ForCausalLM, Phi3ForCausalLM");
        assertThat(rejected(LLAMA_3_2.replace("\"attention_bias\": false", "\"attention_bias\": true")))
                .hasMessageContaining("\"attention_bias\"");
        assertThat(rejected(LLAMA_3_2.replace("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"")))
                .hasMessageContaining("\"hidden_act\"");
        assertThat(rejected(LLAMA_3_2.replace("\"rope_scaling\": null",
                "\"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 4.0}")))
                .hasMessageContaining("\"rope_scaling\"").hasMessageContaining("dynamic");
        assertThat(rejected(LLAMA_3_2.replace("\"rope_scaling\": null",
                "\"rope_scaling\": {\"type\": \"longrope\", \"factor\": 4.0}")))
                .hasMessageContaining("longrope").hasMessageContaining("supported: null, default, linear, llama3, yarn");
    }

    /** Llama 3.2 1B's real rope_scaling. */
    @Test
    void llama32RopeScaling() throws IOException {
        LlamaConfig c = LlamaConfig.fromHuggingFace(config(LLAMA_3_2.replace("\"rope_scaling\": null",
                "\"rope_scaling\": {\"factor\": 32.0, \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0, "
                        + "\"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}")));
        assertThat(c.ropeScaling()).isEqualTo(new RopeScaling.Llama3(32, 1, 4, 8192));
        assertThat(rejected(LLAMA_3_2.replace("\"rope_scaling\": null",
                "\"rope_scaling\": {\"factor\": 32.0, \"rope_type\": \"llama3\"}")))
                .hasMessageContaining("\"rope_scaling.low_freq_factor\" is missing");
        assertThat(rejected(LLAMA_3_2.replace("\"rope_scaling\": null",
                "\"rope_scaling\": {\"factor\": 8.0, \"high_freq_factor\": 1.0, \"low_freq_factor\": 4.0, "
                        + "\"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}")))
                .hasMessageContaining("\"rope_scaling\" is invalid").hasMessageContaining("low_freq_factor");
    }

    @Test
    void linearAndYarnRopeScaling() throws IOException {
        assertThat(LlamaConfig.fromHuggingFace(config(LLAMA_3_2.replace("\"rope_scaling\": null",
                "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}"))).ropeScaling())
                .isEqualTo(new RopeScaling.Linear(2));
        assertThat(LlamaConfig.fromHuggingFace(config(LLAMA_3_2.replace("\"rope_scaling\": null",
                "\"rope_scaling\": {\"rope_type\": \"default\"}"))).ropeScaling())
                .isEqualTo(RopeScaling.NONE);
        // Qwen-style yarn: the defaults (betas 32/1, attention factor 0.1 ln 4 + 1, truncation).
        assertThat(LlamaConfig.fromHuggingFace(config(LLAMA_3_2.replace("\"rope_scaling\": null",
                "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 32768}")))
                .ropeScaling())
                .isEqualTo(new RopeScaling.Yarn(4, 32768, 32, 1, 0.1 * Math.log(4) + 1, true));
        // Without original_max_position_embeddings, max_position_embeddings; explicit values are kept.
        assertThat(LlamaConfig.fromHuggingFace(config(LLAMA_3_2.replace("\"rope_scaling\": null",
                "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 2.0, \"beta_fast\": 16.0, \"beta_slow\": 2.0, "
                        + "\"attention_factor\": 1.5, \"truncate\": false}"))).ropeScaling())
                .isEqualTo(new RopeScaling.Yarn(2, 131072, 16, 2, 1.5, false));
        // DeepSeek's mscale pair.
        RopeScaling.Yarn deepseek = (RopeScaling.Yarn) LlamaConfig.fromHuggingFace(config(LLAMA_3_2.replace("\"rope_scaling\": null",
                "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 40.0, \"mscale\": 1.0, \"mscale_all_dim\": 0.707}"))).ropeScaling();
        assertThat(deepseek.attentionFactor())
                .isCloseTo((0.1 * Math.log(40) + 1) / (0.1 * 0.707 * Math.log(40) + 1), org.assertj.core.data.Offset.offset(1e-12));
        assertThat(rejected(LLAMA_3_2.replace("\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"linear\"}")))
                .hasMessageContaining("\"rope_scaling.factor\" is missing");
    }

    /** transformers 5 writes rope_theta and the scaling into rope_parameters. */
    @Test
    void ropeParameters() throws IOException {
        LlamaConfig c = LlamaConfig.fromHuggingFace(config(LLAMA_3_2.replace("\"rope_scaling\": null,", "")
                .replace("\"rope_theta\": 500000.0,", "\"rope_parameters\": {\"rope_theta\": 250000.0, \"rope_type\": \"linear\", \"factor\": 2.0},")));
        assertThat(c.ropeTheta()).isEqualTo(250000f);
        assertThat(c.ropeScaling()).isEqualTo(new RopeScaling.Linear(2));
    }
}
