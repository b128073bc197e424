package dev.peregrine.cli;

import dev.peregrine.cli.Args.Option;
import dev.peregrine.format.hf.HfDirectoryWriter;
import dev.peregrine.model.Family;
import dev.peregrine.synth.FileType;
import dev.peregrine.synth.ModelShape;
import dev.peregrine.synth.SyntheticHfTokenizer;
import dev.peregrine.synth.SyntheticModel;
import dev.peregrine.synth.TokenizerMetadata;
import dev.peregrine.tensor.DType;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code peregrine synth}: writes a model of a real (or given) shape with seeded random weights,
 * as a GGUF file or a Hugging Face directory.
 */
final class SynthCommand {
    private static final List<Option> OPTIONS = List.of(
            Args.HELP,
            new Option("shape", true, "--shape"),
            new Option("dim", true, "--dim"),
            new Option("layers", true, "--layers"),
            new Option("heads", true, "--heads"),
            new Option("kv-heads", true, "--kv-heads"),
            new Option("ffn", true, "--ffn"),
            new Option("vocab", true, "--vocab"),
            new Option("ctx", true, "--ctx"),
            new Option("tied", false, "--tied"),
            new Option("dtype", true, "--dtype"),
            new Option("output-type", true, "--output-type"),
            new Option("format", true, "--format"),
            new Option("seed", true, "--seed"),
            new Option("vocab-from", true, "--vocab-from"),
            new Option("threads", true, "-t", "--threads"),
            new Option("output", true, "-o", "--output"));

    private static final List<String> DTYPES = List.of("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k",
            "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s",
            "q5_k_m");
    private static final int DEFAULT_CONTEXT = 4096;

    private SynthCommand() {
    }

    static int run(String[] argv, PrintStream out, PrintStream err) {
        Args args = Args.parse(argv, 0, OPTIONS);
        if (args.has("help")) {
            out.print(Peregrine.USAGE_TEXT);
            return Peregrine.OK;
        }
        Path output = Path.of(args.required("output", "-o PATH"));
        FileType fileType = fileType(args.value("dtype").orElse("f16"));
        if (args.has("output-type")) {
            fileType = fileType.withOutputType(singleType(args.value("output-type").orElseThrow(), "--output-type"));
        }
        String format = args.value("format").orElse("gguf");
        if (!format.equals("gguf") && !format.equals("hf")) {
            throw new IllegalArgumentException("unknown --format '" + format + "' (known: gguf, hf)");
        }
        if (format.equals("hf") && fileType.outputType() != null) {
            throw new IllegalArgumentException("--output-type applies to --format gguf (hf directories hold one type)");
        }
        if (format.equals("hf") && fileType.base().isQuantized()) {
            throw new IllegalArgumentException("--format hf stores f32, f16 or bf16 tensors, not "
                    + fileType.name() + " (quantised types are GGUF-only)");
        }
        if (args.has("vocab") && args.has("vocab-from")) {
            throw new IllegalArgumentException("--vocab and --vocab-from both set the vocabulary size: give one");
        }
        if (format.equals("hf") && args.has("vocab-from")) {
            throw new IllegalArgumentException("--vocab-from applies to --format gguf (hf directories get the synthetic"
                    + " vocabulary's tokenizer.json)");
        }
        if (format.equals("gguf") && Files.isDirectory(output)) {
            throw new IllegalArgumentException(output + " is a directory: -o names the GGUF file to write");
        }
        if (format.equals("hf") && Files.isRegularFile(output)) {
            throw new IllegalArgumentException(output + " is a file: -o names the directory to write for --format hf");
        }

        TokenizerMetadata tokenizer = args.value("vocab-from").map(f -> TokenizerMetadata.copiedFrom(Path.of(f))).orElse(null);
        ModelShape shape = shape(args, tokenizer);
        if (format.equals("gguf") && tokenizer == null) {
            tokenizer = TokenizerMetadata.synthetic(shape);
        }
        if (tokenizer != null) {
            tokenizer.loadProblem().ifPresent(p -> err.println("note: Peregrine cannot load this tokenizer: " + p));
        }

        if (format.equals("hf")) {
            // Its tokenizer is written after the weights: a vocabulary too small for one must fail
            // first, not leave a directory of weights without a tokenizer.
            SyntheticHfTokenizer.checkSize(shape.vocab());
        }
        SyntheticModel model = SyntheticModel.of(shape, args.longValue("seed", 0));
        int threads = args.intValue("threads", 0);
        SyntheticModel.Written written = format.equals("gguf")
                ? model.writeGguf(output, fileType, tokenizer, threads)
                : withTokenizer(model.writeHf(output, fileType.base(), HfDirectoryWriter.DEFAULT_SHARD_LIMIT, threads),
                        output, shape.vocab());
        out.printf(Locale.ROOT, "wrote %s (%s): %s, %s, seed %d, %,d parameters, %,d bytes in %.1f s%n",
                output, written.files().size() == 1 ? "1 file" : written.files().size() + " files",
                shape.describe(), fileType.describe(), model.seed(),
                written.parameters(), written.bytes(), written.nanos() / 1e9);
        return Peregrine.OK;
    }

    /**
     * Adds tokenizer.json and tokenizer_config.json of the synthetic vocabulary to a written Hugging
     * Face directory, so that it loads ({@code peregrine generate}) with the ids of the GGUF form.
     */
    private static SyntheticModel.Written withTokenizer(SyntheticModel.Written weights, Path dir, int vocab) {
        List<Path> files = new ArrayList<>(weights.files());
        long bytes = weights.bytes();
        for (Path file : SyntheticHfTokenizer.write(dir, vocab)) {
            files.add(file);
            try {
                bytes += Files.size(file);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return new SyntheticModel.Written(files, weights.parameters(), bytes, weights.nanos());
    }

    /** A single type for every matrix (its DType's name), or one of llama.cpp's mixes (q3_k_s ... q5_k_m). */
    private static FileType fileType(String name) {
        String n = name.toLowerCase(Locale.ROOT);
        if (!DTYPES.contains(n)) {
            throw new IllegalArgumentException("unknown --dtype '" + name + "' (known: " + String.join(", ", DTYPES) + ")");
        }
        for (FileType mix : FileType.MIXES) {
            if (mix.name().equals(n)) {
                return mix;
            }
        }
        return FileType.of(singleType(n, "--dtype"));
    }

    /** One of the single types --dtype takes (not a mix). */
    private static DType singleType(String name, String option) {
        String n = name.toLowerCase(Locale.ROOT);
        boolean mix = FileType.MIXES.stream().anyMatch(m -> m.name().equals(n));
        if (!DTYPES.contains(n) || mix) {
            List<String> singles = DTYPES.stream().filter(t -> FileType.MIXES.stream().noneMatch(m -> m.name().equals(t))).toList();
            throw new IllegalArgumentException("unknown " + option + " '" + name + "' (known: " + String.join(", ", singles) + ")");
        }
        return DType.valueOf(n.toUpperCase(Locale.ROOT));
    }

    /** The named shape with any explicit sizes applied, or a shape made of explicit sizes only. */
    private static ModelShape shape(Args args, TokenizerMetadata tokenizer) {
        ModelShape base = args.value("shape").map(ModelShape::named).orElse(null);
        boolean named = base != null;
        // Read in the order the usage text lists them, so the first missing one is reported.
        int dim = size(args, "dim", named ? base.dim() : null);
        int layers = size(args, "layers", named ? base.layers() : null);
        int heads = size(args, "heads", named ? base.heads() : null);
        int kvHeads = size(args, "kv-heads", named ? base.kvHeads() : heads);
        int ffn = size(args, "ffn", named ? base.ffn() : null);
        int vocab = tokenizer != null ? tokenizer.tokenCount() : size(args, "vocab", named ? base.vocab() : null);
        int context = size(args, "ctx", named ? base.contextLength() : DEFAULT_CONTEXT);
        return new ModelShape(named ? base.name() : "custom", dim, layers, heads, kvHeads, ffn, vocab, context,
                named ? base.ropeTheta() : 10000f,
                named ? base.rmsEps() : 1e-5f,
                args.has("tied") || (named && base.tiedEmbeddings()),
                // An explicit head size (Qwen3's, Gemma's) is kept when sizes are overridden; a derived one is derived again.
                named && base.headDim() != base.dim() / base.heads() ? base.headDim() : -1,
                named ? base.family() : Family.LLAMA,
                named ? base.slidingWindow() : 0,
                named ? base.attentionSoftcap() : 0,
                named ? base.finalSoftcap() : 0);
    }

    /** An explicit size, else {@code fallback}; without either the command line is incomplete. */
    private static int size(Args args, String option, Integer fallback) {
        if (!args.has(option) && fallback == null) {
            throw new UsageException("missing --" + option + " (or give --shape NAME)");
        }
        return args.intValue(option, fallback == null ? 0 : fallback);
    }
}
