package dev.peregrine.cli;

import dev.peregrine.PeregrineException;
import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The {@code peregrine} command line: {@code generate}, {@code chat}, {@code tokenize}, {@code info},
 * {@code synth}, {@code bench}, {@code embed}, {@code perplexity}, {@code help}.
 *
 * <p>{@link #run} does the work and returns the exit status, so tests call it in-process;
 * {@link #main} only wires it to the process's streams and exit status.
 */
public final class Peregrine {
    static final int OK = 0;
    static final int FAILED = 1;
    static final int USAGE = 2;

    static final String USAGE_TEXT = """
            usage: peregrine <command> [options]

            commands:
              generate   generate text from a prompt
              chat       chat with a model, one message per line of stdin
              tokenize   show the token ids of a text
              info       show a GGUF file's or HF directory's metadata and tensors (or an ONNX encoder's files)
              synth      write a model of a real shape with seeded random weights (GGUF or HF)
              bench      measure prefill and decode speed against the machine's memory bandwidth
              embed      embed texts with an encoder model (ONNX); print vectors or their cosine similarities
              perplexity a model's perplexity on a text file, as llama.cpp's llama-perplexity computes it
              help       show this text

            peregrine generate -m FILE -p PROMPT [options]
              -m, --model PATH           GGUF model file, or Hugging Face directory (config.json,
                                         *.safetensors, tokenizer.json)
              -p, --prompt TEXT          prompt text
              -n, --max-tokens N         most tokens to generate (default 256)
                  --temp T               temperature, 0 (or below) = greedy (default 0.8)
                  --top-k K              keep the K most likely tokens, 0 = off (default 40)
                  --top-p P              nucleus sampling, 1 = off (default 0.95)
                  --min-p P              drop tokens below P x the best one's probability, 0 = off (default 0.05)
                  --temp-last            apply the temperature after top-k, top-p and min-p, as llama.cpp does
                                         (by default it comes first, as in transformers and vLLM)
                  --repeat-penalty R     penalise recently seen tokens, 1 = off (default 1)
                  --repeat-last-n N      tokens (prompt and output) the penalties look back over, 0 = off,
                                         -1 = the whole context (default 64)
                  --frequency-penalty F  subtract F x a token's count in those tokens from its logit (default 0)
                  --presence-penalty P   subtract P from the logit of each token seen in them (default 0)
                  --logit-bias ID=BIAS   add BIAS to token ID's logit, -inf bans it; llama.cpp's ID+BIAS and
                                         ID-BIAS too (repeatable; entries for one token add up)
                  --json-output          constrain the output to one JSON object (ends when it closes)
                  --seed S               random seed, for reproducible sampling (-1, the default: a random one)
                  --stop TEXT            stop when TEXT is generated (repeatable)
              -t, --threads N            CPU threads (default: all processors)
              -c, --context N            context length (default: the model's)
                  --kv-cache-type TYPE   f32 or f16: f16 halves the KV cache's memory and the bytes attention
                                         reads, rounding keys and values to halves (default f32)
                  --draft-model FILE     speculative decoding with this smaller model (same tokenizer)
                  --prompt-lookup        speculative decoding with n-grams of the prompt and output
                  --draft-max K          most tokens drafted per step (default 6)
                  --lookup-ngram N       longest n-gram prompt lookup matches (default 3)
                  --speculate-always     draft at every step, even while drafting is timed slower than plain
                                         decoding (by default the request then decodes plainly for a while)
                  --json                 print one JSON object with ids, text and timings instead of streaming
                  --logprobs N           with --json: each output token's log-probability under the model's
                                         distribution (its raw logits' softmax) and the N (0-20) most likely tokens
                  --prompt-logprobs N    with --json: the same for each prompt token after the first, and the
                                         prompt's perplexity
              sampling options not given take the values the model's files recommend, if any
              (general.sampling.* in a GGUF file, generation_config.json; info shows them), else the
              defaults above

            peregrine chat -m MODEL [options]
              -m, --model MODEL          GGUF file or Hugging Face directory
                  --system TEXT          system message at the start of the conversation
              -n, --temp, --top-k, --top-p, --min-p, --temp-last, --repeat-penalty, --repeat-last-n,
              --frequency-penalty, --presence-penalty, --logit-bias, --json-output, --seed, --stop, -t, -c,
              --kv-cache-type
                                         as for generate
              reads one message per line from stdin and streams each reply to stdout; the prompt
              comes from the model's chat template (tokenizer.chat_template), else a plain
              "User: ... Assistant:" format. /reset starts over; /exit or end of input quits

            peregrine tokenize -m FILE [options] TEXT
              -m, --model FILE           GGUF file (a model, or a vocabulary-only file), or a directory with
                                         tokenizer.json (a Hugging Face model)
                  --ids-only             print only the ids, as [1, 2, 3]
                  --no-bos               do not add BOS
              prints one token a line: its id and the text it adds, quoted and escaped; control
              tokens (BOS, EOS) show as their piece without quotes

            peregrine info -m PATH       (a GGUF file, a Hugging Face directory or an ONNX encoder)

            peregrine synth (--shape NAME | --dim N --layers N --heads N --ffn N --vocab N) -o PATH [options]
                  --shape NAME           llama3.2-1b, smollm2-135m, qwen2.5-0.5b, llama3.1-8b, qwen3-0.6b,
                                         gemma2-2b, gemma3-1b, phi3-mini; for tests tiny, qwen3-tiny,
                                         qwen2-tiny, mistral-tiny, gemma2-tiny, gemma3-tiny or phi3-tiny
                  --dim/--layers/--heads/--kv-heads/--ffn/--vocab/--ctx N
                                         sizes (override the shape's; --kv-heads defaults to --heads)
                  --tied                 output projection shares the token embedding
                  --dtype TYPE           f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k,
                                         q5_k, q6_k, iq4_nl or iq4_xs (every matrix that type), or one of
                                         llama.cpp's mixes q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s,
                                         q5_k_m (its rules per matrix, with its fallbacks where rows are
                                         not whole 256-value blocks) (default f16; hf: float types only;
                                         a single k-quant or iq4_xs needs dim and ffn multiples of 256)
                  --output-type TYPE     store the output projection (the token embedding when tied) as
                                         TYPE, one of the single types above, as llama-quantize's
                                         --output-tensor-type: --dtype q4_0 --output-type q6_k is what
                                         llama-quantize writes for Q4_0 without --pure (gguf only)
                  --format FORMAT        gguf (a file) or hf (a directory, with tokenizer.json and
                                         tokenizer_config.json) (default gguf)
                  --seed N               weight seed; the same seed writes the same bytes (default 0)
                  --vocab-from FILE      copy the tokenizer of a GGUF file (default: a synthetic one; gguf only)
              -t, --threads N            worker threads (default: all processors)
              -o, --output PATH          GGUF file, or directory for --format hf

            peregrine bench -m FILE [options]
              -p, --prompt-tokens N      prompt length for the prefill measurement (default 512)
              -n, --gen-tokens N         tokens generated per decode measurement (default 128)
              -t, --threads N            CPU threads (default: all processors)
              -r, --reps N               repetitions after a warm-up (until the kernels are compiled, <= 30 s); the median is reported (default 3)
              -d, --depth N              decode after a prompt of N + 8 tokens, i.e. with that much context (default 0)
                  --kv-cache-type TYPE   f32 or f16 (default f32)
                  --concurrency LIST     also measure aggregate decode speed at these request counts, e.g. 1,4,16,64
                                         (each level warmed up, then the median of the -r runs)
                  --ttft                 also measure time to first token, idle and during a 2000-token prefill
                                         (the median of up to 5 short requests in each of -r prefills)
                  --decode-during-prefill N  also measure 2 requests' decoding speed, idle and while an
                                         N-token prompt is prefilled, and that prompt's speed meanwhile
                  --draft-model FILE     also measure speculative against plain greedy decoding of a text prompt
                  --prompt-lookup        the same with prompt lookup (--draft-max, --lookup-ngram, --speculate-always
                                         as for generate)
                  --spec-prompt TEXT     the text prompt for that comparison (default: a story opening)
                  --spec-max-batch N     speculate only while at most N sequences run (default 4)
                  --prefill-step-ms N    target duration of a step that prefills while other requests
                                         run, 0 = fixed chunks of --prefill-chunk (default 50: they keep decoding)
                  --prefill-chunk N      most prompt tokens per step (default 512)
                  --json                 print one JSON object

            peregrine embed -m MODEL [options] TEXT...
              -m, --model PATH           .onnx file or directory (model.onnx + tokenizer.json)
                  --pooling MODE         mean, cls or last (default: the model's metadata, else mean)
                  --query / --passage    put the query or passage prefix in front of each text
                  --query-prefix TEXT    the query prefix (e5: "query: "; default: the model's metadata)
                  --passage-prefix TEXT  the passage prefix (e5: "passage: ")
                  --no-normalize         do not scale vectors to unit length
                  --max-length N         truncate texts to N tokens (default: the model's maximum)
                  --dims N               dimensions shown of a single vector (default 8)
              -t, --threads N            CPU threads (default: all processors)
              one text: its vector (first dimensions and norm); two or more: their cosine-similarity matrix

            peregrine perplexity -m MODEL -f TEXT_FILE [options]
              -c, --context N            chunk length in tokens (default 512); each chunk's second half is scored
                  --chunks N             score at most N chunks (default, or a negative N: the whole file)
              -t, --threads, --kv-cache-type
                                         as for generate
              the text needs at least 2 x N tokens (special-token text counts as text, a trailing
              newline is dropped); prints the running estimate after each chunk, then the final
              perplexity and its standard error, in llama-perplexity's format

            environment: PEREGRINE_DEBUG=1 prints stack traces of errors
            """;

    private Peregrine() {
    }

    public static void main(String[] args) {
        // System.out encodes with the platform's console charset (often ASCII under a C locale);
        // model output is UTF-8 text, so write bytes as UTF-8 whatever the platform says.
        PrintStream out = new PrintStream(new BufferedOutputStream(new FileOutputStream(FileDescriptor.out)), false, StandardCharsets.UTF_8);
        PrintStream err = new PrintStream(new FileOutputStream(FileDescriptor.err), true, StandardCharsets.UTF_8);
        int status = run(args, System.in, out, err);
        out.flush();
        err.flush();
        System.exit(status);
    }

    /** Runs one command line with no input; returns the process exit status (0 ok, 1 failed, 2 bad usage). */
    public static int run(String[] args, PrintStream out, PrintStream err) {
        return run(args, InputStream.nullInputStream(), out, err);
    }

    /** Runs one command line reading {@code in} (chat's messages); returns the process exit status. */
    public static int run(String[] args, InputStream in, PrintStream out, PrintStream err) {
        try {
            if (args.length == 0) {
                err.print(USAGE_TEXT); // the first thing to show someone who typed just the name
                return USAGE;
            }
            String[] rest = Arrays.copyOfRange(args, 1, args.length);
            return switch (args[0]) {
                case "generate" -> GenerateCommand.run(rest, out, err);
                case "chat" -> ChatCommand.run(rest, in, out, err);
                case "tokenize" -> TokenizeCommand.run(rest, out);
                case "info" -> InfoCommand.run(rest, out);
                case "synth" -> SynthCommand.run(rest, out, err);
                case "bench" -> BenchCommand.run(rest, out, err);
                case "embed" -> EmbedCommand.run(rest, out, err);
                case "perplexity" -> PerplexityCommand.run(rest, out, err);
                case "help", "-h", "--help" -> {
                    out.print(USAGE_TEXT);
                    yield OK;
                }
                default -> throw new UsageException("unknown command '" + args[0] + "'");
            };
        } catch (TokenPrinter.OutputClosedException e) {
            return OK; // the reader of the output went away (e.g. `| head`): nothing left to do
        } catch (UsageException e) {
            // The error, then the command's own part of the help (the whole help, 140 lines, scrolled
            // the error out of sight); an unknown command gets the whole help.
            err.println("peregrine: " + e.getMessage());
            String section = helpOf(args.length > 0 ? args[0] : "");
            if (section.isEmpty()) {
                err.print(USAGE_TEXT);
            } else {
                err.print("usage: " + section);
                err.println("(peregrine help lists every command)");
            }
            return USAGE;
        } catch (PeregrineException | IllegalArgumentException | IllegalStateException | UncheckedIOException e) {
            return fail(err, e, message(e));
        } catch (RuntimeException e) {
            // A bug rather than bad input; still one line, with the trace on request.
            return fail(err, e, "unexpected error: " + oneLine(e.toString()));
        } finally {
            out.flush();
        }
    }

    /**
     * The part of the help text about one command: from its synopsis line ("peregrine NAME ...") up to
     * the next command's; empty for a name that has none.
     */
    static String helpOf(String command) {
        StringBuilder section = new StringBuilder();
        boolean in = false;
        for (String line : USAGE_TEXT.split("\n", -1)) {
            if (line.startsWith("peregrine ")) {
                in = line.startsWith("peregrine " + command + " ");
            }
            if (in) {
                section.append(line).append('\n');
            }
        }
        return section.toString().stripTrailing().isEmpty() ? "" : section.toString().stripTrailing() + "\n";
    }

    private static int fail(PrintStream err, Throwable e, String line) {
        err.println("peregrine: " + line);
        if ("1".equals(System.getenv("PEREGRINE_DEBUG"))) {
            e.printStackTrace(err);
        }
        return FAILED;
    }

    /** The exception's message on one line (messages may embed a cause's multi-line text). */
    private static String message(Throwable e) {
        String m = e.getMessage();
        if (m == null || m.isBlank()) {
            m = e.toString();
        }
        return oneLine(m);
    }

    private static String oneLine(String s) {
        return s.strip().replaceAll("\\s*\\R\\s*", " ");
    }
}
