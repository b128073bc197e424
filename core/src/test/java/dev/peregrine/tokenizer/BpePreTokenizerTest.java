package dev.peregrine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The hand-written word scanners against the regular expressions they stand for (llama.cpp's
 * spelling, run by java.util.regex with {@code \s} as the White_Space property) on many random
 * strings, and a few splits worked out by hand from the expressions.
 */
class BpePreTokenizerTest {
    private static final String S = "\\p{IsWhite_Space}";
    private static final String NOT_S = "\\P{IsWhite_Space}";
    private static final String GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" + S + "\\p{L}\\p{N}]+|"
            + S + "+(?!" + NOT_S + ")|" + S + "+";
    private static final String LLAMA3 = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
            + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^" + S + "\\p{L}\\p{N}]+[\\r\\n]*|" + S + "*[\\r\\n]+|"
            + S + "+(?!" + NOT_S + ")|" + S + "+";
    private static final String QWEN2 = LLAMA3.replace("\\p{N}{1,3}", "\\p{N}");

    /** Characters every branch of the expressions cares about, several of them astral. */
    private static final int[] ALPHABET = {
        'a', 'b', 'Z', 's', 'S', 't', 'r', 'e', 'E', 'v', 'm', 'l', 'L', 'd', 'D', '\'', '1', '2', '3', ' ', ' ', ' ',
        '\t', '\n', '\r', '.', ',', '!', '-', '(', '$', '\u00a0', '\u3000', '\u2028', '\u0085', '\u000b', '\u200b',
        '\u00e9', '\u0301', '\u0663', '\u00bd', '\u216b', '\u4e00', '\uac00', '\u0e31', '\u017f', 0x1F600, 0x1D54F,
        0x1D7D9, 0x20001, 0xE000, 0x378 /* unassigned */};

    @ParameterizedTest
    @CsvSource({"GPT2", "LLAMA3", "QWEN2"})
    void scannersSplitLikeTheirExpressions(PreTokenizer.Preset preset) {
        Pattern pattern = Pattern.compile(switch (preset) {
            case GPT2 -> GPT2;
            case LLAMA3 -> LLAMA3;
            default -> QWEN2;
        });
        PreTokenizer scanner = PreTokenizer.of(preset);
        Random random = new Random(42);
        for (int i = 0; i < 20_000; i++) {
            StringBuilder text = new StringBuilder();
            for (int n = 1 + random.nextInt(24); n > 0; n--) {
                text.appendCodePoint(ALPHABET[random.nextInt(ALPHABET.length)]);
            }
            String s = text.toString();
            assertThat(words(s, scanner)).as("%s", LlamaCppVectorsTest.quoted(s)).isEqualTo(regexWords(s, pattern));
        }
    }

    @Test
    void splitsWorkedOutByHand() {
        assertThat(words("Hello   world's 12345!!\n\n  x", PreTokenizer.of(PreTokenizer.Preset.LLAMA3)))
                .containsExactly("Hello", "  ", " world", "'s", " ", "123", "45", "!!\n\n", " ", " x");
        assertThat(words("Hello   world's 12345!!\n\n  x", PreTokenizer.of(PreTokenizer.Preset.GPT2)))
                .containsExactly("Hello", "  ", " world", "'s", " 12345", "!!", "\n\n ", " x");
        assertThat(words("I'M 12", PreTokenizer.of(PreTokenizer.Preset.QWEN2)))
                .containsExactly("I", "'M", " ", "1", "2");
        // StarCoder: every digit alone, then GPT-2's expression
        assertThat(words("x=123", PreTokenizer.of(PreTokenizer.Preset.STARCODER)))
                .containsExactly("x", "=", "1", "2", "3");
        // DeepSeek LLM: line breaks alone, letters with one leading space, CJK runs, digit runs
        assertThat(words("ab 中文\n12", PreTokenizer.of(PreTokenizer.Preset.DEEPSEEK_LLM)))
                .containsExactly("ab", " ", "中文", "\n", "12");
        // llama.cpp's default: punctuation runs first, then GPT-2's, then digit runs of three
        assertThat(words("a,b 12345", PreTokenizer.of(PreTokenizer.Preset.DEFAULT)))
                .containsExactly("a", ",", "b", " ", "123", "45");
    }

    @Test
    void everyNameMapsToOnePreset() {
        assertThat(PreTokenizer.Preset.forName("llama-bpe")).isEqualTo(PreTokenizer.Preset.LLAMA3);
        assertThat(PreTokenizer.Preset.forName("smollm")).isEqualTo(PreTokenizer.Preset.STARCODER);
        assertThat(PreTokenizer.Preset.forName("mpt")).isEqualTo(PreTokenizer.Preset.GPT2);
        assertThat(PreTokenizer.Preset.forName("qwen2")).isEqualTo(PreTokenizer.Preset.QWEN2);
        assertThat(PreTokenizer.Preset.forName("nope")).isNull();
        List<String> names = PreTokenizer.Preset.supportedNames();
        assertThat(names).doesNotHaveDuplicates();
    }

    private static List<String> words(String text, PreTokenizer preTokenizer) {
        IntList ends = preTokenizer.split(text, 0, text.length());
        List<String> words = new ArrayList<>();
        int from = 0;
        for (int i = 0; i < ends.size(); i++) {
            words.add(text.substring(from, ends.get(i)));
            from = ends.get(i);
        }
        assertThat(from).isEqualTo(text.length());
        return words;
    }

    /** Matches and the text between them, as llama.cpp's regex splitting keeps both. */
    private static List<String> regexWords(String text, Pattern pattern) {
        List<String> words = new ArrayList<>();
        Matcher m = pattern.matcher(text);
        int from = 0;
        while (m.find()) {
            if (m.start() > from) {
                words.add(text.substring(from, m.start()));
            }
            words.add(m.group());
            from = m.end();
        }
        if (from < text.length()) {
            words.add(text.substring(from));
        }
        return words;
    }
}
