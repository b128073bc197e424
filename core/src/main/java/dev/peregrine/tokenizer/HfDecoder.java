package dev.peregrine.tokenizer;

import static java.nio.charset.StandardCharsets.UTF_8;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The decoder of a Hugging Face tokenizer.json: a chain of steps from token strings to text.
 *
 * <p>Each step is written twice, because decoding a whole sequence and streaming one token at a
 * time need different things:
 * <ul>
 *   <li>{@link Step#chain} is Hugging Face's {@code decode_chain}, list of strings in, list out,
 *       so that {@link #decode} gives exactly the text Hugging Face's {@code decode} gives, down to
 *       the first-token rules (Metaspace and Strip drop the leading space) and the U+FFFD of bytes
 *       that are not UTF-8;
 *   <li>{@link Step#middle} is what one token contributes in the middle of a long sequence, as raw
 *       bytes (a byte-fallback token is its byte, not U+FFFD), which {@link HfTokenizer#tokenBytes}
 *       hands to the streaming decoder.
 * </ul>
 * The two agree: the text of a sequence is the text of its start followed by the middle bytes of
 * the rest, as long as those bytes are well-formed UTF-8 (Hugging Face turns an ill-formed run of
 * byte-fallback tokens into one U+FFFD per byte, streaming into one per maximal ill-formed part)
 * and, with a Strip step after the tokens are fused, except for what it strips from the end of the
 * text, which a stream cannot know. Immutable and thread-safe.
 */
final class HfDecoder {
    private final List<Step> steps;

    /** @param steps in order; none: the tokens are joined with spaces, as without a decoder */
    HfDecoder(List<Step> steps) {
        this.steps = steps.isEmpty() ? List.of(new JoinWithSpaces()) : List.copyOf(steps);
    }

    /** Hugging Face's {@code decode} of the tokens' strings. */
    String decode(List<String> tokens) {
        for (Step step : steps) {
            tokens = step.chain(tokens);
        }
        return String.join("", tokens);
    }

    /** The bytes {@code token} contributes to decoded text when it is neither first nor last. */
    byte[] middle(String token) {
        byte[] bytes = steps.getFirst().middle(token);
        boolean fused = steps.getFirst().fuses(); // whether the steps so far joined all tokens into one string
        for (int i = 1; i < steps.size(); i++) {
            bytes = steps.get(i).middle(bytes, fused);
            fused |= steps.get(i).fuses();
        }
        return bytes;
    }

    sealed interface Step {
        List<String> chain(List<String> tokens);

        /**
         * What a token in the middle of the sequence becomes.
         *
         * @param fused whether the token is by now part of one string holding all tokens (so it is
         *              not at the start of a string of its own)
         */
        byte[] middle(byte[] token, boolean fused);

        /** {@link #middle(byte[], boolean)} as the first step, given the token's text. */
        default byte[] middle(String token) {
            return middle(token.getBytes(UTF_8), false);
        }

        /** Whether the step joins all tokens into one string. */
        default boolean fuses() {
            return false;
        }
    }

    /** GPT-2's stand-in characters back to bytes (a token with any other character stays as it is). */
    record ByteLevel() implements Step {
        @Override
        public List<String> chain(List<String> tokens) {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            for (String token : tokens) {
                bytes.writeBytes(bytesOf(token));
            }
            byte[] all = bytes.toByteArray();
            StringBuilder text = new StringBuilder(all.length);
            Utf8Decoder utf8 = new Utf8Decoder(); // maximal ill-formed parts become U+FFFD, as from_utf8_lossy
            utf8.decode(all, 0, all.length, text);
            utf8.finish(text);
            return List.of(text.toString());
        }

        @Override
        public byte[] middle(byte[] token, boolean fused) {
            return bytesOf(new String(token, UTF_8));
        }

        @Override
        public byte[] middle(String token) {
            return bytesOf(token); // no detour through UTF-8: this runs for every token at load
        }

        @Override
        public boolean fuses() {
            return true;
        }

        private static byte[] bytesOf(String token) {
            byte[] bytes = new byte[token.length()];
            for (int i = 0; i < token.length(); i++) {
                char c = token.charAt(i);
                int b = c < ByteLevelBpeTokenizer.CHAR_BYTES.length ? ByteLevelBpeTokenizer.CHAR_BYTES[c] : -1;
                if (b < 0) {
                    return token.getBytes(UTF_8);
                }
                bytes[i] = (byte) b;
            }
            return bytes;
        }
    }

    /** Tokens "&lt;0xHH&gt;" to their byte; a run of them is decoded as UTF-8, or one U+FFFD per byte. */
    record ByteFallback() implements Step {
        @Override
        public List<String> chain(List<String> tokens) {
            List<String> out = new ArrayList<>(tokens.size());
            ByteArrayOutputStream run = new ByteArrayOutputStream();
            for (String token : tokens) {
                int b = byteOf(token);
                if (b >= 0) {
                    run.write(b);
                    continue;
                }
                flush(run, out);
                out.add(token);
            }
            flush(run, out);
            return out;
        }

        private static void flush(ByteArrayOutputStream run, List<String> out) {
            if (run.size() == 0) {
                return;
            }
            byte[] bytes = run.toByteArray();
            run.reset();
            try {
                out.add(UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .decode(ByteBuffer.wrap(bytes)).toString());
            } catch (CharacterCodingException e) {
                for (int i = 0; i < bytes.length; i++) {
                    out.add("\uFFFD");
                }
            }
        }

        @Override
        public byte[] middle(byte[] token, boolean fused) {
            int b = token.length == 6 ? byteOf(new String(token, UTF_8)) : -1;
            return b >= 0 ? new byte[] {(byte) b} : token;
        }

        /**
         * The byte of a token "&lt;0xHH&gt;", or -1. Like Rust's {@code u8::from_str_radix}, either
         * case of hex digit is accepted, and so is "+H".
         */
        static int byteOf(String token) {
            if (token.length() != 6 || !token.startsWith("<0x") || token.charAt(5) != '>') {
                return -1;
            }
            int high = token.charAt(3) == '+' ? 0 : Character.digit(token.charAt(3), 16);
            int low = Character.digit(token.charAt(4), 16);
            return high < 0 || low < 0 || token.charAt(3) > 0x7F || token.charAt(4) > 0x7F ? -1 : high << 4 | low;
        }
    }

    /** Every match of {@code pattern} (a literal string, or a regular expression) becomes {@code content}. */
    record Replace(String literal, Pattern regex, String content) implements Step {
        @Override
        public List<String> chain(List<String> tokens) {
            List<String> out = new ArrayList<>(tokens.size());
            for (String token : tokens) {
                out.add(literal != null ? token.replace(literal, content)
                        : FileRegex.run(regex, token, () -> regex.matcher(token).replaceAll(Matcher.quoteReplacement(content))));
            }
            return out;
        }

        @Override
        public byte[] middle(byte[] token, boolean fused) {
            if (literal != null) {
                return replaceBytes(token, literal.getBytes(UTF_8), content.getBytes(UTF_8));
            }
            // a regular expression sees characters: bytes that are not UTF-8 become U+FFFD first
            String text = new String(token, UTF_8);
            return FileRegex.run(regex, text, () -> regex.matcher(text).replaceAll(Matcher.quoteReplacement(content)))
                    .getBytes(UTF_8);
        }
    }

    /** All tokens joined into one. */
    record Fuse() implements Step {
        @Override
        public List<String> chain(List<String> tokens) {
            return List.of(String.join("", tokens));
        }

        @Override
        public byte[] middle(byte[] token, boolean fused) {
            return token;
        }

        @Override
        public boolean fuses() {
            return true;
        }
    }

    /** Up to {@code start} leading and {@code stop} trailing {@code content} characters removed from each token. */
    record Strip(int content, int start, int stop) implements Step {
        @Override
        public List<String> chain(List<String> tokens) {
            List<String> out = new ArrayList<>(tokens.size());
            for (String token : tokens) {
                out.add(strip(token));
            }
            return out;
        }

        @Override
        public byte[] middle(byte[] token, boolean fused) {
            // a token fused with the others is neither the start nor the end of its string
            return fused ? token : strip(new String(token, UTF_8)).getBytes(UTF_8);
        }

        private String strip(String token) {
            int[] cps = token.codePoints().toArray();
            int from = 0;
            while (from < Math.min(start, cps.length) && cps[from] == content) {
                from++;
            }
            int to = cps.length;
            while (cps.length - to < stop && to > from && cps[to - 1] == content) {
                to--;
            }
            return new String(cps, from, to - from);
        }
    }

    /**
     * "▁" back to a space; in the first token it is dropped instead (unless the prepend scheme is
     * "never"), which removes the space the pre-tokenizer put in front of the text.
     */
    record Metaspace(char replacement, boolean dropInFirst) implements Step {
        @Override
        public List<String> chain(List<String> tokens) {
            List<String> out = new ArrayList<>(tokens.size());
            for (int i = 0; i < tokens.size(); i++) {
                out.add(tokens.get(i).replace(String.valueOf(replacement), i == 0 && dropInFirst ? "" : " "));
            }
            return out;
        }

        @Override
        public byte[] middle(byte[] token, boolean fused) {
            // once fused, the token is part of the first (only) string
            String with = fused && dropInFirst ? "" : " ";
            return replaceBytes(token, String.valueOf(replacement).getBytes(UTF_8), with.getBytes(UTF_8));
        }
    }

    /**
     * WordPiece's: a token after the first loses its continuation prefix ("##") or gets a space in
     * front; with {@code cleanup}, spaces before punctuation and in English contractions are removed.
     */
    record WordPiece(String prefix, boolean cleanup) implements Step {
        private static final String[][] CLEANUP = {
            {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"}, {" 'm", "'m"},
            {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};

        @Override
        public List<String> chain(List<String> tokens) {
            List<String> out = new ArrayList<>(tokens.size());
            for (int i = 0; i < tokens.size(); i++) {
                String token = tokens.get(i);
                if (i > 0) {
                    token = token.startsWith(prefix) ? token.substring(prefix.length()) : " " + token;
                }
                if (cleanup) {
                    for (String[] rule : CLEANUP) {
                        token = token.replace(rule[0], rule[1]);
                    }
                }
                out.add(token);
            }
            return out;
        }

        @Override
        public byte[] middle(byte[] token, boolean fused) {
            byte[] p = prefix.getBytes(UTF_8);
            if (!fused) {
                token = startsWith(token, p) ? Arrays.copyOfRange(token, p.length, token.length) : concat(SPACE, token);
            }
            if (cleanup) {
                for (String[] rule : CLEANUP) {
                    token = replaceBytes(token, rule[0].getBytes(UTF_8), rule[1].getBytes(UTF_8));
                }
            }
            return token;
        }
    }

    /** Without a decoder, Hugging Face joins the tokens with spaces. */
    record JoinWithSpaces() implements Step {
        @Override
        public List<String> chain(List<String> tokens) {
            return List.of(String.join(" ", tokens));
        }

        @Override
        public byte[] middle(byte[] token, boolean fused) {
            return concat(SPACE, token);
        }

        @Override
        public boolean fuses() {
            return true;
        }
    }

    // ---- byte helpers ---------------------------------------------------------------------------

    private static final byte[] SPACE = {' '};

    /** Every occurrence of {@code target} in {@code bytes} replaced by {@code with}. */
    private static byte[] replaceBytes(byte[] bytes, byte[] target, byte[] with) {
        if (target.length == 0 || indexOf(bytes, target, 0) < 0) {
            return bytes;
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream(bytes.length);
        int from = 0;
        for (int at; (at = indexOf(bytes, target, from)) >= 0; from = at + target.length) {
            out.write(bytes, from, at - from);
            out.writeBytes(with);
        }
        out.write(bytes, from, bytes.length - from);
        return out.toByteArray();
    }

    private static int indexOf(byte[] bytes, byte[] target, int from) {
        outer:
        for (int i = from; i <= bytes.length - target.length; i++) {
            for (int j = 0; j < target.length; j++) {
                if (bytes[i + j] != target[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    private static boolean startsWith(byte[] bytes, byte[] prefix) {
        return bytes.length >= prefix.length && Arrays.equals(bytes, 0, prefix.length, prefix, 0, prefix.length);
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
