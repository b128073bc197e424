package dev.peregrine.cli;

import dev.peregrine.ModelFormatException;
import dev.peregrine.cli.Args.Option;
import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.tokenizer.Tokenizer;
import dev.peregrine.tokenizer.Tokenizers;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;

/**
 * {@code peregrine tokenize}: the token ids of a text as a GGUF model encodes its prompts (special
 * text parsed, BOS as {@code Model.encode} adds it), one per line with the text each contributes.
 * Only the tokenizer is read, so vocabulary-only GGUF files work too.
 */
final class TokenizeCommand {
    private static final List<Option> OPTIONS = List.of(
            Args.HELP,
            new Option("model", true, "-m", "--model"),
            new Option("ids-only", false, "--ids-only"),
            new Option("no-bos", false, "--no-bos"));

    private TokenizeCommand() {
    }

    static int run(String[] argv, PrintStream out) {
        List<String> texts = new ArrayList<>();
        Args args = Args.parse(Args.optionsOnly(argv, OPTIONS, texts), 0, OPTIONS);
        if (args.has("help")) {
            out.print(Peregrine.USAGE_TEXT);
            return Peregrine.OK;
        }
        Path path = Path.of(args.required("model", "-m FILE"));
        if (texts.size() != 1) {
            throw new UsageException(texts.isEmpty() ? "no text given: peregrine tokenize -m FILE \"text\""
                    : "give one text (quote it), got " + texts.size() + " arguments");
        }
        Tokenizer tokenizer;
        if (Files.isDirectory(path) && !Files.isRegularFile(path.resolve("tokenizer.json"))) {
            throw new ModelFormatException(path, -1, "is a directory without tokenizer.json: tokenize reads a GGUF file"
                    + " or a Hugging Face directory's tokenizer.json");
        }
        if (Files.isDirectory(path)) {
            // A Hugging Face model (or ONNX encoder) directory: its tokenizer.json, as Model.load reads it.
            tokenizer = Tokenizers.fromHuggingFaceDirectory(path);
        } else {
            try (Arena arena = Arena.ofConfined()) {
                // The metadata is parsed onto the heap: the tokenizer outlives the mapping.
                tokenizer = Tokenizers.fromGguf(GgufFile.open(path, arena).metadata());
            }
        }
        int[] ids = tokenizer.encodePrompt(texts.getFirst(), !args.has("no-bos"));
        if (args.has("ids-only")) {
            out.println(Arrays.stream(ids).mapToObj(String::valueOf).collect(Collectors.joining(", ", "[", "]")));
        } else {
            for (int id : ids) {
                out.printf("%6d %s%n", id, show(tokenizer, id));
            }
        }
        return Peregrine.OK;
    }

    /**
     * What token {@code id} adds to the text, quoted and escaped ({@code "▁Once"} shows as
     * {@code " Once"}); a control token shows as its piece without quotes, whether it adds nothing
     * to decoded text (GGUF vocabularies) or its piece (a Hugging Face tokenizer's special tokens).
     */
    static String show(Tokenizer tokenizer, int id) {
        byte[] bytes = tokenizer.tokenBytes(id);
        return bytes.length == 0 || tokenizer.isControlToken(id) ? tokenizer.piece(id) : quote(bytes);
    }

    /**
     * Bytes as a double-quoted string: quotes, backslashes and control characters escaped, and bytes
     * that are not whole UTF-8 characters (a byte token, part of a character) as {@code \xNN}.
     */
    static String quote(byte[] bytes) {
        StringBuilder sb = new StringBuilder("\"");
        String text = strictUtf8(bytes);
        if (text != null) {
            text.codePoints().forEach(c -> escape(sb, c));
        } else {
            for (byte b : bytes) {
                if (b >= 0) {
                    escape(sb, b);
                } else {
                    sb.append(String.format("\\x%02x", b & 0xff));
                }
            }
        }
        return sb.append('"').toString();
    }

    private static void escape(StringBuilder sb, int c) {
        switch (c) {
            case '"' -> sb.append("\\\"");
            case '\\' -> sb.append("\\\\");
            case '\n' -> sb.append("\\n");
            case '\r' -> sb.append("\\r");
            case '\t' -> sb.append("\\t");
            default -> {
                if (c < 0x20 || c == 0x7f) {
                    sb.append(String.format("\\x%02x", c));
                } else {
                    sb.appendCodePoint(c);
                }
            }
        }
    }

    private static String strictUtf8(byte[] bytes) {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            return null;
        }
    }
}
