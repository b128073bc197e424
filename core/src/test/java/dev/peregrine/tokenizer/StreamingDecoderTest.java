package dev.peregrine.tokenizer;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class StreamingDecoderTest {
    private static SentencePieceTokenizer llama;

    @BeforeAll
    static void load() {
        llama = TokenizerFiles.load(TokenizerFiles.LLAMA_SPM);
        for (int b = 0; b < 256; b++) {
            assertThat(llama.piece(byteToken(b))).isEqualTo(String.format("<0x%02X>", b));
        }
    }

    /** The llama vocabulary's byte tokens are ids 3..258, in byte order. */
    private static int byteToken(int b) {
        return 3 + b;
    }

    private static int[] byteTokens(int... bytes) {
        return Arrays.stream(bytes).map(StreamingDecoderTest::byteToken).toArray();
    }

    @Test
    void holdsBackAnEmojiUntilItsLastByteToken() {
        // " 🦙" is ▁ then the byte tokens F0 9F A6 99 (llama.cpp's vector for " this is 🦙.cpp")
        int[] ids = llama.encode("🦙", false, false);
        assertThat(ids).containsExactly(29871, 243, 162, 169, 156);
        StreamingDecoder decoder = llama.streamingDecoder();
        assertThat(decoder.accept(ids[0])).isEqualTo(" ");
        for (int i = 1; i < 4; i++) {
            assertThat(decoder.accept(ids[i])).isEmpty();
            assertThat(decoder.hasPending()).isTrue();
        }
        assertThat(decoder.accept(ids[4])).isEqualTo("🦙");
        assertThat(decoder.hasPending()).isFalse();
        assertThat(decoder.flush()).isEmpty();
    }

    @ParameterizedTest
    @ValueSource(strings = {
            "Once upon a time 🦙 met 🚀😶‍🌫️ in 日本 and said ¡hola!",
            "កាន់តែពិសេសអាចខលចេញ 🇫🇷\n\n  tabs\there",
            "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ✅ Ąę 😁 ?我想在apple工作"})
    void continuationOfAPromptMatchesWholeDecode(String text) {
        int[] ids = llama.encode(text);
        // Every split point where the prompt has some text and ends on a whole character:
        // decode(prompt) followed by the streamed rest must be the decoded whole, and no chunk may
        // hold a broken character.
        int splits = 0;
        for (int k = 1; k < ids.length; k++) {
            int[] prompt = Arrays.copyOf(ids, k);
            StreamingDecoder probe = llama.streamingDecoder();
            Arrays.stream(prompt).forEach(probe::accept);
            if (probe.hasPending() || llama.decode(prompt).isEmpty()) {
                continue;
            }
            splits++;
            StringBuilder streamed = new StringBuilder(llama.decode(prompt));
            StreamingDecoder decoder = llama.streamingDecoder();
            for (int i = k; i < ids.length; i++) {
                String chunk = decoder.accept(ids[i]);
                assertWholeCharacters(chunk);
                streamed.append(chunk);
            }
            streamed.append(decoder.flush());
            assertThat(streamed.toString()).isEqualTo(llama.decode(ids)).isEqualTo(text);
        }
        assertThat(splits).isGreaterThan(5);
    }

    @Test
    void unicodeStandardExampleOfMaximalSubparts() {
        // The Unicode Standard, §3.9, Table 3-8 ("U+FFFD for each maximal subpart"):
        // 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64 -> a FFFD FFFD FFFD b FFFD c FFFD FFFD d
        int[] ids = byteTokens(0x61, 0xF1, 0x80, 0x80, 0xE1, 0x80, 0xC2, 0x62, 0x80, 0x63, 0x80, 0xBF, 0x64);
        String expected = "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd";
        assertThat(stream(ids)).isEqualTo(expected);
        assertThat(llama.decode(ids)).isEqualTo(expected);
    }

    @Test
    void surrogatesOverlongFormsAndTooLargeCodePointsAreIllFormed() {
        // Unicode Table 3-7 well-formed sequences exclude ED A0..BF (surrogates), E0 80..9F and
        // C0/C1 (overlong), F4 90.. and F5..FF (above U+10FFFF): one U+FFFD per byte here.
        assertThat(stream(byteTokens(0xED, 0xA0, 0x80))).isEqualTo("\uFFFD\uFFFD\uFFFD");
        assertThat(stream(byteTokens(0xE0, 0x80, 0x80))).isEqualTo("\uFFFD\uFFFD\uFFFD");
        assertThat(stream(byteTokens(0xC0, 0xAF))).isEqualTo("\uFFFD\uFFFD");
        assertThat(stream(byteTokens(0xF4, 0x90, 0x80, 0x80))).isEqualTo("\uFFFD\uFFFD\uFFFD\uFFFD");
        assertThat(stream(byteTokens(0xF5))).isEqualTo("\uFFFD");
        // and the largest valid forms are accepted
        assertThat(stream(byteTokens(0xF4, 0x8F, 0xBF, 0xBF))).isEqualTo(new String(Character.toChars(0x10FFFF)));
        assertThat(stream(byteTokens(0xED, 0x9F, 0xBF))).isEqualTo("\uD7FF");
    }

    @Test
    void flushReplacesAnUnfinishedCharacterAndResets() {
        StreamingDecoder decoder = llama.streamingDecoder();
        assertThat(decoder.accept(byteToken(0xF0))).isEmpty();
        assertThat(decoder.accept(byteToken(0x9F))).isEmpty();
        assertThat(decoder.flush()).isEqualTo("\uFFFD");
        assertThat(decoder.accept(byteToken('A'))).isEqualTo("A");
        // an unfinished character cut short by a new start byte
        assertThat(decoder.accept(byteToken(0xE2))).isEmpty();
        assertThat(decoder.accept(byteToken('B'))).isEqualTo("\uFFFDB");
    }

    @Test
    void agreesWithJavasDecoderOnRandomBytes() {
        // Java's UTF-8 decoder also replaces each maximal subpart with U+FFFD, except that it turns
        // an encoded surrogate (ED A0..BF xx) into one U+FFFD; ED is left out for that reason.
        int[] pool = {0x00, 0x20, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                0xE0, 0xE1, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF};
        Random random = new Random(42);
        for (int round = 0; round < 20_000; round++) {
            byte[] bytes = new byte[1 + random.nextInt(12)];
            for (int i = 0; i < bytes.length; i++) {
                bytes[i] = (byte) pool[random.nextInt(pool.length)];
            }
            int[] ids = new int[bytes.length];
            for (int i = 0; i < bytes.length; i++) {
                ids[i] = byteToken(bytes[i] & 0xFF);
            }
            String expected = new String(bytes, UTF_8);
            assertThat(stream(ids)).as("bytes %s", hex(bytes)).isEqualTo(expected);
            if (bytes[0] != ' ') { // decode drops a leading space
                assertThat(llama.decode(ids)).as("bytes %s", hex(bytes)).isEqualTo(expected);
            }
        }
    }

    @Test
    void allocatesNothingForTokensThatCompleteNoText() throws ReflectiveOperationException {
        StreamingDecoder decoder = llama.streamingDecoder();
        int[] ids = {1, byteToken(0xF0), byteToken(0x9F), byteToken(0xA6)}; // BOS, then 3/4 of 🦙
        for (int warmUp = 0; warmUp < 200_000; warmUp++) {
            decoder.accept(ids[warmUp & 3]);
            if ((warmUp & 3) == 3) {
                decoder.accept(byteToken(0x99));
            }
        }
        decoder.flush();
        long before = allocatedBytes();
        for (int i = 0; i < 100_000; i++) {
            decoder.accept(ids[0]);
        }
        for (int i = 1; i < 4; i++) {
            decoder.accept(ids[i]);
        }
        long allocated = allocatedBytes() - before;
        assertThat(allocated).as("bytes allocated by 100003 accept calls").isLessThan(10_000);
        assertThat(decoder.accept(byteToken(0x99))).isEqualTo("🦙");
    }

    /**
     * This thread's allocation counter. Reached by reflection because the module under test does
     * not read java.management (tests run on the class path, where everything is readable).
     */
    private static long allocatedBytes() throws ReflectiveOperationException {
        Object threads = Class.forName("java.lang.management.ManagementFactory")
                .getMethod("getThreadMXBean").invoke(null);
        return (long) Class.forName("com.sun.management.ThreadMXBean")
                .getMethod("getCurrentThreadAllocatedBytes").invoke(threads);
    }

    private static String stream(int[] ids) {
        StreamingDecoder decoder = llama.streamingDecoder();
        StringBuilder text = new StringBuilder();
        for (int id : ids) {
            String chunk = decoder.accept(id);
            assertWholeCharacters(chunk);
            text.append(chunk);
        }
        return text.append(decoder.flush()).toString();
    }

    /** No chunk may start or end inside a surrogate pair. */
    private static void assertWholeCharacters(String chunk) {
        for (int i = 0; i < chunk.length(); i++) {
            char c = chunk.charAt(i);
            if (Character.isHighSurrogate(c)) {
                assertThat(i + 1 < chunk.length() && Character.isLowSurrogate(chunk.charAt(i + 1)))
                        .as("complete pair at %d in %s", i, chunk).isTrue();
                i++;
            } else {
                assertThat(Character.isLowSurrogate(c)).as("lone low surrogate in %s", chunk).isFalse();
            }
        }
    }

    private static String hex(byte[] bytes) {
        StringBuilder s = new StringBuilder();
        for (byte b : bytes) {
            s.append(String.format("%02X ", b & 0xFF));
        }
        return s.toString().trim();
    }
}
