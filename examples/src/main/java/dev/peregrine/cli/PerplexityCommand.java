package dev.peregrine.cli;

import dev.peregrine.Completion;
import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.TokenLogprob;
import dev.peregrine.cli.Args.Option;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * {@code peregrine perplexity}: a model's perplexity on a text file, computed as llama.cpp's
 * llama-perplexity does: the text (less one trailing newline) is tokenized with BOS where the
 * model's prompts have one and special-token text as plain text, at least 2 x {@code -c} tokens,
 * and cut into chunks of {@code -c} tokens, each chunk's first token replaced by BOS; in each chunk
 * only the second half is scored, every token with at least half a chunk of context. Prints the
 * running estimate after each chunk ({@code [1]12.3456,[2]...}) and llama-perplexity's final line
 * ({@code Final estimate: PPL = x +/- standard error}).
 */
final class PerplexityCommand {
    private static final List<Option> OPTIONS = Args.options(List.of(
            new Option("threads", true, "-t", "--threads"),
            new Option("context", true, "-c", "--context"),
            new Option("kv-cache-type", true, "--kv-cache-type")),
            Args.HELP,
            new Option("model", true, "-m", "--model"),
            new Option("file", true, "-f", "--file"),
            new Option("chunks", true, "--chunks"));
    private static final int DEFAULT_CHUNK = 512;

    private PerplexityCommand() {
    }

    static int run(String[] argv, PrintStream out, PrintStream err) {
        Args args = Args.parse(argv, 0, OPTIONS);
        if (args.has("help")) {
            out.print(Peregrine.USAGE_TEXT);
            return Peregrine.OK;
        }
        Path modelPath = Path.of(args.required("model", "-m FILE"));
        Path textPath = Path.of(args.required("file", "-f TEXT_FILE"));
        int chunk = args.intValue("context", DEFAULT_CHUNK);
        if (chunk < 4) {
            throw new UsageException("-c must be at least 4 tokens, got " + chunk);
        }
        int maxChunks = args.intValue("chunks", -1);
        if (maxChunks == 0) {
            throw new UsageException("--chunks must be at least 1 (or negative for every chunk, the default), got 0");
        }
        if (maxChunks < 0) {
            maxChunks = Integer.MAX_VALUE; // as llama-perplexity: every chunk the text holds
        }
        String text = readUtf8(textPath);
        if (text.endsWith("\n")) {
            text = text.substring(0, text.length() - 1); // as llama.cpp's -f: one trailing newline dropped
        }
        // The chunk is the context: -c sizes the model's context too.
        try (Model model = Model.load(modelPath, GenerateCommand.modelOptions(args).withContextLength(chunk))) {
            // As llama-perplexity: BOS where the model's prompts have one, special-token text as text.
            int[] tokens = model.encode(text, true, false);
            int[] bos = model.encode("", true, false);
            if (tokens.length < 2L * chunk) {
                throw new IllegalArgumentException("you need at least " + 2L * chunk + " tokens to evaluate perplexity with a"
                        + " context of " + chunk + " (as llama-perplexity: 2 x -c); " + textPath + " tokenizes to only "
                        + tokens.length + " tokens");
            }
            int chunks = Math.min(maxChunks, tokens.length / chunk);
            // Only the chunk's own tokens scored: nothing generated, so a chunk may fill the context.
            GenerationConfig scoring = GenerationConfig.greedy().maxTokens(0).promptLogprobs(0);
            double negativeLogSum = 0;
            double squaresSum = 0;
            long scored = 0;
            long started = System.nanoTime();
            for (int c = 0; c < chunks; c++) {
                int[] window = Arrays.copyOfRange(tokens, c * chunk, (c + 1) * chunk);
                if (bos.length > 0) {
                    window[0] = bos[0];
                }
                Completion done = model.generator().generate(window, scoring, t -> { });
                List<TokenLogprob> logprobs = done.promptLogprobs();
                // logprobs.get(i) scores token i + 1; llama.cpp scores tokens chunk/2 + 1 .. chunk - 1.
                for (int i = chunk / 2; i < logprobs.size(); i++) {
                    double nll = -logprobs.get(i).logprob();
                    negativeLogSum += nll;
                    squaresSum += nll * nll;
                    scored++;
                }
                out.printf(Locale.ROOT, "[%d]%.4f,", c + 1, Math.exp(negativeLogSum / scored));
                out.flush();
            }
            double seconds = (System.nanoTime() - started) / 1e9;
            out.println();
            // llama-perplexity's estimate and its standard error: the deviation of the tokens' negative
            // log-likelihoods over sqrt(n - 1), times the perplexity.
            double mean = negativeLogSum / scored;
            double variance = squaresSum / scored - mean * mean;
            double ppl = Math.exp(mean);
            out.printf(Locale.ROOT, "Final estimate: PPL = %.4f +/- %.5f%n", ppl,
                    variance > 0 && scored > 1 ? Math.sqrt(variance / (scored - 1)) * ppl : 0.0);
            out.flush();
            err.printf(Locale.ROOT, "%d tokens scored in %d chunks of %d; %d tokens evaluated in %.1f s, %.1f tok/s%n",
                    scored, chunks, chunk, (long) chunks * chunk, seconds, chunks * chunk / seconds);
        }
        return Peregrine.OK;
    }

    /** The file's text, which must be UTF-8: an invalid byte is named by its offset. */
    private static String readUtf8(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (java.nio.file.NoSuchFileException e) {
            throw new UncheckedIOException("no such file: " + file, e);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
        ByteBuffer in = ByteBuffer.wrap(bytes);
        CharBuffer text = CharBuffer.allocate(bytes.length);
        CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder(); // reports malformed input
        CoderResult result = utf8.decode(in, text, true);
        if (!result.isError()) {
            result = utf8.flush(text);
        }
        if (result.isError()) {
            throw new IllegalArgumentException(file + " is not UTF-8 text: invalid byte sequence at byte offset "
                    + in.position());
        }
        return text.flip().toString();
    }
}
