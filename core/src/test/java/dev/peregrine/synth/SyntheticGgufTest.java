package dev.peregrine.synth;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.gguf.GgufMetadata;
import dev.peregrine.format.gguf.GgufTensorInfo;
import dev.peregrine.format.gguf.GgufValueType;
import dev.peregrine.format.gguf.GgufWriter;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Dequant;
import dev.peregrine.tensor.Quantize;
import dev.peregrine.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Synthetic models written as GGUF, read back through the GGUF reader. */
class SyntheticGgufTest {
    static final ModelShape TINY = ModelShape.named("tiny");

    @TempDir
    Path dir;

    static Path writeGguf(Path file, ModelShape shape, DType type, long seed, int threads) {
        SyntheticModel.of(shape, seed).writeGguf(file, type, TokenizerMetadata.synthetic(shape.vocab()), threads);
        return file;
    }

    /** llama.cpp's tensor names and ggml shapes for a Llama model, with the type each is stored as. */
    record Expected(String name, DType type, long... shape) {
    }

    static List<Expected> expectedTensors(ModelShape s, DType type) {
        long d = s.dim();
        long kv = (long) s.kvHeads() * (s.dim() / s.heads());
        List<Expected> e = new ArrayList<>();
        e.add(new Expected("token_embd.weight", type, d, s.vocab()));
        for (int i = 0; i < s.layers(); i++) {
            String p = "blk." + i + ".";
            e.add(new Expected(p + "attn_norm.weight", DType.F32, d));
            e.add(new Expected(p + "attn_q.weight", type, d, d));
            e.add(new Expected(p + "attn_k.weight", type, d, kv));
            e.add(new Expected(p + "attn_v.weight", type, d, kv));
            e.add(new Expected(p + "attn_output.weight", type, d, d));
            e.add(new Expected(p + "ffn_norm.weight", DType.F32, d));
            e.add(new Expected(p + "ffn_gate.weight", type, d, s.ffn()));
            e.add(new Expected(p + "ffn_up.weight", type, d, s.ffn()));
            e.add(new Expected(p + "ffn_down.weight", type, s.ffn(), d));
        }
        e.add(new Expected("output_norm.weight", DType.F32, d));
        if (!s.tiedEmbeddings()) {
            e.add(new Expected("output.weight", type, d, s.vocab()));
        }
        return e;
    }

    /** Every type whose blocks fit TINY's rows of 64 and 160 values (K-quants: kQuantFileTypes...). */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"}, mode = EnumSource.Mode.EXCLUDE)
    void everyDtypeRoundTripsThroughTheReaderWithLlamaCppsConventions(DType type) {
        Path file = writeGguf(dir.resolve("tiny-" + type + ".gguf"), TINY, type, 0, 0);
        try (Arena arena = Arena.ofConfined()) {
            GgufFile f = GgufFile.open(file, arena);
            assertThat(f.version()).isEqualTo(3);
            assertThat(f.alignment()).isEqualTo(32);
            List<Expected> actual = f.tensorInfos().stream()
                    .map(t -> new Expected(t.name(), t.type(), t.shape())).toList();
            assertThat(actual).usingElementComparator((a, b) -> a.name().equals(b.name()) && a.type() == b.type()
                            && Arrays.equals(a.shape(), b.shape()) ? 0 : 1)
                    .containsExactlyElementsOf(expectedTensors(TINY, type));

            GgufMetadata m = f.metadata();
            // llama.cpp writes counts as UINT32 and floats as FLOAT32.
            Map<String, Object> u32 = Map.of(
                    "general.alignment", 32L, "llama.block_count", 3L, "llama.context_length", 2048L,
                    "llama.embedding_length", 64L, "llama.feed_forward_length", 160L,
                    "llama.attention.head_count", 4L, "llama.attention.head_count_kv", 2L,
                    "llama.vocab_size", 512L, "llama.rope.dimension_count", 16L, "general.quantization_version", 2L);
            u32.forEach((k, v) -> {
                assertThat(m.typeOf(k)).as(k).isEqualTo(GgufValueType.UINT32);
                assertThat(m.get(k)).as(k).contains(v);
            });
            assertThat(m.typeOf("llama.rope.freq_base")).isEqualTo(GgufValueType.FLOAT32);
            assertThat(m.getFloat("llama.rope.freq_base")).isEqualTo(10000f);
            assertThat(m.typeOf("llama.attention.layer_norm_rms_epsilon")).isEqualTo(GgufValueType.FLOAT32);
            assertThat(m.getFloat("llama.attention.layer_norm_rms_epsilon")).isEqualTo(1e-5f);
            assertThat(m.getString("general.architecture")).isEqualTo("llama");
            assertThat(m.asMap().keySet()).first().isEqualTo("general.architecture");
            // llama_ftype: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, MOSTLY_Q4_1 3, MOSTLY_Q8_0 7,
            // MOSTLY_Q5_0 8, MOSTLY_Q5_1 9, MOSTLY_Q2_K 10, MOSTLY_Q3_K_S 11, MOSTLY_Q4_K_S 14, MOSTLY_Q5_K_S 16,
            // MOSTLY_Q6_K 18, MOSTLY_IQ4_NL 25, MOSTLY_IQ4_XS 30, MOSTLY_BF16 32
            long fileType = switch (type) {
                case F32 -> 0;
                case F16 -> 1;
                case Q4_0 -> 2;
                case Q4_1 -> 3;
                case Q8_0 -> 7;
                case Q5_0 -> 8;
                case Q5_1 -> 9;
                case Q2_K -> 10;
                case Q3_K -> 11;
                case Q4_K -> 14;
                case Q5_K -> 16;
                case Q6_K -> 18;
                case IQ4_NL -> 25;
                case IQ4_XS -> 30;
                case BF16 -> 32;
            };
            assertThat(m.typeOf("general.file_type")).isEqualTo(GgufValueType.UINT32);
            assertThat(m.getLong("general.file_type")).isEqualTo(fileType);
            assertThat(m.getString("tokenizer.ggml.model")).isEqualTo("llama");
            assertThat(m.optStringArray("tokenizer.ggml.tokens").orElseThrow()).hasSize(512);
            assertThat(m.getArray("tokenizer.ggml.token_type").elementType()).isEqualTo(GgufValueType.INT32);
            assertThat(m.getArray("tokenizer.ggml.scores").elementType()).isEqualTo(GgufValueType.FLOAT32);
            assertThat(m.typeOf("tokenizer.ggml.bos_token_id")).isEqualTo(GgufValueType.UINT32);
        }
    }

    /** llama.cpp's vocabulary loader looks up <|endoftext|> in any file named phi3: a Phi-3 shape's vocabulary holds it. */
    @Test
    void aPhi3ShapesVocabularyHoldsTheEndOfTextTokenLlamaCppLooksUp() {
        ModelShape phi3 = ModelShape.named("phi3-tiny");
        var tokenizer = dev.peregrine.tokenizer.Tokenizers.fromGguf(
                GgufMetadata.of(Path.of("phi3"), tokenizerValues(TokenizerMetadata.synthetic(phi3))));
        int last = phi3.vocab() - 1;
        assertThat(tokenizer.decode(new int[] {last})).isEmpty(); // a control token, not text
        assertThat(tokenizer.encode("a<|endoftext|>", false, true)).endsWith(last);
        var plain = dev.peregrine.tokenizer.Tokenizers.fromGguf(
                GgufMetadata.of(Path.of("tiny"), tokenizerValues(TokenizerMetadata.synthetic(phi3.vocab()))));
        assertThat(tokenizer.encode("Once upon a time", true, false)).containsExactly(plain.encode("Once upon a time", true, false));
    }

    private static Map<String, Object> tokenizerValues(TokenizerMetadata t) {
        Map<String, Object> values = new java.util.LinkedHashMap<>();
        t.entries().forEach(e -> values.put(e.key(), e.value()));
        return values;
    }

    @Test
    void tinyIsWrittenQuicklyAndTheSameSeedGivesTheSameBytesWhateverTheThreads() throws IOException {
        long t0 = System.nanoTime();
        Path a = writeGguf(dir.resolve("a.gguf"), TINY, DType.Q8_0, 42, 1);
        long millis = (System.nanoTime() - t0) / 1_000_000;
        System.out.println("[SyntheticGgufTest] tiny Q8_0 written in " + millis + " ms");
        assertThat(millis).as("milliseconds to write tiny").isLessThan(5_000);
        Path b = writeGguf(dir.resolve("b.gguf"), TINY, DType.Q8_0, 42, 3);
        assertThat(Files.readAllBytes(b)).isEqualTo(Files.readAllBytes(a));
    }

    @Test
    void aDifferentSeedGivesDifferentWeightsOfTheSameLayout() {
        Path a = writeGguf(dir.resolve("a.gguf"), TINY, DType.F32, 1, 0);
        Path b = writeGguf(dir.resolve("b.gguf"), TINY, DType.F32, 2, 0);
        try (Arena arena = Arena.ofConfined()) {
            GgufFile fa = GgufFile.open(a, arena);
            GgufFile fb = GgufFile.open(b, arena);
            assertThat(fa.tensorInfos()).isEqualTo(fb.tensorInfos());
            for (GgufTensorInfo t : fa.tensorInfos()) {
                float[] va = Dequant.toFloat(fa.tensor(t.name()));
                float[] vb = Dequant.toFloat(fb.tensor(t.name()));
                if (t.name().endsWith("norm.weight")) {
                    assertThat(va).isEqualTo(vb);
                } else {
                    assertThat(va).as(t.name()).isNotEqualTo(vb);
                }
            }
        }
    }

    /**
     * The intended scales: embeddings and input projections 1/sqrt(fan_in), residual outputs a
     * further 1/sqrt(2 layers), norms exactly 1; values bounded by the Irwin-Hall range
     * 2 sqrt(3) standard deviations; rows of one tensor are not copies of each other.
     */
    @Test
    void valuesHaveTheIntendedScale() {
        Path file = writeGguf(dir.resolve("f32.gguf"), TINY, DType.F32, 5, 0);
        double residual = Math.sqrt(2 * 3);
        Map<String, Double> expectedStd = Map.of(
                "token_embd.weight", 1 / Math.sqrt(64),
                "output.weight", 1 / Math.sqrt(64),
                "blk.1.attn_q.weight", 1 / Math.sqrt(64),
                "blk.1.ffn_up.weight", 1 / Math.sqrt(64),
                "blk.2.attn_output.weight", 1 / Math.sqrt(64) / residual,
                "blk.0.ffn_down.weight", 1 / Math.sqrt(160) / residual);
        try (Arena arena = Arena.ofConfined()) {
            GgufFile f = GgufFile.open(file, arena);
            expectedStd.forEach((name, std) -> {
                float[] v = Dequant.toFloat(f.tensor(name));
                double mean = Arrays.stream(toDouble(v)).average().orElseThrow();
                double sd = Math.sqrt(Arrays.stream(toDouble(v)).map(x -> (x - mean) * (x - mean)).average().orElseThrow());
                assertThat(mean).as("%s mean", name).isBetween(-0.05 * std, 0.05 * std);
                assertThat(sd).as("%s std", name).isBetween(0.95 * std, 1.05 * std);
                double max = Arrays.stream(toDouble(v)).map(Math::abs).max().orElseThrow();
                assertThat(max).as("%s max", name).isLessThanOrEqualTo(2 * Math.sqrt(3) * std * 1.0001);
                int rowLength = (int) f.tensor(name).rowLength();
                assertThat(Arrays.copyOfRange(v, 0, rowLength)).isNotEqualTo(Arrays.copyOfRange(v, rowLength, 2 * rowLength));
            });
            for (String norm : List.of("blk.0.attn_norm.weight", "blk.2.ffn_norm.weight", "output_norm.weight")) {
                float[] ones = new float[64];
                Arrays.fill(ones, 1f);
                assertThat(Dequant.toFloat(f.tensor(norm))).isEqualTo(ones);
            }
        }
    }

    /** Every dtype encodes the same network: the F32 values, rounded by that dtype's definition. */
    @Test
    void everyDtypeHoldsTheF32ValuesEncoded() {
        Path f32 = writeGguf(dir.resolve("f32.gguf"), TINY, DType.F32, 9, 0);
        try (Arena arena = Arena.ofConfined()) {
            GgufFile reference = GgufFile.open(f32, arena);
            for (DType type : List.of(DType.F16, DType.BF16, DType.Q8_0, DType.Q4_0)) {
                GgufFile other = GgufFile.open(writeGguf(dir.resolve(type + ".gguf"), TINY, type, 9, 0), arena);
                for (GgufTensorInfo info : reference.tensorInfos()) {
                    float[] x = Dequant.toFloat(reference.tensor(info.name()));
                    Tensor t = other.tensor(info.name());
                    byte[] expected = new byte[(int) t.type().bytesFor(x.length)];
                    Quantize.fromFloat(t.type(), x, 0, x.length, MemorySegment.ofArray(expected), 0);
                    assertThat(t.data().toArray(ValueLayout.JAVA_BYTE)).as("%s %s", type, info.name())
                            .isEqualTo(expected);
                }
            }
        }
    }

    /**
     * A shape for K-quants: rows of 256 and 512 values, and 8 layers, of which llama.cpp's
     * use_more_bits (i &lt; n/8, i &gt;= 7n/8, or (i - n/8) % 3 == 2) picks 0, 3, 6 and 7.
     */
    static final ModelShape K_SHAPE = new ModelShape("k", 256, 8, 4, 2, 512, 512, 256, 1e4f, 1e-5f, false, false);

    /**
     * Pure Q4_K, Q5_K and Q6_K files and llama.cpp's K-quant mixes, untied and tied: each tensor's
     * type as llama.cpp's quantiser picks it (written out by hand below for 8 layers),
     * general.file_type, and the bytes: the F32 file's values encoded as that type.
     */
    @Test
    void kQuantFileTypesStoreEachMatrixAsLlamaCppDoes() {
        ModelShape tied = new ModelShape("k-tied", 256, 8, 4, 2, 512, 512, 256, 1e4f, 1e-5f, true, false);
        List<FileType> fileTypes = new ArrayList<>(List.of(FileType.of(DType.Q4_K), FileType.of(DType.Q5_K),
                FileType.of(DType.Q6_K)));
        fileTypes.addAll(FileType.MIXES);
        try (Arena arena = Arena.ofConfined()) {
            for (ModelShape shape : List.of(K_SHAPE, tied)) {
                GgufFile f32 = GgufFile.open(writeGguf(dir.resolve(shape.name() + ".gguf"), shape, DType.F32, 4, 0), arena);
                for (FileType fileType : fileTypes) {
                    Path path = dir.resolve(shape.name() + "-" + fileType.name() + ".gguf");
                    SyntheticModel.of(shape, 4).writeGguf(path, fileType, TokenizerMetadata.synthetic(shape.vocab()), 0);
                    GgufFile f = GgufFile.open(path, arena);
                    long expectedFileType = switch (fileType.name()) {
                        case "q3_k_s" -> 11;
                        case "q3_k_m" -> 12;
                        case "q3_k_l" -> 13;
                        case "q4_k", "q4_k_s" -> 14;
                        case "q4_k_m" -> 15;
                        case "q5_k", "q5_k_s" -> 16;
                        case "q5_k_m" -> 17;
                        default -> 18;
                    };
                    assertThat(f.metadata().getLong("general.file_type")).as(fileType.name()).isEqualTo(expectedFileType);
                    for (GgufTensorInfo info : f.tensorInfos()) {
                        DType expected = expectedKType(info.name(), fileType, shape.tiedEmbeddings());
                        assertStoredAs(f, f32, info, expected, shape.name() + " " + fileType.name() + " " + info.name());
                    }
                }
            }
        }
    }

    /** Tensor {@code info} of {@code f} is stored as {@code expected}: the F32 file's values encoded as that type. */
    private static void assertStoredAs(GgufFile f, GgufFile f32, GgufTensorInfo info, DType expected, String what) {
        assertThat(info.type()).as(what).isEqualTo(expected);
        float[] x = Dequant.toFloat(f32.tensor(info.name()));
        byte[] bytes = new byte[(int) expected.bytesFor(x.length)];
        Quantize.fromFloat(expected, x, 0, x.length, MemorySegment.ofArray(bytes), 0);
        assertThat(f.tensor(info.name()).data().toArray(ValueLayout.JAVA_BYTE)).as(what).isEqualTo(bytes);
    }

    /**
     * An output type set apart ({@code llama-quantize --output-tensor-type}), on a single-type file
     * and on a mix, untied and tied: the output projection (the token embedding when tied) takes
     * that type, every other matrix what the file type alone gives it, general.file_type stays the
     * file type's, and the bytes are the F32 file's values encoded as each tensor's type.
     */
    @Test
    void anOutputTypeSetApartStoresOnlyTheOutputProjectionAsThatType() {
        ModelShape tied = new ModelShape("k-tied", 256, 8, 4, 2, 512, 512, 256, 1e4f, 1e-5f, true, false);
        try (Arena arena = Arena.ofConfined()) {
            for (ModelShape shape : List.of(K_SHAPE, tied)) {
                GgufFile f32 = GgufFile.open(writeGguf(dir.resolve(shape.name() + ".gguf"), shape, DType.F32, 4, 0), arena);
                for (FileType plain : List.of(FileType.of(DType.Q4_0), FileType.Q4_K_M)) {
                    DType outputType = plain.mix() ? DType.Q8_0 : DType.Q6_K;
                    FileType fileType = plain.withOutputType(outputType);
                    assertThat(fileType.describe()).isEqualTo(plain.name() + ", output " + outputType.name().toLowerCase(Locale.ROOT));
                    Path path = dir.resolve(shape.name() + "-" + plain.name() + "-out.gguf");
                    SyntheticModel.of(shape, 4).writeGguf(path, fileType, TokenizerMetadata.synthetic(shape.vocab()), 0);
                    GgufFile f = GgufFile.open(path, arena);
                    assertThat(f.metadata().getLong("general.file_type")).isEqualTo(plain.mix() ? 15 : 2);
                    int outputs = 0;
                    for (GgufTensorInfo info : f.tensorInfos()) {
                        boolean output = info.name().equals("output.weight") || shape.tiedEmbeddings() && info.name().equals("token_embd.weight");
                        DType expected = output ? outputType : expectedKType(info.name(), plain, shape.tiedEmbeddings());
                        assertStoredAs(f, f32, info, expected, shape.name() + " " + fileType.describe() + " " + info.name());
                        outputs += output ? 1 : 0;
                    }
                    assertThat(outputs).as(shape.name()).isEqualTo(1);
                }
            }
        }
    }

    /**
     * The type llama-quantize gives tensor {@code name} of an 8-layer Llama model whose rows are
     * whole super-blocks, from llama_tensor_get_type's rules worked out by hand: use_more_bits picks
     * layers 0, 3, 6 and 7 of 8; no layer is below 8 / 16, only layer 0 below 8 / 8.
     */
    private static DType expectedKType(String name, FileType fileType, boolean tied) {
        if (name.endsWith("norm.weight")) {
            return DType.F32;
        }
        if (!fileType.mix()) {
            return fileType.base();
        }
        if (name.equals("output.weight") || tied && name.equals("token_embd.weight")) {
            return DType.Q6_K;
        }
        int layer = name.startsWith("blk.") ? Integer.parseInt(name.split("\\.")[1]) : -1;
        boolean moreBits = List.of(0, 3, 6, 7).contains(layer);
        String kind = name.endsWith("attn_v.weight") ? "attn_v" : name.endsWith("ffn_down.weight") ? "ffn_down"
                : name.endsWith("attn_output.weight") ? "attn_output" : "other";
        return switch (fileType.name() + " " + kind) {
            case "q3_k_m attn_v" -> layer < 2 ? DType.Q5_K : DType.Q4_K;
            case "q3_k_m ffn_down", "q3_k_m attn_output" -> DType.Q4_K;
            case "q3_k_l attn_v", "q3_k_l ffn_down", "q3_k_l attn_output" -> DType.Q5_K;
            case "q4_k_s attn_v" -> layer < 4 ? DType.Q5_K : DType.Q4_K;
            case "q4_k_s ffn_down" -> layer < 1 ? DType.Q5_K : DType.Q4_K;
            case "q4_k_m attn_v", "q4_k_m ffn_down", "q5_k_m attn_v", "q5_k_m ffn_down" -> moreBits ? DType.Q6_K : fileType.base();
            default -> fileType.base();
        };
    }

    /**
     * A model 288 wide (as SmolLM2's 576 and Qwen2.5-0.5B's 896, not a whole number of 256-value
     * super-blocks): in the mixes every matrix whose rows are 288 long takes llama.cpp's fallback
     * (Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; the output straight to Q8_0),
     * ffn_down (rows of 512) keeps its K-quant; the bytes are the F32 values encoded as that type.
     */
    @Test
    void mixesFallBackAsLlamaCppWhereRowsAreNotWholeSuperBlocks() {
        ModelShape narrow = new ModelShape("narrow", 288, 8, 4, 2, 512, 512, 256, 1e4f, 1e-5f, false, false);
        try (Arena arena = Arena.ofConfined()) {
            GgufFile f32 = GgufFile.open(writeGguf(dir.resolve("narrow.gguf"), narrow, DType.F32, 4, 0), arena);
            for (FileType fileType : FileType.MIXES) {
                Path path = dir.resolve("narrow-" + fileType.name() + ".gguf");
                SyntheticModel.of(narrow, 4).writeGguf(path, fileType, TokenizerMetadata.synthetic(narrow.vocab()), 0);
                GgufFile f = GgufFile.open(path, arena);
                Map<DType, Integer> counts = new java.util.EnumMap<>(DType.class);
                for (GgufTensorInfo info : f.tensorInfos()) {
                    DType kType = expectedKType(info.name(), fileType, false);
                    DType expected = info.name().endsWith("ffn_down.weight") || kType == DType.F32 ? kType
                            : switch (kType) {
                                case Q3_K -> DType.Q4_0;
                                case Q4_K -> DType.Q5_0;
                                case Q5_K -> DType.Q5_1;
                                default -> DType.Q8_0;
                            };
                    assertStoredAs(f, f32, info, expected, fileType.name() + " " + info.name());
                    counts.merge(expected, 1, Integer::sum);
                }
                if (fileType == FileType.Q4_K_M || fileType == FileType.Q5_K_M) {
                    // output + 4 attn_v as Q8_0, 4 ffn_down as Q6_K, 4 as the base K-quant.
                    assertThat(counts).as(fileType.name()).containsEntry(DType.Q8_0, 5).containsEntry(DType.Q6_K, 4)
                            .containsEntry(fileType.base(), 4);
                }
            }
        }
    }

    @Test
    void vocabFromCopiesARealTokenizerWithItsTypes() {
        Path source = TokenizerFilesPath.llamaSpm();
        TokenizerMetadata tok = TokenizerMetadata.copiedFrom(source);
        assertThat(tok.tokenCount()).isEqualTo(32000);
        assertThat(tok.model()).isEqualTo("llama");
        assertThat(tok.loadProblem()).isEmpty();
        assertThat(TokenizerMetadata.synthetic(300).loadProblem()).isEmpty();
        TokenizerMetadata unknown = new TokenizerMetadata("foo", 1,
                List.of(new TokenizerMetadata.Entry("tokenizer.ggml.model", GgufValueType.STRING, "foo")));
        assertThat(unknown.loadProblem()).hasValueSatisfying(p -> assertThat(p).contains("'foo' is not supported"));
        ModelShape shape = TINY.withVocab(tok.tokenCount());
        Path file = dir.resolve("spm.gguf");
        SyntheticModel.of(shape, 0).writeGguf(file, DType.Q8_0, tok, 0);
        try (Arena arena = Arena.ofConfined()) {
            GgufMetadata src = GgufFile.open(source, arena).metadata();
            GgufMetadata out = GgufFile.open(file, arena).metadata();
            List<String> keys = src.asMap().keySet().stream().filter(k -> k.startsWith("tokenizer.")).toList();
            assertThat(keys).contains("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.bos_token_id");
            for (String k : keys) {
                assertThat(out.typeOf(k)).as(k).isEqualTo(src.typeOf(k));
                assertThat(out.get(k).orElseThrow()).as(k).usingRecursiveComparison().isEqualTo(src.get(k).orElseThrow());
            }
            assertThat(GgufFile.open(file, arena).tensor("token_embd.weight").shape()).containsExactly(64, 32000);
        }
    }

    @Test
    void badRequestsAreRejectedBeforeWriting() throws IOException {
        Path file = dir.resolve("bad.gguf");
        SyntheticModel tiny = SyntheticModel.of(TINY, 0);
        assertThatThrownBy(() -> tiny.writeGguf(file, DType.F16, TokenizerMetadata.synthetic(600), 0))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("the tokenizer has 600 tokens but the shape's vocabulary is 512");
        ModelShape odd = new ModelShape("odd", 48, 1, 4, 2, 64, 300, 128, 1e4f, 1e-5f, false, false);
        assertThatThrownBy(() -> SyntheticModel.of(odd, 0).writeGguf(file, DType.Q8_0, TokenizerMetadata.synthetic(300), 0))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("q8_0 stores rows in blocks of 32 values: dim 48 is not a multiple of 32");
        ModelShape oddFfn = new ModelShape("odd", 64, 1, 4, 2, 100, 300, 128, 1e4f, 1e-5f, false, false);
        assertThatThrownBy(() -> SyntheticModel.of(oddFfn, 0).writeGguf(file, DType.Q4_0, TokenizerMetadata.synthetic(300), 0))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("ffn 100 is not a multiple of 32");
        // The output projection's rows are as long as the attention: 4 heads x 32 here, not dim or ffn.
        ModelShape q = ModelShape.named("qwen3-tiny");
        ModelShape narrowAttention = new ModelShape("narrow", 256, q.layers(), q.heads(), q.kvHeads(), 512, q.vocab(),
                q.contextLength(), q.ropeTheta(), q.rmsEps(), q.tiedEmbeddings(), q.headDim(), q.family(), 0, 0, 0);
        assertThatThrownBy(() -> SyntheticModel.of(narrowAttention, 0).writeGguf(file, DType.Q6_K,
                TokenizerMetadata.synthetic(narrowAttention.vocab()), 0))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("q6_k stores rows in blocks of 256 values: the attention width (heads x head size) "
                        + narrowAttention.heads() * narrowAttention.headDim() + " is not a multiple of 256");
        assertThatThrownBy(() -> tiny.writeGguf(file, DType.Q4_K, TokenizerMetadata.synthetic(512), 0))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("q4_k stores rows in blocks of 256 values: dim 64 is not a multiple of 256");
        assertThat(file).doesNotExist();
        // Q4_K_M: layer 0's ffn_down is Q6_K, and its rows are ffn = 304 long: not whole Q6_K blocks,
        // nor whole blocks of the Q8_0 that llama.cpp falls back to, so F16, as llama.cpp writes it.
        ModelShape oddKFfn = new ModelShape("odd", 256, 1, 4, 2, 304, 300, 128, 1e4f, 1e-5f, false, false);
        Path oddFile = dir.resolve("odd-q4_k_m.gguf");
        SyntheticModel.of(oddKFfn, 0).writeGguf(oddFile, FileType.Q4_K_M, TokenizerMetadata.synthetic(300), 0);
        try (Arena arena = Arena.ofConfined()) {
            assertThat(GgufFile.open(oddFile, arena).tensorInfos().stream().filter(t -> t.name().equals("blk.0.ffn_down.weight"))
                    .findFirst().orElseThrow().type()).isEqualTo(DType.F16);
        }

        Path noTokenizer = dir.resolve("empty.gguf");
        try (GgufWriter w = GgufWriter.create(noTokenizer)) {
            w.putString("general.architecture", "llama");
        }
        assertThatThrownBy(() -> TokenizerMetadata.copiedFrom(noTokenizer)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("tokenizer.ggml.tokens");
    }

    private static double[] toDouble(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            d[i] = v[i];
        }
        return d;
    }

    /** ../shared/models/tokenizers, as the build passes it in. */
    static final class TokenizerFilesPath {
        static Path llamaSpm() {
            Path p = Path.of(System.getProperty("peregrine.shared.dir", "../shared"))
                    .resolve("models/tokenizers/ggml-vocab-llama-spm.gguf");
            assertThat(p).as("the shared tokenizer file").isRegularFile();
            return p;
        }
    }
}
