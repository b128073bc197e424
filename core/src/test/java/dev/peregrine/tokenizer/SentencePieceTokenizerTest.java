package dev.peregrine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class SentencePieceTokenizerTest {
    private static SentencePieceTokenizer stories;
    private static SentencePieceTokenizer llama;
    private static SentencePieceTokenizer phi3;

    @BeforeAll
    static void load() {
        stories = TokenizerFiles.load(TokenizerFiles.STORIES_260K);
        llama = TokenizerFiles.load(TokenizerFiles.LLAMA_SPM);
        phi3 = TokenizerFiles.load(TokenizerFiles.PHI_3);
    }

    // Expected ids below come from llama2.c's encode() (run.c: BOS, the " " dummy prefix, then
    // repeatedly merging the best-scoring adjacent pair, byte fallback as byte + 3), re-implemented
    // in a throw-away Python script and run by hand on tok512.bin, llama2.c's tokenizer file for
    // stories260K (see ../shared/models/SOURCES.md).

    @Test
    void storiesOnceUponATime() {
        assertThat(stories.encode("Once upon a time")).containsExactly(1, 403, 407, 261, 378);
        assertThat(stories.decode(new int[] {1, 403, 407, 261, 378})).isEqualTo("Once upon a time");
        assertThat(stories.piece(403)).isEqualTo("▁Once");
    }

    @Test
    void controlTokensAreTheVocabularysControlTypes() {
        // stories260K: <unk> 0 is unknown, <s> 1 and </s> 2 control, then byte and normal tokens.
        assertThat(stories.isControlToken(1)).isTrue();
        assertThat(stories.isControlToken(2)).isTrue();
        assertThat(stories.isControlToken(0)).isFalse();
        assertThat(stories.isControlToken(403)).isFalse();
    }

    @Test
    void storiesSentence() {
        assertThat(stories.encode("Lily and Tom went to the park. They saw a big dog!")).containsExactly(
                1, 317, 269, 274, 287, 263, 377, 267, 265, 282, 295, 433, 426, 342, 394, 261, 370, 400, 428, 443);
    }

    @Test
    void storiesByteFallbackAndWhitespace() {
        // é, ☕, 日 and 本 are not in the 512-token vocabulary: their UTF-8 bytes become <0xHH> tokens
        assertThat(stories.encode("Café ☕ 日本\ntab\tend")).containsExactly(
                1, 410, 457, 412, 431, 485, 410, 229, 155, 152, 410, 233, 154, 168, 233, 159, 175, 13, 413, 412,
                430, 12, 367);
        assertThat(stories.encode("  two  spaces")).containsExactly(
                1, 410, 410, 259, 424, 414, 410, 262, 427, 412, 331, 419);
    }

    @Test
    void storiesVocabularyFromFile() {
        Vocabulary v = stories.vocabulary();
        assertThat(v.size()).isEqualTo(512);
        assertThat(v.bosId()).isEqualTo(1);
        assertThat(v.eosId()).isEqualTo(2);
        assertThat(v.unkId()).isZero();
        assertThat(v.padId()).as("padding_token_id 0xFFFFFFFF means none").isEqualTo(-1);
        assertThat(v.addBos()).isTrue();
        assertThat(v.addSpacePrefix()).isTrue();
        assertThat(stories.isEndOfGeneration(2)).isTrue();
        assertThat(stories.isEndOfGeneration(1)).isFalse();
        assertThat(stories.isEndOfGeneration(-1)).isFalse();
    }

    @ParameterizedTest
    @ValueSource(strings = {
            "", " ", "a", "Hello, world!", "  leading and trailing  ", "tabs\tand\nnew\r\nlines\n\n",
            "emoji 🦙🚀😶‍🌫️ and flags 🇫🇷", "日本語のテキスト、中文，한국어", "Ünïcödé àccents ß ø",
            "mixed 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math 𝟙𝟚𝟛", "    indented\n        code();",
            "<s> and </s> as plain text", "zero\u0000byte", "\uFEFFbyte order mark"})
    void roundTrips(String text) {
        for (SentencePieceTokenizer tokenizer : new SentencePieceTokenizer[] {stories, llama, phi3}) {
            int[] ids = tokenizer.encode(text);
            assertThat(ids[0]).isEqualTo(tokenizer.bosId());
            assertThat(tokenizer.decode(ids)).as("%s", Arrays.toString(ids)).isEqualTo(text);
            assertThat(tokenizer.decode(tokenizer.encode(text, false, false))).isEqualTo(text);
        }
    }

    @Test
    void literalSpaceMarkDecodesAsASpace() {
        // SentencePiece writes spaces as U+2581, so a U+2581 in the text cannot survive a round trip
        assertThat(llama.decode(llama.encode("a\u2581b"))).isEqualTo("a b");
        assertThat(llama.encode("a\u2581b")).containsExactly(llama.encode("a b"));
    }

    @Test
    void emptyText() {
        assertThat(llama.encode("", true, false)).containsExactly(1);
        assertThat(llama.encode("", false, false)).isEmpty();
        assertThat(llama.decode(new int[0])).isEmpty();
    }

    @Test
    void unpairedSurrogateIsEncodedAsItsUtf8Replacement() {
        // String.getBytes(UTF_8), i.e. what llama.cpp would be given, turns it into '?'
        assertThat(llama.encode("a\uD800b", false, false)).containsExactly(llama.encode("a?b", false, false));
    }

    @Test
    void specialTokensAreParsedOnlyWhenAsked() {
        // "Hello" after a special token gets the space prefix: ▁Hello = 15043 (as in the vectors)
        assertThat(llama.encode("<s>Hello</s>", false, true)).containsExactly(1, 15043, 2);
        assertThat(llama.encode("<s>Hello</s>", true, true)).containsExactly(1, 1, 15043, 2);
        int[] plain = llama.encode("<s>Hello</s>", false, false);
        assertThat(plain).doesNotContain(1, 2);
        assertThat(llama.decode(plain)).isEqualTo("<s>Hello</s>");
    }

    @Test
    void phi3EndOfTurnToken() {
        // Hugging Face's Phi-3 tokenizer gives [15043, 32007] for "Hello<|end|>"
        // (github.com/OoriData/Toolio/issues/12)
        assertThat(phi3.encode("Hello<|end|>", false, true)).containsExactly(15043, 32007);
        assertThat(phi3.isEndOfGeneration(32007)).isTrue();
        assertThat(phi3.isEndOfGeneration(phi3.eosId())).isTrue();
        assertThat(phi3.decode(new int[] {1, 15043, 32007})).isEqualTo("Hello");
    }

    @Test
    void phi3DropsWhitespaceAfterSpecialTokens() {
        // llama.cpp's Phi-3 rule (llama-vocab.cpp: RSTRIP on its special tokens), which mirrors
        // Hugging Face dropping the newline after <|user|> (huggingface/transformers#32136)
        assertThat(phi3.encode("<|user|>\nHello<|end|>\n<|assistant|>\n", false, true))
                .containsExactly(32010, 15043, 32007, 32001);
    }

    @Test
    void decodeSkipsControlTokensAndDropsOnlyTheFirstPrefixSpace() {
        int hello = 15043; // ▁Hello
        assertThat(llama.decode(new int[] {1, hello, hello, 2})).isEqualTo("Hello Hello");
        assertThat(llama.decode(new int[] {hello})).isEqualTo("Hello");
        assertThat(new String(llama.tokenBytes(hello))).isEqualTo(" Hello");
        assertThat(llama.tokenBytes(1)).isEmpty();
        assertThat(llama.tokenBytes(0)).as("unknown token").isEmpty();
        assertThat(llama.tokenBytes(3 + 0x0A)).containsExactly(0x0A);
    }

    @Test
    void rejectsIdsOutsideTheVocabulary() {
        assertThatThrownBy(() -> llama.decode(new int[] {32000})).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> llama.tokenBytes(-1)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> llama.piece(1 << 20)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    @Timeout(60)
    void longTextsTakeLinearishTime() {
        String paragraph = "Once upon a time, in a land far away 🏰, there lived a dragon named "
                + "Ząbek who loved 日本の お茶 and   spaced\ttabs.\n";
        String small = paragraph.repeat(200);
        String large = paragraph.repeat(5_000); // ~550,000 characters
        llama.encode(small); // warm up
        long start = System.nanoTime();
        int[] smallIds = llama.encode(small);
        Duration smallTime = Duration.ofNanos(System.nanoTime() - start);
        start = System.nanoTime();
        int[] largeIds = llama.encode(large);
        Duration largeTime = Duration.ofNanos(System.nanoTime() - start);

        // A quadratic merge loop would take hours on half a million characters; the timeout
        // catches it.
        assertThat(llama.decode(smallIds)).isEqualTo(small);
        assertThat(llama.decode(largeIds)).isEqualTo(large);
        System.out.printf("encode: %d chars in %d ms, %d chars in %d ms%n",
                small.length(), smallTime.toMillis(), large.length(), largeTime.toMillis());
    }

    /** Word by word (cached) and over the whole text, the ids are the same. */
    @Test
    void wordByWordGivesTheIdsOfTheWholeText() {
        java.util.SplittableRandom random = new java.util.SplittableRandom(17);
        String alphabet = "abcdefghijklmnopqrstuvwxyz     \t\n,.!?'\"-ABCXYZ0123 éü日本😀<s></s>▁";
        for (SentencePieceTokenizer t : new SentencePieceTokenizer[] {stories, llama, phi3}) {
            SentencePieceTokenizer whole = new SentencePieceTokenizer(t.vocabulary(), false);
            for (int n = 0; n < 2000; n++) {
                StringBuilder text = new StringBuilder();
                for (int i = random.nextInt(80); i > 0; i--) {
                    text.appendCodePoint(alphabet.codePointAt(alphabet.offsetByCodePoints(0,
                            random.nextInt(alphabet.codePointCount(0, alphabet.length())))));
                }
                boolean parseSpecial = random.nextBoolean();
                assertThat(t.encode(text.toString(), true, parseSpecial)).as("'%s'", text)
                        .containsExactly(whole.encode(text.toString(), true, parseSpecial));
            }
        }
    }

    /** A vocabulary with a token across a word start is merged over the whole text. */
    @Test
    void tokensAcrossWordsAreStillFound() {
        String[] tokens = {"<unk>", "<s>", "</s>", "▁", "a", "b", "▁a", "▁a▁", "▁a▁b"};
        float[] scores = {0, 0, 0, -1, -2, -3, -4, -5, -6};
        int[] types = {2, 3, 3, 1, 1, 1, 1, 1, 1};
        SentencePieceTokenizer t = new SentencePieceTokenizer(
                new Vocabulary(tokens, scores, types, 1, 2, 0, -1, -1, -1, -1, false, false, false, true, ""));
        assertThat(t.encode("a b", false, false)).containsExactly(8);
        assertThat(t.encode("a b a", false, false)).containsExactly(8, 6);
    }

    @Test
    @Timeout(60)
    void longTextsTakeLinearishTimeOverTheWholeText() {
        SentencePieceTokenizer whole = new SentencePieceTokenizer(llama.vocabulary(), false);
        String large = ("Once upon a time, in a land far away 🏰, there lived a dragon named "
                + "Ząbek who loved 日本の お茶 and   spaced\ttabs.\n").repeat(5_000); // ~550,000 characters
        assertThat(whole.decode(whole.encode(large))).isEqualTo(large);
    }
}
