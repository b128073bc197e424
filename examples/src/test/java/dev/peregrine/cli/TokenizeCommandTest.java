package dev.peregrine.cli;

import static dev.peregrine.cli.PeregrineCliTest.run;
import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.Model;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code peregrine tokenize} on stories260K and on a vocabulary-only file. */
class TokenizeCommandTest {
    private static final Path MODEL = PeregrineCliTest.sharedDir().resolve("models/stories260K.gguf");
    private static final String TEXT = "Once upon a time, Lily saw a big dog.";

    @Test
    void printsTheModelsIdsOnePerLine() {
        PeregrineCliTest.Result r = run("tokenize", "-m", MODEL.toString(), TEXT);
        assertThat(r.status()).as(r.err()).isZero();
        int[] expected;
        String decoded;
        try (Model model = Model.load(MODEL)) {
            expected = model.encode(TEXT);
            decoded = model.decode(expected);
        }
        List<String> lines = r.out().lines().toList();
        assertThat(lines.stream().mapToInt(l -> Integer.parseInt(l.strip().split(" ")[0])).toArray()).isEqualTo(expected);
        assertThat(lines.getFirst()).isEqualTo("     1 <s>");
        assertThat(lines.get(1)).endsWith(" \" Once\"");
        // The quoted pieces, unquoted and joined, give the text back (with the space SentencePiece puts in front).
        String joined = lines.stream().skip(1)
                .map(l -> l.substring(l.indexOf('"') + 1, l.length() - 1))
                .collect(Collectors.joining());
        assertThat(joined).isEqualTo(" " + decoded);
    }

    @Test
    void idsOnlyAndNoBos() {
        int[] expected;
        try (Model model = Model.load(MODEL)) {
            expected = model.encode(TEXT);
        }
        PeregrineCliTest.Result ids = run("tokenize", "-m", MODEL.toString(), "--ids-only", TEXT);
        assertThat(ids.out()).isEqualTo(Arrays.toString(expected) + System.lineSeparator());

        PeregrineCliTest.Result noBos = run("tokenize", "-m", MODEL.toString(), "--ids-only", "--no-bos", TEXT);
        assertThat(noBos.out()).isEqualTo(Arrays.toString(Arrays.copyOfRange(expected, 1, expected.length))
                + System.lineSeparator());
    }

    @Test
    void readsVocabularyOnlyFilesAndParsesSpecialText() {
        Path phi3 = PeregrineCliTest.sharedDir().resolve("models/tokenizers/ggml-vocab-phi-3.gguf");
        PeregrineCliTest.Result r = run("tokenize", "-m", phi3.toString(), "<s><|user|>\nHi\n<|end|>");
        assertThat(r.status()).as(r.err()).isZero();
        List<String> lines = r.out().lines().toList();
        assertThat(lines.getFirst()).as("the BOS text is the BOS, not a second one").isEqualTo("     1 <s>");
        assertThat(lines.get(1)).isEqualTo(" 32010 <|user|>");
        assertThat(lines).contains(" 32007 <|end|>");
        // Phi-3's <|user|> swallows the newline after it (llama.cpp's rstrip rule); the second one is a byte token.
        assertThat(lines.get(2)).isEqualTo("  6324 \" Hi\"");
        assertThat(lines.get(3)).isEqualTo("    13 \"\\n\"");
    }

    @Test
    void quotingShowsSpacesAndControlBytes() {
        assertThat(TokenizeCommand.quote(" a\tb\"c\\".getBytes(StandardCharsets.UTF_8))).isEqualTo("\" a\\tb\\\"c\\\\\"");
        assertThat(TokenizeCommand.quote("é\u0001".getBytes(StandardCharsets.UTF_8))).isEqualTo("\"é\\x01\"");
        // Part of a character (a byte token): the bytes, not U+FFFD.
        assertThat(TokenizeCommand.quote(new byte[] {'x', (byte) 0xe2, (byte) 0x96})).isEqualTo("\"x\\xe2\\x96\"");
    }

    @Test
    void usageErrors() {
        PeregrineCliTest.Result noText = run("tokenize", "-m", MODEL.toString());
        assertThat(noText.status()).isEqualTo(2);
        assertThat(noText.err()).startsWith("peregrine: no text given");
        PeregrineCliTest.Result twoTexts = run("tokenize", "-m", MODEL.toString(), "a", "b");
        assertThat(twoTexts.status()).isEqualTo(2);
        assertThat(twoTexts.err()).startsWith("peregrine: give one text (quote it), got 2 arguments");
        assertThat(run("tokenize", "hello").err()).startsWith("peregrine: missing -m FILE");
        assertThat(run("tokenize", "-m", MODEL.toString(), "--bogus", "x").err()).startsWith("peregrine: unknown option --bogus");
    }

    /**
     * A Hugging Face directory is tokenized with its tokenizer.json: a synthetic model written both
     * ways gives the same ids. A directory without one is named as such, not "No such device" nor
     * "not a GGUF file".
     */
    @Test
    void readsHuggingFaceDirectories(@TempDir Path dir) throws IOException {
        Path gguf = dir.resolve("tiny.gguf");
        Path hf = dir.resolve("tiny-hf");
        assertThat(run("synth", "--shape", "tiny", "-o", gguf.toString()).status()).isZero();
        assertThat(run("synth", "--shape", "tiny", "--format", "hf", "-o", hf.toString()).status()).isZero();
        String text = "Once upon a time, Lily saw 12 dogs!";
        PeregrineCliTest.Result fromGguf = run("tokenize", "-m", gguf.toString(), "--ids-only", text);
        PeregrineCliTest.Result fromHf = run("tokenize", "-m", hf.toString(), "--ids-only", text);
        assertThat(fromHf.status()).as(fromHf.err()).isZero();
        assertThat(fromHf.out()).isEqualTo(fromGguf.out());
        // Control tokens show as their pieces without quotes, from either form.
        for (Path model : new Path[] {gguf, hf}) {
            PeregrineCliTest.Result shown = run("tokenize", "-m", model.toString(), "--no-bos", "<s>Hi</s>");
            assertThat(shown.out().lines().map(String::strip).toList()).as(model.toString())
                    .startsWith("1 <s>").endsWith("2 </s>");
        }

        Path empty = Files.createDirectory(dir.resolve("empty"));
        PeregrineCliTest.Result none = run("tokenize", "-m", empty.toString(), "hi");
        assertThat(none.status()).isEqualTo(1);
        assertThat(none.err()).contains("empty").contains("is a directory without tokenizer.json");
        assertThat(run("info", "-m", empty.toString()).err()).contains("is a directory without config.json or tokenizer.json");
        // A tokenizer's directory (no config.json): info summarises its tokenizer, then says why no model loads.
        Path mistral = PeregrineCliTest.sharedDir().resolve("models/tokenizers/hf/mistral");
        assertThat(mistral).isDirectory();
        PeregrineCliTest.Result info = run("info", "-m", mistral.toString());
        assertThat(info.status()).as(info.err()).isZero();
        assertThat(info.out()).contains("Hugging Face tokenizer directory (no config.json, so no model)")
                .contains("32,000 tokens").contains("BOS: 1 <s>").contains("EOS: 2 </s>")
                .contains("model: does not load:");
    }
}
