package dev.peregrine.cli;

import dev.peregrine.ChatMessage;
import dev.peregrine.ChatTemplate;
import dev.peregrine.Completion;
import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.Session;
import dev.peregrine.TemplateException;
import dev.peregrine.Timings;
import dev.peregrine.cli.Args.Option;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * {@code peregrine chat}: a conversation read from stdin, one user message per line, with replies
 * streamed to stdout. Prompts ("> ") and per-turn statistics go to stderr, so stdout holds only
 * the replies.
 *
 * <p>The whole conversation lives in one {@link Session}. Each turn renders the full conversation
 * with the chat template and appends only the tokens past what the session already holds; where
 * the rendering differs from the session (a reply re-tokenised differently, a template that
 * rewrites earlier turns), the session is first rewound to the common prefix. So a turn costs the
 * new message, not the whole history.
 */
final class ChatCommand {
    private static final List<Option> OPTIONS = Args.options(GenerateCommand.GENERATION_OPTIONS,
            Args.HELP,
            new Option("model", true, "-m", "--model"),
            new Option("system", true, "--system"));
    /** The plain format used when the model has no template; the model ends its turn by starting the next one. */
    static final String PLAIN_STOP = "\nUser:";

    private ChatCommand() {
    }

    static int run(String[] argv, InputStream in, PrintStream out, PrintStream err) {
        Args args = Args.parse(argv, 0, OPTIONS);
        if (args.has("help")) {
            out.print(Peregrine.USAGE_TEXT);
            return Peregrine.OK;
        }
        Path modelPath = Path.of(args.required("model", "-m FILE"));
        GenerateCommand.generationConfig(args, GenerationConfig.defaults()); // a bad option fails before loading
        String system = args.value("system").orElse(null);
        BufferedReader reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));

        try (Model model = Model.load(modelPath, GenerateCommand.modelOptions(args));
             Session session = model.newSession()) {
            // The options not given take the model's recommended sampling, as in llama.cpp.
            GenerationConfig config = GenerateCommand.generationConfig(args, model.generationDefaults());
            Optional<ChatTemplate> template;
            String without;
            try {
                template = model.chatTemplate();
                without = "has no chat template";
            } catch (TemplateException e) {
                // As llama.cpp falls back to a built-in format when the model's template does not parse.
                template = Optional.empty();
                without = "has a chat template that does not compile (" + e.getMessage() + ")";
            }
            if (template.isEmpty()) {
                err.println("peregrine: note: " + modelPath.getFileName() + " " + without
                        + "; using a plain \"User: ... Assistant:\" format");
                List<String> stops = new ArrayList<>(config.stopStrings());
                stops.add(PLAIN_STOP);
                config = config.stopStrings(stops.toArray(String[]::new));
            }
            List<ChatMessage> messages = new ArrayList<>();
            if (system != null) {
                messages.add(ChatMessage.system(system));
            }
            int firstTurn = messages.size();
            err.println("type a message; /reset starts over, /exit or end of input quits");
            while (true) {
                err.print("> ");
                err.flush();
                String line = readLine(reader);
                if (line == null || line.strip().equals("/exit")) {
                    break;
                }
                if (line.strip().equals("/reset")) {
                    messages.subList(firstTurn, messages.size()).clear();
                    session.rewind(session.position());
                    err.println("(conversation cleared)");
                    continue;
                }
                if (line.isBlank()) {
                    continue;
                }
                messages.add(ChatMessage.user(line));
                int[] ids;
                try {
                    ids = model.encode(render(template, messages));
                } catch (TemplateException e) {
                    messages.removeLast();
                    err.println("peregrine: the chat template rejects this conversation: " + e.getMessage());
                    continue;
                }
                if (ids.length >= model.contextLength()) {
                    messages.removeLast();
                    err.println("peregrine: the conversation (" + ids.length + " tokens) no longer fits the context of "
                            + model.contextLength() + " tokens; /reset to start over");
                    continue;
                }
                int kept = commonPrefix(session.tokens(), ids);
                session.rewind(session.position() - kept);
                session.append(Arrays.copyOfRange(ids, kept, ids.length));
                Completion reply = session.generate(config, new TokenPrinter(out));
                out.println();
                out.flush();
                messages.add(ChatMessage.assistant(reply.text()));
                err.println(turnSummary(reply));
            }
        }
        return Peregrine.OK;
    }

    /** The prompt for the conversation so far, ending where the assistant's reply starts. */
    static String render(Optional<ChatTemplate> template, List<ChatMessage> messages) {
        if (template.isPresent()) {
            return template.get().render(messages, true);
        }
        StringBuilder sb = new StringBuilder();
        for (ChatMessage m : messages) {
            String content = m.content() == null ? "" : m.content();
            switch (m.role()) {
                case "system" -> sb.append(content).append("\n\n");
                case "user" -> sb.append("User: ").append(content).append('\n');
                // The reply exactly as generated after "Assistant:", so its tokens match the session's.
                default -> sb.append("Assistant:").append(content).append('\n');
            }
        }
        return sb.append("Assistant:").toString();
    }

    static int commonPrefix(int[] a, int[] b) {
        int n = Math.min(a.length, b.length);
        int i = 0;
        while (i < n && a[i] == b[i]) {
            i++;
        }
        return i;
    }

    /** One line for stderr: "[prompt 12 tokens, 3.1 ms | reply 40 tokens, 250.0 tok/s | finish: eos]". */
    static String turnSummary(Completion c) {
        Timings t = c.timings();
        return String.format(Locale.ROOT, "[prompt %d tokens, %.1f ms | reply %d tokens, %.1f tok/s | finish: %s]",
                t.promptTokens(), t.promptMillis(), t.generatedTokens(), t.generationTokensPerSecond(),
                GenerateCommand.finishReason(c.finishReason()));
    }

    private static String readLine(BufferedReader reader) {
        try {
            String line = reader.readLine();
            // A byte-order mark (Windows editors put one at the start of a UTF-8 file) is no text.
            return line != null && line.startsWith("\uFEFF") ? line.substring(1) : line;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read stdin", e);
        }
    }
}
