package dev.peregrine.sampling;

import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.format.json.Json;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * {@link JsonGrammar} against hand-written objects and non-objects, and against the project's JSON
 * parser ({@link Json}, separate code) on random objects the grammar itself spells out byte by byte.
 */
class JsonGrammarTest {

    private static JsonGrammar fed(String text) {
        JsonGrammar g = new JsonGrammar();
        g.feed(text.getBytes(StandardCharsets.UTF_8));
        return g;
    }

    @Test
    void objectsAreAcceptedAndCompleteExactlyAtTheirEnd() {
        String[] objects = {
                "{}", "{\"a\":1}", "{\"a\" : [1, -2.5e+3, 0, 0.25, 1E9, true, false, null, \"x\\n\\u00e9\"], \"b\": {}}",
                "{\"nested\":{\"deeper\":[[[]],{\"k\":\"v\"}]}}", "{\"utf8\":\"Grüße, 日本, 😀\"}",
                "{\n  \"pretty\": [\n    1,\n    2\n  ]\n}",
        };
        for (String text : objects) {
            byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
            JsonGrammar g = new JsonGrammar();
            for (int i = 0; i < bytes.length; i++) {
                assertThat(g.isComplete()).as("%s: complete before byte %d", text, i).isFalse();
                g.feed(new byte[] {bytes[i]});
                assertThat(g.isDead()).as("%s: byte %d", text, i).isFalse();
            }
            assertThat(g.isComplete()).as(text).isTrue();
            assertThat(Json.parse(text, null)).isInstanceOf(Map.class);
        }
    }

    @Test
    void nonObjectsAreRejectedWhereTheyGoWrong() {
        String[][] cases = {
                {"[1]", "["}, {"\"s\"", "\""}, {"{\"a\":01}", "{\"a\":01"}, {"{\"a\":1,}", "{\"a\":1,}"},
                {"{a:1}", "{a"}, {"{\"a\" 1}", "{\"a\" 1"}, {"{\"a\":tru}", "{\"a\":tru}"}, {"{\"a\":\"\\x\"}", "{\"a\":\"\\x"},
                {"{\"a\":\"tab\there\"}", "{\"a\":\"tab\t"}, {"{\"a\":1.}", "{\"a\":1.}"}, {"{\"a\":-}", "{\"a\":-}"},
                {"{} ", "{} "}, {"{}{}", "{}{"}, {"{\"a\":[1}", "{\"a\":[1}"}, {"{\"a\":1e}", "{\"a\":1e}"},
        };
        for (String[] c : cases) {
            assertThat(fed(c[0]).isDead()).as(c[0]).isTrue();
            // The first prefix that fails is the one given; one byte shorter still fits.
            assertThat(fed(c[1]).isDead()).as(c[1]).isTrue();
            assertThat(fed(c[1].substring(0, c[1].length() - 1)).isDead()).as(c[1] + " minus its last byte").isFalse();
        }
        // Invalid UTF-8 inside a string.
        JsonGrammar g = fed("{\"a\":\"");
        g.feed(new byte[] {(byte) 0xC3, 0x28});
        assertThat(g.isDead()).isTrue();
    }

    @Test
    void acceptsTriesATokenWithoutChangingTheState() {
        JsonGrammar g = fed("{\"key\": ");
        JsonGrammar scratch = new JsonGrammar();
        assertThat(g.accepts("[1, 2".getBytes(StandardCharsets.UTF_8), scratch)).isTrue();
        assertThat(g.accepts("}".getBytes(StandardCharsets.UTF_8), scratch)).isFalse();
        assertThat(g.accepts("\"text".getBytes(StandardCharsets.UTF_8), scratch)).isTrue();
        assertThat(g.accepts(new byte[0], scratch)).isFalse();
        JsonGrammar inString = fed("{\"key\": \"abc");
        assertThat(inString.accepts(" plain words".getBytes(StandardCharsets.UTF_8), scratch)).isTrue();
        assertThat(inString.accepts("\"}".getBytes(StandardCharsets.UTF_8), scratch)).isTrue();
        assertThat(inString.accepts("\"}x".getBytes(StandardCharsets.UTF_8), scratch)).as("bytes after the object").isFalse();
        g.feed("1}".getBytes(StandardCharsets.UTF_8));
        assertThat(g.isComplete()).isTrue();
        assertThat(g.accepts(" ".getBytes(StandardCharsets.UTF_8), scratch)).isFalse();
    }

    @Test
    void limitsStopRunawayNestingAndWhitespace() {
        assertThat(fed("{\"a\":" + "[".repeat(JsonGrammar.MAX_DEPTH - 1)).isDead()).isFalse();
        assertThat(fed("{\"a\":" + "[".repeat(JsonGrammar.MAX_DEPTH)).isDead()).isTrue();
        // Whitespace: one space, or a newline and an indent of up to 20; nothing before or after the object.
        assertThat(fed("{ \"a\": 1 }").isDead()).isFalse();
        assertThat(fed("{  ").isDead()).isTrue();
        assertThat(fed("{\n" + " ".repeat(JsonGrammar.MAX_INDENT)).isDead()).isFalse();
        assertThat(fed("{\n" + "\t".repeat(JsonGrammar.MAX_INDENT + 1)).isDead()).isTrue();
        assertThat(fed("{\n\n").isDead()).isTrue();
        assertThat(fed(" {}").isDead()).isTrue();
    }

    /** Random walks over the pieces the grammar allows; every walk that completes is an object to the parser. */
    @Test
    void everyCompletedRandomWalkParsesAsAnObject() {
        Random random = new Random(11);
        String[] pieces = {"{", "}", "[", "]", ",", ":", "\"", " ", "\n", "0", "1", "7", "-", "+", ".", "e", "E", "true",
                "false", "null", "\\", "n", "u", "00e9", "abc", "é", "😀"};
        String[] closing = {"}", "]", "\"", "1"};
        JsonGrammar scratch = new JsonGrammar();
        int completed = 0;
        for (int walk = 0; walk < 3000; walk++) {
            JsonGrammar g = new JsonGrammar();
            StringBuilder text = new StringBuilder();
            for (int step = 0; step < 60 && !g.isComplete(); step++) {
                byte[] choice = null;
                for (int attempt = 0; attempt < 50 && choice == null; attempt++) {
                    // Late in a walk, favour pieces that close things, so that some walks finish.
                    String piece = step > 30 && random.nextInt(3) == 0 ? closing[random.nextInt(closing.length)]
                            : pieces[random.nextInt(pieces.length)];
                    byte[] bytes = piece.getBytes(StandardCharsets.UTF_8);
                    if (g.accepts(bytes, scratch)) {
                        choice = bytes;
                        text.append(piece);
                    }
                }
                if (choice == null) {
                    break;
                }
                g.feed(choice);
            }
            assertThat(g.isDead()).isFalse();
            if (g.isComplete()) {
                completed++;
                assertThat(Json.parse(text.toString(), null)).as(text.toString()).isInstanceOf(Map.class);
            }
        }
        assertThat(completed).as("walks that closed their object").isGreaterThan(100);
    }

    /**
     * Inside a string the grammar takes exactly the well-formed UTF-8 that the JDK's strict decoder
     * takes (no overlong forms, surrogates, or code points past U+10FFFF), byte by byte and as whole
     * tokens: every lead byte with every second byte and a spread of third and fourth ones.
     */
    @Test
    void stringsTakeExactlyWellFormedUtf8() throws Exception {
        int[] later = {0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0};
        JsonGrammar inString = fed("{\"a\":\"");
        JsonGrammar scratch = new JsonGrammar();
        java.nio.charset.CharsetDecoder strict = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(java.nio.charset.CodingErrorAction.REPORT)
                .onUnmappableCharacter(java.nio.charset.CodingErrorAction.REPORT);
        java.nio.CharBuffer chars = java.nio.CharBuffer.allocate(8);
        int checked = 0;
        for (int b0 = 0x80; b0 <= 0xFF; b0++) {
            for (int b1 = 0x20; b1 <= 0xFF; b1++) {
                for (int length = 2; length <= 4; length++) {
                    for (int b2 : length > 2 ? later : new int[] {0}) {
                        for (int b3 : length > 3 ? later : new int[] {0}) {
                            byte[] bytes = java.util.Arrays.copyOf(new byte[] {(byte) b0, (byte) b1, (byte) b2, (byte) b3},
                                    length);
                            if (b1 == '"' || b1 == '\\' || b2 == '"' || b3 == '"') {
                                continue;
                            }
                            java.nio.ByteBuffer in = java.nio.ByteBuffer.wrap(bytes);
                            chars.clear();
                            boolean wellFormed = !strict.reset().decode(in, chars, true).isError() && !in.hasRemaining()
                                    && !strict.flush(chars).isError();
                            byte[] closed = java.util.Arrays.copyOf(bytes, length + 2);
                            closed[length] = '"';
                            closed[length + 1] = '}';
                            JsonGrammar g = new JsonGrammar();
                            g.copyFrom(inString);
                            g.feed(closed);
                            String what = java.util.HexFormat.of().formatHex(bytes);
                            assertThat(!g.isDead() && g.isComplete()).as(what).isEqualTo(wellFormed);
                            assertThat(inString.accepts(closed, scratch)).as(what + " as one token").isEqualTo(wellFormed);
                            assertThat(JsonGrammar.plainText(bytes)).as(what + " as plain text").isEqualTo(wellFormed);
                            checked++;
                        }
                    }
                }
            }
        }
        assertThat(checked).isGreaterThan(1_000_000);
    }
}
