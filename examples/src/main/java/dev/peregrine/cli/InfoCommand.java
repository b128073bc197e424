package dev.peregrine.cli;

import dev.peregrine.Model;
import dev.peregrine.ModelFormatException;
import dev.peregrine.PeregrineException;
import dev.peregrine.cli.Args.Option;
import dev.peregrine.embedding.EncoderFiles;
import dev.peregrine.format.gguf.GgufArray;
import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.gguf.GgufMetadata;
import dev.peregrine.format.gguf.GgufTensorInfo;
import dev.peregrine.format.hf.HfCheckpoint;
import dev.peregrine.format.hf.HfLlamaLayout;
import dev.peregrine.format.hf.SafetensorsFile;
import dev.peregrine.model.LlamaCheckpoint;
import dev.peregrine.model.RecommendedSampling;
import dev.peregrine.tokenizer.Tokenizer;
import dev.peregrine.tokenizer.Tokenizers;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.reflect.Array;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code peregrine info}: what a GGUF file (header, metadata, tensors), a Hugging Face directory
 * (config.json, tensors) or an ONNX encoder (its files, its tokenizer) holds, and whether Peregrine
 * can run it.
 */
final class InfoCommand {
    private static final List<Option> OPTIONS = List.of(Args.HELP, new Option("model", true, "-m", "--model"));
    /** Arrays up to this length are printed whole; longer ones (vocabularies) show only their start. */
    private static final int ARRAY_SHOWN = 8;
    /** Strings longer than this (chat templates) are cut, so each metadata entry stays one line. */
    private static final int STRING_SHOWN = 120;

    private InfoCommand() {
    }

    static int run(String[] argv, PrintStream out) {
        Args args = Args.parse(argv, 0, OPTIONS);
        if (args.has("help")) {
            out.print(Peregrine.USAGE_TEXT);
            return Peregrine.OK;
        }
        Path path = Path.of(args.required("model", "-m FILE"));
        GgufMetadata metadata = null; // a GGUF file's; plain heap values, which outlive the mapping
        try (Arena arena = Arena.ofConfined()) {
            if (EncoderFiles.isEncoderPath(path)) {
                printEncoderFiles(out, path);
            } else if (LlamaCheckpoint.isHuggingFaceDirectory(path)) {
                printHuggingFace(out, path, arena);
            } else if (Files.isDirectory(path)) {
                printTokenizerDirectory(out, path);
            } else {
                GgufFile file = GgufFile.open(path, arena);
                metadata = file.metadata();
                printHeader(out, file);
                printMetadata(out, metadata);
                printTensors(out, file.tensorInfos());
            }
        }
        out.println();
        // The file parsed; whether the model loads is a separate question worth answering.
        try (Model model = Model.load(path)) {
            out.println("model: " + model.describe());
            if (!model.isEncoder()) {
                RecommendedSampling sampling = metadata == null ? RecommendedSampling.fromHuggingFace(path)
                        : RecommendedSampling.fromGguf(path, metadata);
                out.println("recommended sampling (generate and chat start from it): " + sampling.describe());
            }
        } catch (PeregrineException e) {
            out.println("model: does not load: " + e.getMessage());
        }
        return Peregrine.OK;
    }

    /**
     * An ONNX encoder (a {@code .onnx} file, or a directory with {@code model.onnx}): the files
     * {@code Model.load} would read and its tokenizer's summary; the network itself is described
     * by the model line that follows, once the runtime has read it.
     */
    private static void printEncoderFiles(PrintStream out, Path path) {
        EncoderFiles files = EncoderFiles.find(path);
        out.printf(Locale.ROOT, "ONNX encoder (embeds texts): %s, %,d bytes%n", files.model(), fileSize(files.model()));
        out.println("  tokenizer: " + files.tokenizer()
                + (files.tokenizerConfig() == null ? "" : " and " + files.tokenizerConfig().getFileName()));
        Tokenizer tokenizer = Tokenizers.fromHuggingFace(files.tokenizer(), files.tokenizerConfig());
        // An encoder's tokenizer frames each text with its post-processor's tokens ([CLS] ... [SEP]),
        // which is what an empty text encodes to.
        int[] framing = tokenizer.encode("", true, false);
        List<String> shown = new ArrayList<>();
        for (int id : framing) {
            shown.add(specialToken(tokenizer, id));
        }
        out.printf(Locale.ROOT, "  %,d tokens; each text framed by: %s%n", tokenizer.vocabularySize(),
                shown.isEmpty() ? "nothing" : String.join(", ", shown));
    }

    private static long fileSize(Path file) {
        try {
            return Files.size(file);
        } catch (IOException e) {
            throw new PeregrineException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    /**
     * A directory without config.json: a Hugging Face tokenizer's (tokenizer.json), summarised as
     * the model would read it; anything else is not something info reads.
     */
    private static void printTokenizerDirectory(PrintStream out, Path dir) {
        Path json = dir.resolve("tokenizer.json");
        if (!Files.isRegularFile(json)) {
            throw new ModelFormatException(dir, -1, "is a directory without config.json or tokenizer.json: info reads a"
                    + " GGUF file or a Hugging Face directory");
        }
        Tokenizer tokenizer = Tokenizers.fromHuggingFaceDirectory(dir);
        out.printf(Locale.ROOT, "Hugging Face tokenizer directory (no config.json, so no model): %s, %,d tokens%n",
                Files.isRegularFile(dir.resolve("tokenizer_config.json")) ? "tokenizer.json and tokenizer_config.json"
                        : "tokenizer.json",
                tokenizer.vocabularySize());
        out.println("  BOS: " + specialToken(tokenizer, tokenizer.bosId()));
        out.println("  EOS: " + specialToken(tokenizer, tokenizer.eosId()));
    }

    private static String specialToken(Tokenizer tokenizer, int id) {
        return id < 0 ? "none" : id + " " + tokenizer.piece(id);
    }

    /** A Hugging Face directory: config.json as it is, then the tensors of every safetensors file. */
    private static void printHuggingFace(PrintStream out, Path dir, Arena arena) {
        HfCheckpoint checkpoint = HfCheckpoint.open(dir, arena);
        out.printf(Locale.ROOT, "Hugging Face directory, %d safetensors file(s), %d tensors%n",
                checkpoint.files().size(), checkpoint.tensors().size());
        out.println();
        out.println("config.json:");
        try {
            Files.readAllLines(dir.resolve(LlamaCheckpoint.HF_CONFIG)).forEach(line -> out.println("  " + line));
        } catch (IOException e) {
            throw new PeregrineException("cannot read " + dir.resolve(LlamaCheckpoint.HF_CONFIG) + ": " + e.getMessage(), e);
        }
        List<GgufTensorInfo> tensors = new ArrayList<>();
        for (SafetensorsFile f : checkpoint.files()) {
            for (SafetensorsFile.Entry e : f.entries().values()) {
                // Shown in ggml order, as for GGUF files, so the two listings compare directly.
                tensors.add(new GgufTensorInfo(e.name(), e.type(), HfLlamaLayout.hfShape(e.shape()), e.begin(), e.byteSize()));
            }
        }
        printTensors(out, tensors);
    }

    private static void printHeader(PrintStream out, GgufFile file) {
        out.printf(Locale.ROOT, "GGUF version %d, %,d bytes, %d metadata keys, %d tensors, alignment %d, data at offset %d%n",
                file.version(), file.fileSize(), file.metadata().asMap().size(), file.tensorInfos().size(),
                file.alignment(), file.dataOffset());
    }

    private static void printMetadata(PrintStream out, GgufMetadata metadata) {
        out.println();
        out.println("metadata:");
        for (Map.Entry<String, Object> e : metadata.asMap().entrySet()) {
            Object v = e.getValue();
            // Plain strings print bare ("general.architecture = llama"); others quoted so nothing is hidden.
            String shown = v instanceof String s && isPlain(s) ? s : formatValue(v);
            out.println("  " + e.getKey() + " = " + shown);
        }
    }

    private static boolean isPlain(String s) {
        return !s.isEmpty() && s.length() <= STRING_SHOWN && s.equals(s.strip()) && s.chars().noneMatch(Character::isISOControl);
    }

    static String formatValue(Object value) {
        return switch (value) {
            case String s -> formatString(s);
            case GgufArray a -> formatArray(a);
            default -> String.valueOf(value);
        };
    }

    private static String formatString(String s) {
        if (s.length() <= STRING_SHOWN) {
            return Json.quote(s);
        }
        return Json.quote(s.substring(0, STRING_SHOWN)) + "... (" + s.length() + " chars)";
    }

    /** Short arrays in full; long ones as "[TYPE x N: first, ...]". */
    private static String formatArray(GgufArray a) {
        int n = a.length();
        int shown = Math.min(n, ARRAY_SHOWN);
        List<String> items = new ArrayList<>(shown);
        for (int i = 0; i < shown; i++) {
            items.add(formatValue(Array.get(a.values(), i)));
        }
        String body = String.join(", ", items);
        if (n <= ARRAY_SHOWN) {
            return "[" + body + "]";
        }
        return "[" + a.elementType() + " x " + n + ": " + body + ", ...]";
    }

    private static void printTensors(PrintStream out, List<GgufTensorInfo> tensors) {
        out.println();
        out.println("tensors (shape in ggml order, row length first):");
        int nameWidth = "name".length();
        for (GgufTensorInfo t : tensors) {
            nameWidth = Math.max(nameWidth, t.name().length());
        }
        String row = "  %-" + nameWidth + "s  %-5s  %-20s  %,14d%n";
        out.printf(Locale.ROOT, "  %-" + nameWidth + "s  %-5s  %-20s  %14s%n", "name", "type", "shape", "bytes");
        long total = 0;
        for (GgufTensorInfo t : tensors) {
            out.printf(Locale.ROOT, row, t.name(), t.type(), Arrays.toString(t.shape()), t.byteSize());
            total += t.byteSize();
        }
        out.printf(Locale.ROOT, "  %-" + nameWidth + "s  %-5s  %-20s  %,14d%n", "total", "", "", total);
    }
}
