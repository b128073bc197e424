package dev.peregrine.cli;

import dev.peregrine.EmbeddingOptions;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.Pooling;
import dev.peregrine.cli.Args.Option;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code peregrine embed}: embeds the texts given on the command line with an encoder model; prints
 * the vector of one text (its first dimensions and its norm), or the cosine similarity of every pair
 * of two or more texts.
 */
final class EmbedCommand {
    private static final List<Option> OPTIONS = List.of(
            Args.HELP,
            new Option("model", true, "-m", "--model"),
            new Option("pooling", true, "--pooling"),
            new Option("query", false, "--query"),
            new Option("passage", false, "--passage"),
            new Option("query-prefix", true, "--query-prefix"),
            new Option("passage-prefix", true, "--passage-prefix"),
            new Option("no-normalize", false, "--no-normalize"),
            new Option("max-length", true, "--max-length"),
            new Option("dims", true, "--dims"),
            new Option("threads", true, "-t", "--threads"));
    /** Dimensions of a vector shown by default. */
    private static final int SHOWN_DIMS = 8;

    private EmbedCommand() {
    }

    static int run(String[] argv, PrintStream out, PrintStream err) {
        List<String> texts = new ArrayList<>();
        Args args = Args.parse(optionsOnly(argv, texts), 0, OPTIONS);
        if (args.has("help")) {
            out.print(Peregrine.USAGE_TEXT);
            return Peregrine.OK;
        }
        Path modelPath = Path.of(args.required("model", "-m MODEL"));
        if (texts.isEmpty()) {
            throw new UsageException("no text given: peregrine embed -m MODEL \"text\" ...");
        }
        if (args.has("query") && args.has("passage")) {
            throw new UsageException("--query and --passage exclude each other");
        }
        Pooling pooling = args.value("pooling").map(EmbedCommand::pooling).orElse(null);
        int dims = args.intValue("dims", SHOWN_DIMS);
        if (dims < 0) {
            throw new UsageException("--dims takes the number of values shown, 0 or more; got " + dims);
        }
        ModelOptions modelOptions = ModelOptions.defaults().withThreads(args.intValue("threads", 0));

        try (Model model = Model.load(modelPath, modelOptions)) {
            EmbeddingOptions options = model.embeddingOptions();
            if (pooling != null) {
                options = options.withPooling(pooling);
            }
            options = options.withPrefixes(args.value("query-prefix").orElse(options.queryPrefix()),
                    args.value("passage-prefix").orElse(options.passagePrefix()));
            if (args.has("query")) {
                options = options.forQueries();
            } else if (args.has("passage")) {
                options = options.forPassages();
            }
            if (args.has("no-normalize")) {
                options = options.withNormalize(false);
            }
            options = options.withMaxLength(args.intValue("max-length", options.maxLength()));
            // A prefix given for the other kind of input is not used: said so. (A model whose files name a
            // default prompt embeds plain texts with it, as sentence-transformers does.)
            boolean queryPrefixUnused = args.has("query-prefix") && options.input() != EmbeddingOptions.Input.QUERY;
            boolean passagePrefixUnused = args.has("passage-prefix") && options.input() != EmbeddingOptions.Input.PASSAGE;
            if (queryPrefixUnused || passagePrefixUnused) {
                err.println("peregrine: note: " + (queryPrefixUnused ? "--query-prefix" : "--passage-prefix")
                        + " not added: --query-prefix and --passage-prefix set what --query and --passage put in front"
                        + " of the texts");
            }
            if ((args.has("query") || args.has("passage")) && options.prefix().isEmpty()) {
                err.println("peregrine: note: the model has no " + (args.has("query") ? "query" : "passage")
                        + " prefix; give one with --" + (args.has("query") ? "query" : "passage") + "-prefix (e5: \""
                        + (args.has("query") ? "query" : "passage") + ": \")");
            }
            List<float[]> vectors = model.embed(texts, options);
            err.printf(Locale.ROOT, "%s%nembedded with %s pooling%s%s%n", model.describe(), options.pooling().name().toLowerCase(Locale.ROOT),
                    options.normalize() ? ", normalised" : "", options.prefix().isEmpty() ? "" : ", prefix \"" + options.prefix() + "\"");
            if (vectors.size() == 1) {
                out.println(formatVector(vectors.getFirst(), dims));
            } else {
                printSimilarities(out, texts, vectors);
            }
        }
        return Peregrine.OK;
    }

    /** The options of {@code argv} (for {@link Args}); its texts go to {@code texts}. */
    static String[] optionsOnly(String[] argv, List<String> texts) {
        return Args.optionsOnly(argv, OPTIONS, texts);
    }

    private static Pooling pooling(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "mean" -> Pooling.MEAN;
            case "cls" -> Pooling.CLS;
            case "last", "last-token", "lasttoken" -> Pooling.LAST_TOKEN;
            default -> throw new IllegalArgumentException("--pooling expects mean, cls or last, got '" + name + "'");
        };
    }

    /** "[0.0123, -0.0456, ...] (384 dims, norm 1.0000)". */
    static String formatVector(float[] v, int shown) {
        StringBuilder b = new StringBuilder("[");
        int n = Math.min(Math.max(shown, 0), v.length);
        for (int i = 0; i < n; i++) {
            b.append(i > 0 ? ", " : "").append(String.format(Locale.ROOT, "%.4f", v[i]));
        }
        if (n < v.length) {
            b.append(n > 0 ? ", ..." : "...");
        }
        return b.append(String.format(Locale.ROOT, "] (%d dims, norm %.4f)", v.length, norm(v))).toString();
    }

    private static void printSimilarities(PrintStream out, List<String> texts, List<float[]> vectors) {
        int n = vectors.size();
        StringBuilder header = new StringBuilder("cosine similarity\n     ");
        for (int j = 0; j < n; j++) {
            header.append(String.format(Locale.ROOT, "%8s", "[" + j + "]"));
        }
        out.println(header);
        for (int i = 0; i < n; i++) {
            StringBuilder row = new StringBuilder(String.format(Locale.ROOT, "%-5s", "[" + i + "]"));
            for (int j = 0; j < n; j++) {
                row.append(String.format(Locale.ROOT, "%8.4f", cosine(vectors.get(i), vectors.get(j))));
            }
            out.println(row);
        }
        out.println();
        for (int i = 0; i < n; i++) {
            out.println("[" + i + "] " + texts.get(i));
        }
    }

    static double cosine(float[] a, float[] b) {
        double dot = 0;
        for (int i = 0; i < a.length; i++) {
            dot += (double) a[i] * b[i];
        }
        double denominator = norm(a) * norm(b);
        return denominator == 0 ? 0 : dot / denominator;
    }

    private static double norm(float[] v) {
        double sq = 0;
        for (float x : v) {
            sq += (double) x * x;
        }
        return Math.sqrt(sq);
    }
}
