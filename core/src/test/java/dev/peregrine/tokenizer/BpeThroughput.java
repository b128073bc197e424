package dev.peregrine.tokenizer;

import static java.nio.charset.StandardCharsets.UTF_8;

import dev.peregrine.format.gguf.GgufMetadata;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;
import java.util.stream.Stream;

/**
 * Encoding speed of the Llama 3 tokenizer on English text: a benchmark to run by hand, not a test
 * (timings on shared machines vary too much to assert); jmh's TokenizerBenchmark measures every
 * tokenizer. The text is the licence texts under the JDK's legal/ folder, which every JDK has: about
 * 0.4 MB of English once duplicates are dropped, repeated. Run from the core module:
 * {@code java -Dperegrine.shared.dir=../../shared -cp target/test-classes:target/classes:<dependencies>
 * dev.peregrine.tokenizer.BpeThroughput}.
 */
final class BpeThroughput {
    private static final int TARGET_BYTES = 2 << 20;

    private BpeThroughput() {
    }

    public static void main(String[] args) {
        String english = jdkLegalTexts();
        if (english.length() < 100_000) {
            throw new IllegalStateException("this JDK's legal/ folder holds too little text (" + english.length()
                    + " characters) to measure with");
        }
        String text = english.repeat((TARGET_BYTES + english.length() - 1) / english.length());
        GgufMetadata metadata = TokenizerFiles.metadata(TokenizerFiles.LLAMA_BPE);

        ByteLevelBpeTokenizer llama3 = ByteLevelBpeTokenizer.fromGguf(metadata);
        int tokens = llama3.encode(english, false, false).length;
        llama3.encode(text, false, false); // warm up the JIT; every word is cached by now
        double warm = bestOfThree(llama3, text);

        // A tokenizer of its own starts with an empty word cache: every word is looked up once
        // (Llama 3's ignore_merges: most English words are tokens) or merged once (Qwen 2's
        // expression on the same vocabulary, which has no ignore_merges).
        double emptyCache = bestOfThree(() -> ByteLevelBpeTokenizer.fromGguf(metadata), english);
        Map<String, Object> qwen2 = new HashMap<>(metadata.asMap());
        qwen2.put(ByteLevelBpeTokenizer.KEY_PRE, "qwen2");
        double merged = bestOfThree(
                () -> ByteLevelBpeTokenizer.fromGguf(GgufMetadata.of(Path.of("qwen2.gguf"), qwen2)), english);

        System.out.printf("llama-bpe encode, English: %.1f MB/s with the word cache warm (%.1f MB, best of 3);"
                        + " from an empty cache (%.2f MB): %.1f MB/s, %.1f MB/s merging every word;"
                        + " %.2f bytes per token%n",
                warm, mb(text), mb(english), emptyCache, merged, english.getBytes(UTF_8).length / (double) tokens);
    }

    private static double bestOfThree(ByteLevelBpeTokenizer tokenizer, String text) {
        return bestOfThree(() -> tokenizer, text);
    }

    /** The best speed of three encodings, in MB (of UTF-8) per second. */
    private static double bestOfThree(Supplier<ByteLevelBpeTokenizer> tokenizers, String text) {
        double best = 0;
        for (int round = 0; round < 3; round++) {
            ByteLevelBpeTokenizer tokenizer = tokenizers.get();
            long start = System.nanoTime();
            tokenizer.encode(text, false, false);
            best = Math.max(best, mb(text) / ((System.nanoTime() - start) / 1e9));
        }
        return best;
    }

    private static double mb(String text) {
        return text.getBytes(UTF_8).length / 1e6;
    }

    private static String jdkLegalTexts() {
        Path legal = Path.of(System.getProperty("java.home"), "legal");
        if (!Files.isDirectory(legal)) {
            return "";
        }
        Set<String> texts = new LinkedHashSet<>(); // modules share licence files: each text once
        try (Stream<Path> files = Files.walk(legal)) {
            for (Path file : files.filter(Files::isRegularFile).sorted().toList()) {
                texts.add(Files.readString(file, UTF_8));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return String.join("\n", texts);
    }
}
