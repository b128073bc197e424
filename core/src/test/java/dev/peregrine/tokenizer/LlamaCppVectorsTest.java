package dev.peregrine.tokenizer;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * llama.cpp's tokenizer test vectors (models/ggml-vocab-*.gguf.inp / .out, produced from the
 * Hugging Face tokenizers and checked by llama.cpp's tests/test-tokenizer-0.cpp, which encodes
 * with add_special = false and parse_special = false).
 */
class LlamaCppVectorsTest {
    private static final String SEPARATOR = "\n__ggml_vocab_test__\n";
    private static final Map<String, SentencePieceTokenizer> TOKENIZERS = new ConcurrentHashMap<>();

    record Case(String vocab, int number, String text, int[] expected) {
        @Override
        public String toString() {
            return vocab.substring(vocab.lastIndexOf('/') + 1) + " #" + number;
        }
    }

    static Stream<Arguments> cases() throws IOException {
        return Stream.of(TokenizerFiles.LLAMA_SPM, TokenizerFiles.PHI_3)
                .flatMap(vocab -> read(vocab).stream())
                .map(c -> Arguments.of(c));
    }

    /** Splits the files the way test-tokenizer-0.cpp does: no entry after the final separator. */
    static List<Case> read(String vocab) {
        try {
            String inputs = new String(Files.readAllBytes(TokenizerFiles.file(vocab + ".inp")), UTF_8);
            List<String> outputs = Files.readAllLines(TokenizerFiles.file(vocab + ".out"), UTF_8);
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
                cases.add(new Case(vocab, i, texts.get(i), ids));
            }
            return cases;
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static SentencePieceTokenizer tokenizer(String vocab) {
        return TOKENIZERS.computeIfAbsent(vocab, TokenizerFiles::load);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void encodesLikeLlamaCpp(Case c) {
        int[] ids = tokenizer(c.vocab()).encode(c.text(), false, false);
        assertThat(ids).as("ids of %s", quoted(c.text())).containsExactly(c.expected());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void decodesBackToTheText(Case c) {
        SentencePieceTokenizer tokenizer = tokenizer(c.vocab());
        assertThat(tokenizer.decode(c.expected())).isEqualTo(c.text());
        assertThat(tokenizer.decode(tokenizer.encode(c.text()))).isEqualTo(c.text());
    }

    @ParameterizedTest
    @ValueSource(strings = {TokenizerFiles.LLAMA_SPM, TokenizerFiles.PHI_3})
    void readsEveryVector(String vocab) {
        // test-tokenizer-0.cpp's count for these files: 46 inputs each
        assertThat(read(vocab)).hasSize(46);
    }

    private static String quoted(String s) {
        return "'" + s.replace("\n", "\\n").replace("\t", "\\t") + "'";
    }
}
