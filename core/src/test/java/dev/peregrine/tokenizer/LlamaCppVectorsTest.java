package dev.peregrine.tokenizer;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.FieldSource;

/**
 * llama.cpp's tokenizer test vectors (models/ggml-vocab-*.gguf.inp / .out, produced from the
 * Hugging Face tokenizers by llama.cpp's convert_hf_to_gguf_update.py and checked by its
 * tests/test-tokenizer-0.cpp, which encodes with add_special = false and parse_special = false and
 * compares all ids: the .out files hold no BOS and nothing is stripped), for every vocabulary
 * type: SentencePiece (llama-spm, phi-3), byte-level BPE (the gpt2 vocabularies with their
 * pre-tokenizers) and WordPiece (bert-bge).
 */
class LlamaCppVectorsTest {
    private static final String SEPARATOR = "\n__ggml_vocab_test__\n";
    private static final Map<String, Tokenizer> TOKENIZERS = new ConcurrentHashMap<>();

    static final List<String> ALL = List.of(
            TokenizerFiles.BERT_BGE, TokenizerFiles.DEEPSEEK_CODER, TokenizerFiles.DEEPSEEK_LLM,
            TokenizerFiles.FALCON, TokenizerFiles.GPT_2, TokenizerFiles.LLAMA_BPE, TokenizerFiles.LLAMA_SPM,
            TokenizerFiles.MPT, TokenizerFiles.PHI_3, TokenizerFiles.REFACT, TokenizerFiles.STARCODER);

    /**
     * The vocabularies whose decoding gives the text back: those llama.cpp round-trips in
     * test-tokenizer-1-spm / test-tokenizer-1-bpe (llama-spm; falcon, gpt-2, llama-bpe, mpt,
     * refact, starcoder), plus phi-3 and the two DeepSeek vocabularies, which do too. Not
     * WordPiece, which lower-cases and drops accents and spacing.
     */
    static final List<String> LOSSLESS = List.of(
            TokenizerFiles.DEEPSEEK_CODER, TokenizerFiles.DEEPSEEK_LLM, TokenizerFiles.FALCON, TokenizerFiles.GPT_2,
            TokenizerFiles.LLAMA_BPE, TokenizerFiles.LLAMA_SPM, TokenizerFiles.MPT, TokenizerFiles.PHI_3,
            TokenizerFiles.REFACT, TokenizerFiles.STARCODER);

    record Case(String vocab, int number, String text, int[] expected) {
        @Override
        public String toString() {
            return vocab.substring(vocab.lastIndexOf('/') + 1) + " #" + number;
        }
    }

    static Stream<Arguments> cases() {
        return ALL.stream().flatMap(vocab -> read(vocab).stream()).map(c -> Arguments.of(c));
    }

    static Stream<Arguments> losslessCases() {
        return LOSSLESS.stream().flatMap(vocab -> read(vocab).stream()).map(c -> Arguments.of(c));
    }

    /** The vectors of a vocabulary in the shared directory. */
    static List<Case> read(String vocab) {
        return read(vocab, TokenizerFiles.file(vocab + ".inp"), TokenizerFiles.file(vocab + ".out"));
    }

    /**
     * Splits a vector file pair the way test-tokenizer-0.cpp does: inputs separated by
     * "\n__ggml_vocab_test__\n" (no entry after the final separator), one line of ids per input.
     */
    static List<Case> read(String label, Path inputFile, Path outputFile) {
        try {
            String inputs = Files.readString(inputFile, UTF_8);
            List<String> outputs = Files.readAllLines(outputFile, UTF_8);
            List<String> texts = new ArrayList<>();
            for (int pos = 0; pos < inputs.length(); ) {
                int next = inputs.indexOf(SEPARATOR, pos);
                if (next < 0) {
                    texts.add(inputs.substring(pos));
                    break;
                }
                texts.add(inputs.substring(pos, next));
                pos = next + SEPARATOR.length();
            }
            assertThat(outputs).hasSameSizeAs(texts);
            List<Case> cases = new ArrayList<>();
            for (int i = 0; i < texts.size(); i++) {
                String line = outputs.get(i).strip();
                int[] ids = line.isEmpty() ? new int[0]
                        : Arrays.stream(line.split(" ")).mapToInt(Integer::parseInt).toArray();
                cases.add(new Case(label, i, texts.get(i), ids));
            }
            return cases;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static Tokenizer tokenizer(String vocab) {
        return TOKENIZERS.computeIfAbsent(vocab, TokenizerFiles::load);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void encodesLikeLlamaCpp(Case c) {
        int[] ids = tokenizer(c.vocab()).encode(c.text(), false, false);
        assertThat(ids).as("ids of %s", quoted(c.text())).containsExactly(c.expected());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("losslessCases")
    void decodesBackToTheText(Case c) {
        Tokenizer tokenizer = tokenizer(c.vocab());
        assertThat(tokenizer.decode(c.expected())).isEqualTo(c.text());
        assertThat(tokenizer.decode(tokenizer.encode(c.text()))).isEqualTo(c.text());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void streamsWhatDecodeGives(Case c) {
        // a continuation keeps every space, so it is compared with decoding after a first token
        Tokenizer tokenizer = tokenizer(c.vocab());
        int[] ids = c.expected();
        StringBuilder streamed = new StringBuilder();
        StreamingDecoder decoder = tokenizer.streamingDecoder();
        for (int id : ids) {
            streamed.append(decoder.accept(id));
        }
        streamed.append(decoder.flush());
        int[] afterA = new int[ids.length + 1];
        afterA[0] = tokenizer.encode("a", false, false)[0];
        System.arraycopy(ids, 0, afterA, 1, ids.length);
        String prefix = tokenizer.decode(new int[] {afterA[0]});
        assertThat(prefix + streamed).isEqualTo(tokenizer.decode(afterA));
    }

    @ParameterizedTest
    @FieldSource("ALL")
    void readsEveryVector(String vocab) {
        // test-tokenizer-0.cpp's count for these files: 46 inputs each
        assertThat(read(vocab)).hasSize(46);
    }

    static String quoted(String s) {
        return "'" + s.replace("\n", "\\n").replace("\t", "\\t") + "'";
    }
}
