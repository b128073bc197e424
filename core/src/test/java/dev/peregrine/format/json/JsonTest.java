package dev.peregrine.format.json;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.ModelFormatException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class JsonTest {
    private static final Path FILE = Path.of("test.json");

    private static Object parse(String text) {
        return Json.parse(text, FILE);
    }

    @Test
    void values() {
        assertThat(parse(" {\"a\": [1, -2, 3.5, -0.25e2, 1E3, true, false, null, \"x\"], \"b\": {}, \"c\": []} "))
                .isEqualTo(Map.of("a", Arrays.asList(1L, -2L, 3.5, -25.0, 1000.0, true, false, null, "x"),
                        "b", Map.of(), "c", List.of()));
        assertThat(parse("123456789012345678")).isEqualTo(123456789012345678L);
        assertThat(parse("-9223372036854775808")).isEqualTo(Long.MIN_VALUE);
        assertThat(parse("92233720368547758070")).as("beyond a long").isEqualTo(9.223372036854776E19);
        assertThat(parse("0")).isEqualTo(0L);
    }

    @Test
    void objectsKeepTheirKeyOrderAndTheLastOfARepeatedKey() {
        @SuppressWarnings("unchecked")
        Map<String, Object> map = (Map<String, Object>) parse("{\"z\": 1, \"a\": 2, \"z\": 3}");
        assertThat(map.keySet()).containsExactly("z", "a");
        assertThat(map.get("z")).isEqualTo(3L);
    }

    @Test
    void strings() {
        assertThat(parse("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\ud83e\\udd99\"")).isEqualTo("a\"b\\c/d\b\f\n\r\té🦙");
        assertThat(parse("\"Ġhello ▁world 日本 🦙\"")).isEqualTo("Ġhello ▁world 日本 🦙");
        assertThat(parse("\"mixed é\\n🦙" + "x".repeat(200) + "\"")).isEqualTo("mixed é\n🦙" + "x".repeat(200));
        assertThat(parse("\uFEFF\"after a byte order mark\"")).isEqualTo("after a byte order mark");
    }

    @Test
    void errorsNameTheFileLineAndColumn() {
        assertError("{\"a\": 1,\n  \"b\" 2}", "line 2, column 7", "expected ':'");
        assertError("[1, 2", "unexpected end");
        assertError("[1 2]", "expected ',' or ']'");
        assertError("{\"a\": 1,}", "expected a string key");
        assertError("\"abc", "unterminated string");
        assertError("\"a\nb\"", "control character");
        assertError("\"\\x\"", "invalid escape");
        assertError("\"\\u12g4\"", "four hex digits");
        assertError("01", "invalid number");
        assertError("1.", "expected digits after '.'");
        assertError("nul", "unexpected character");
        assertError("{} {}", "unexpected text after the JSON value");
        assertError("", "unexpected end");
        assertError("[".repeat(600) + "]".repeat(600), "nested more than 512 levels deep");
    }

    @Test
    void textThatIsNotUtf8IsRejected() {
        byte[] latin1 = "\"caf\u00e9\"".getBytes(StandardCharsets.ISO_8859_1);
        assertThatThrownBy(() -> Json.parse(latin1, FILE)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("not UTF-8");
        byte[] surrogate = {'"', (byte) 0xED, (byte) 0xA0, (byte) 0x80, '"'};
        assertThatThrownBy(() -> Json.parse(surrogate, FILE)).hasMessageContaining("not UTF-8");
        byte[] overlong = {'"', (byte) 0xC0, (byte) 0xAF, '"'};
        assertThatThrownBy(() -> Json.parse(overlong, FILE)).hasMessageContaining("not UTF-8");
    }

    private static void assertError(String text, String... parts) {
        assertThatThrownBy(() -> parse(text)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("test.json").hasMessageContainingAll(parts);
    }
}
