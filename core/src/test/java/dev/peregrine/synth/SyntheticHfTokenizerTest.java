package dev.peregrine.synth;

import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.format.json.Json;
import dev.peregrine.tokenizer.HfTokenizer;
import dev.peregrine.tokenizer.Tokenizer;
import dev.peregrine.tokenizer.Tokenizers;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The Hugging Face tokenizer files of a synthetic vocabulary, read back by Peregrine's
 * {@link HfTokenizer}, give the ids of the GGUF form's SentencePiece tokenizer.
 */
class SyntheticHfTokenizerTest {
    private static final List<String> TEXTS = List.of(
            "", " ", "Hello", " Hello", "Hello world", "Once upon a time, the day was long.",
            "  two  spaces   and\ttabs\nand\n\nnewlines ", "The quick brown fox jumps over the lazy dog!",
            "numbers 1234567890 and 3.14159", "quotes \"like\" this, and back\\slashes",
            "Ünïcödé: naïve café, Grüße, 日本語, emoji 😀👍", "<s>special</s> <unk> text", "a</s>b<s>",
            "zzzzzzzzzzzzzzzzzzzzzzzzzz", "thethethethe andandand", "(brackets) [square] {curly} <angle>");

    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(ints = {260, 512, 2048, 32000})
    void hfFilesEncodeAsTheGgufVocabulary(int size) {
        List<Path> files = SyntheticHfTokenizer.write(dir, size);
        assertThat(files).containsExactly(dir.resolve("tokenizer.json"), dir.resolve("tokenizer_config.json"));
        assertThat(Json.read(files.get(1))).isInstanceOf(Map.class);
        HfTokenizer hf = Tokenizers.fromHuggingFace(files.get(0), files.get(1));
        Tokenizer gguf = SyntheticVocabularyTest.tokenizer(size);
        assertThat(hf.vocabularySize()).isEqualTo(size);
        assertThat(hf.bosId()).isEqualTo(gguf.bosId());
        assertThat(hf.eosId()).isEqualTo(gguf.eosId());
        for (int id = 0; id < size; id++) {
            assertThat(hf.piece(id)).isEqualTo(gguf.piece(id));
        }

        for (String text : TEXTS) {
            sameIds(hf, gguf, text);
        }
        SplittableRandom random = new SplittableRandom(size);
        String alphabet = "abcdefghijklmnopqrstuvwxyz      ,.!?'\"-ABCXYZ0123\néü中😀";
        for (int n = 0; n < 200; n++) {
            StringBuilder text = new StringBuilder();
            for (int i = random.nextInt(60); i > 0; i--) {
                text.appendCodePoint(alphabet.codePointAt(alphabet.offsetByCodePoints(0,
                        random.nextInt(alphabet.codePointCount(0, alphabet.length())))));
            }
            sameIds(hf, gguf, text.toString());
        }
    }

    private static void sameIds(Tokenizer hf, Tokenizer gguf, String text) {
        for (boolean addSpecial : new boolean[] {false, true}) {
            for (boolean parseSpecial : new boolean[] {false, true}) {
                int[] expected = gguf.encode(text, addSpecial, parseSpecial);
                assertThat(hf.encode(text, addSpecial, parseSpecial))
                        .as("'%s', addSpecial %s, parseSpecial %s", text, addSpecial, parseSpecial)
                        .containsExactly(expected);
                if (!parseSpecial && !addSpecial) {
                    assertThat(hf.decode(expected)).as("decode '%s'", text).isEqualTo(gguf.decode(expected));
                }
            }
        }
    }
}
