package dev.peregrine.onnx;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import dev.peregrine.Model;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Peregrine's reading of a BERT tokenizer.json (all-MiniLM-L6-v2's) against Hugging Face's own
 * tokenizers library (through DJL), on the cases a black-box comparison found apart: code points
 * that no Unicode version assigns, and the decoding of an added token matched after normalization.
 */
class TokenizerReferenceTest {
    @TempDir
    Path dir;

    private static final Map<String, String> NO_PADDING = Map.of("padding", "false", "truncation", "false");

    /**
     * Unassigned code points (Cn) and noncharacters stay in the text and make their word [UNK], as
     * the tokenizers library (whose category tables list no Cn) does; Python's BertTokenizer would
     * drop them. Control and format characters are still dropped.
     */
    @Test
    void unassignedCodePointsAreKeptAsTheReferenceKeepsThem() throws IOException {
        Path json = TestModels.Jar.MINILM_Q.tokenizer();
        List<String> texts = List.of("hello\uFFFFworld", "a\u0378b", "\uFFFE", "x \uFFFF y", "\u0378", "plain words",
                "tab\tand\u0007bell\u200bzero width", "caf\u00e9 \u4e2d\u6587 \ud83d\ude00", "\u0000null", "e\u0301",
                "\uFDD0 noncharacter", "\ud83f\udffe plane-1 noncharacter", "Mixed CASE and 123,456.78!");
        List<String> failures = new ArrayList<>();
        try (Model peregrine = Model.load(TestModels.Jar.MINILM_Q.onnx());
             HuggingFaceTokenizer reference = HuggingFaceTokenizer.newInstance(json, NO_PADDING)) {
            for (String text : texts) {
                for (boolean special : new boolean[] {true, false}) {
                    long[] want = reference.encode(text, special, false).getIds();
                    int[] got = peregrine.encode(text, special);
                    if (!Arrays.equals(Arrays.stream(want).mapToInt(x -> (int) x).toArray(), got)) {
                        failures.add(Escapes.quoted(text) + (special ? " with" : " without") + " special tokens: "
                                + Arrays.toString(got) + ", Hugging Face " + Arrays.toString(want));
                    }
                }
            }
            assertThat(peregrine.encode("hello\uFFFFworld", false)).containsExactly(100); // one word, [UNK]
        }
        assertThat(failures).isEmpty();
    }

    /** An added token with normalized: true is matched as normalized but decodes as its content, as Hugging Face decodes it. */
    @Test
    void aNormalizedAddedTokenDecodesAsItsContent() throws IOException {
        String original = Files.readString(TestModels.Jar.MINILM_Q.tokenizer());
        String added = "\"added_tokens\": [\n    {\"id\": 30522, \"content\": \"Hello World\", \"single_word\": false,"
                + " \"lstrip\": false, \"rstrip\": false, \"normalized\": true, \"special\": false},";
        assertThat(original).contains("\"added_tokens\": [");
        Path json = dir.resolve("tokenizer.json");
        Files.writeString(json, original.replaceFirst("\"added_tokens\": \\[", java.util.regex.Matcher.quoteReplacement(added)));
        Files.copy(TestModels.Jar.MINILM_Q.onnx(), dir.resolve("model.onnx"));
        try (Model peregrine = Model.load(dir);
             HuggingFaceTokenizer reference = HuggingFaceTokenizer.newInstance(json, NO_PADDING)) {
            for (String text : List.of("say hello world now", "HELLO WORLD", "Hello World")) {
                long[] want = reference.encode(text, false, false).getIds();
                int[] got = peregrine.encode(text, false);
                assertThat(got).as(text).containsExactly(Arrays.stream(want).mapToInt(x -> (int) x).toArray());
                assertThat(peregrine.decode(got)).as(text).isEqualTo(reference.decode(want, false));
            }
            assertThat(peregrine.decode(30522)).isEqualTo("Hello World");
        }
    }

    /** Texts in failure messages, with code points outside printable ASCII escaped. */
    private static final class Escapes {
        static String quoted(String s) {
            StringBuilder b = new StringBuilder("\"");
            s.codePoints().forEach(c -> b.append(c >= 0x20 && c < 0x7F ? Character.toString(c) : String.format("\\u{%04X}", c)));
            return b.append('"').toString();
        }
    }
}
