package dev.peregrine.synth;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.format.gguf.GgufMetadata;
import dev.peregrine.tokenizer.Tokenizer;
import dev.peregrine.tokenizer.Tokenizers;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class SyntheticVocabularyTest {
    private static final String SPACE = "\u2581";

    static Tokenizer tokenizer(int size) {
        Map<String, Object> values = new LinkedHashMap<>();
        for (TokenizerMetadata.Entry e : TokenizerMetadata.synthetic(size).entries()) {
            values.put(e.key(), e.value());
        }
        return Tokenizers.fromGguf(GgufMetadata.of(Path.of("synthetic"), values));
    }

    @ParameterizedTest
    @ValueSource(ints = {260, 512, 32000, 128256, 151936})
    void hasExactlyTheSizeAndLlamaCppsLayout(int size) {
        SyntheticVocabulary v = SyntheticVocabulary.of(size);
        assertThat(v.tokens()).hasSize(size).doesNotHaveDuplicates();
        assertThat(v.scores()).hasSize(size);
        assertThat(v.types()).hasSize(size);
        assertThat(Arrays.copyOf(v.tokens(), 3)).containsExactly("<unk>", "<s>", "</s>");
        assertThat(Arrays.copyOf(v.types(), 3)).containsExactly(2, 3, 3); // unknown, control, control
        for (int b = 0; b < 256; b++) {
            assertThat(v.tokens()[3 + b]).isEqualTo(String.format("<0x%02X>", b));
            assertThat(v.types()[3 + b]).isEqualTo(6);
        }
        for (int id = 259; id < size; id++) {
            assertThat(v.types()[id]).isEqualTo(1);
            if (id > 259) {
                assertThat(v.scores()[id]).isLessThan(v.scores()[id - 1]);
            }
        }
    }

    /** SentencePiece merges two adjacent pieces into a known piece, so every piece must be reachable that way. */
    @Test
    void everyLongerPieceExtendsAnEarlierPieceByOneCharacter() {
        SyntheticVocabulary v = SyntheticVocabulary.of(40_000);
        Map<String, Integer> ids = new HashMap<>();
        for (int id = 259; id < v.size(); id++) {
            String piece = v.tokens()[id];
            if (piece.length() > 1) {
                Integer prefix = ids.get(piece.substring(0, piece.length() - 1));
                assertThat(prefix).as("prefix of '%s'", piece).isNotNull();
            }
            ids.put(piece, id);
        }
        assertThat(ids).containsKeys(SPACE + "the", SPACE + "and", "ing", "a", "Z", "7", SPACE + "qz");
    }

    @Test
    void textRoundTripsAndCommonWordsAreSingleTokens() {
        Tokenizer t = tokenizer(32000);
        List<String> texts = List.of("Hello world, the day is long.", "Once upon a time", "naïve café — 日本語 ✓ 🙂",
                "  two  spaces\tand a tab\n", "x");
        for (String text : texts) {
            int[] ids = t.encode(text, true, false);
            assertThat(ids[0]).isEqualTo(1); // BOS
            assertThat(t.decode(Arrays.copyOfRange(ids, 1, ids.length))).isEqualTo(text);
        }
        int[] ids = t.encode("the world", false, false);
        assertThat(Arrays.stream(ids).mapToObj(t::piece).toList()).containsExactly(SPACE + "the", SPACE + "world");
        // A character without a piece falls back to its UTF-8 bytes: é = C3 A9.
        Set<String> pieces = new HashSet<>();
        for (int id : t.encode("é", false, false)) {
            pieces.add(t.piece(id));
        }
        assertThat(pieces).contains("<0xC3>", "<0xA9>");
    }

    @Test
    void tooSmallAVocabularyIsRejected() {
        assertThatThrownBy(() -> SyntheticVocabulary.of(259)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("more than 259 tokens");
    }
}
