package dev.peregrine.tokenizer;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * What llama.cpp derives from a vocabulary for every tokenizer type: each token's attributes
 * (its type plus the rules llama.cpp applies by token text and model name), which tokens end a
 * generation, and the cutting of special-token texts out of a text before it is encoded
 * (llama.cpp's {@code tokenizer_st_partition}). Immutable and thread-safe.
 */
final class SpecialTokens {
    // Token attributes as bit flags, like llama.cpp's: a token keeps its type's flag and may gain
    // CONTROL, RSTRIP or LSTRIP from the rules below.
    static final int NORMAL = 1;
    static final int UNKNOWN = 1 << 1;
    static final int CONTROL = 1 << 2;
    static final int USER_DEFINED = 1 << 3;
    static final int BYTE = 1 << 4;
    static final int RSTRIP = 1 << 5; // whitespace after the token's text is dropped
    static final int LSTRIP = 1 << 6; // whitespace before the token's text is dropped

    /**
     * Texts llama.cpp ({@code llama_vocab::impl::load}) treats as end of generation (and so as
     * control tokens) whatever the file says: the markers of end of turn / message / text of the
     * common model families.
     */
    private static final Set<String> END_OF_GENERATION_TEXTS = Set.of(
            "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
            "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
            "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
            "<｜end▁of▁sentence｜>", "[e~[",
            // fill-in-the-middle padding, repository and file separators end a generation too
            // (llama.cpp finds them by these texts when the file names no fim_pad/rep/sep id)
            "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
            "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>");

    /** The texts of llama.cpp's exceptions to {@link #END_OF_GENERATION_TEXTS}. */
    private static final Set<String> EXCEPTION_TEXTS = Set.of(
            "<|end|>", "<|return|>", "<|call|>", "<|calls|>", "<|flush|>", "</s>", "<|tool_response>");

    /** Fill-in-the-middle markers: llama.cpp makes them control tokens too. */
    private static final Set<String> FILL_IN_THE_MIDDLE_TEXTS = Set.of(
            "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
            "<|code_prefix|>", "<|prefix|>",
            "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
            "<|code_suffix|>", "<|suffix|>",
            "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
            "<|code_middle|>", "<|middle|>");

    private final String[] tokens;
    private final int[] attributes;
    private final boolean[] endOfGeneration;
    /** Control, unknown and user-defined tokens, longest text (in UTF-8 bytes) first. */
    private final int[] specialTokens;
    /** The user-defined ones among them: cut out even when special text is not parsed. */
    private final int[] userDefinedTokens;

    /**
     * @param preTokenizer {@code tokenizer.ggml.pre}, or "": llama.cpp keys one rule on it
     */
    SpecialTokens(Vocabulary vocab, String preTokenizer) {
        this.tokens = vocab.tokens();
        this.attributes = typeAttributes(vocab);
        this.endOfGeneration = endOfGeneration(vocab, attributes);
        perModelAttributes(vocab, preTokenizer, attributes);

        this.specialTokens = longestFirst(UNKNOWN | CONTROL | USER_DEFINED);
        this.userDefinedTokens = Arrays.stream(specialTokens)
                .filter(id -> (attributes[id] & (CONTROL | UNKNOWN)) == 0)
                .toArray();
    }

    /** The attribute flags of token {@code id}. */
    int attributes(int id) {
        return attributes[id];
    }

    boolean isEndOfGeneration(int id) {
        return id >= 0 && id < endOfGeneration.length && endOfGeneration[id];
    }

    /**
     * Cuts the text at every occurrence of the special tokens' texts, one token after the other,
     * longest first. Without {@code parseSpecial} only user-defined tokens are cut out (as Hugging
     * Face does for added tokens). Returns fragments as triples (start, end, token id), the id
     * being -1 for a piece of text still to be encoded.
     */
    IntList partition(String text, boolean parseSpecial) {
        IntList fragments = new IntList(3);
        fragments.add(0);
        fragments.add(text.length());
        fragments.add(-1);
        IntList scratch = new IntList(3);
        for (int special : parseSpecial ? specialTokens : userDefinedTokens) {
            if (splitAt(text, special, fragments, scratch)) {
                IntList t = fragments;
                fragments = scratch;
                scratch = t;
            }
        }
        return fragments;
    }

    /** Writes {@code fragments} cut at each occurrence of {@code special} into {@code result}. */
    private boolean splitAt(String text, int special, IntList fragments, IntList result) {
        String token = tokens[special];
        boolean lstrip = (attributes[special] & LSTRIP) != 0;
        boolean rstrip = (attributes[special] & RSTRIP) != 0;
        boolean found = false;
        result.clear();
        for (int f = 0; f < fragments.size(); f += 3) {
            int start = fragments.get(f);
            int end = fragments.get(f + 1);
            if (fragments.get(f + 2) >= 0) {
                addFragment(result, start, end, fragments.get(f + 2));
                continue;
            }
            int from = start;
            for (int match; (match = text.indexOf(token, from, end)) >= 0; ) {
                found = true;
                int before = match;
                while (lstrip && before > from && isCSpace(text.charAt(before - 1))) {
                    before--;
                }
                if (before > from) {
                    addFragment(result, from, before, -1);
                }
                addFragment(result, match, match + token.length(), special);
                from = match + token.length();
                while (rstrip && from < end && isCSpace(text.charAt(from))) {
                    from++;
                }
            }
            if (from < end) {
                addFragment(result, from, end, -1);
            }
        }
        return found;
    }

    private static void addFragment(IntList fragments, int start, int end, int id) {
        fragments.add(start);
        fragments.add(end);
        fragments.add(id);
    }

    /** C's isspace in the "C" locale, which llama.cpp uses to strip around special tokens. */
    private static boolean isCSpace(char c) {
        return c == ' ' || (c >= '\t' && c <= '\r');
    }

    /**
     * The tokens that end a generation, as llama.cpp decides them: every token with one of
     * {@link #END_OF_GENERATION_TEXTS}, EOS, EOT, EOM, less llama.cpp's two exceptions, plus the
     * further ids the files name ({@link Vocabulary#endOfGenerationIds}). The exceptions, which
     * also change the token's attributes: with OpenAI's harmony format ("&lt;|return|&gt;" and "&lt;|call|&gt;") or Solar Open's ("&lt;|calls|&gt;" or
     * "&lt;|call|&gt;", and "&lt;|flush|&gt;"), "&lt;|end|&gt;" ends a message, not the generation,
     * and becomes user-defined; with Gemma 4's "&lt;|tool_response&gt;", "&lt;/s&gt;" is a normal token.
     * (Where a file names no FIM padding, repository or separator id, llama.cpp takes the first token
     * its hash map meets with one of that role's texts; vocabularies have one such token at most, and
     * here every one counts.)
     */
    private static boolean[] endOfGeneration(Vocabulary vocab, int[] attributes) {
        String[] tokens = vocab.tokens();
        boolean[] endOfGeneration = new boolean[tokens.length];
        Map<String, Integer> markers = new HashMap<>(); // the exceptions' texts (all of them ending texts)
        for (int id = 0; id < tokens.length; id++) {
            endOfGeneration[id] = END_OF_GENERATION_TEXTS.contains(tokens[id]);
            if (EXCEPTION_TEXTS.contains(tokens[id])) {
                markers.put(tokens[id], id);
            }
        }
        for (int id : new int[] {vocab.eosId(), vocab.eotId(), vocab.eomId()}) {
            if (id >= 0) {
                endOfGeneration[id] = true;
            }
        }
        boolean harmony = markers.containsKey("<|return|>") && markers.containsKey("<|call|>");
        boolean solarOpen = markers.containsKey("<|flush|>")
                && (markers.containsKey("<|call|>") || markers.containsKey("<|calls|>"));
        Integer end = markers.get("<|end|>");
        if (end != null && (harmony || solarOpen)) {
            endOfGeneration[end] = false;
            attributes[end] = USER_DEFINED;
        }
        Integer closing = markers.get("</s>");
        if (closing != null && markers.containsKey("<|tool_response>")) {
            endOfGeneration[closing] = false;
            attributes[closing] = NORMAL;
        }
        // Ids a file names explicitly end a generation in any case. (llama.cpp adds GGUF's FIM ids
        // before its exceptions, which concern other tokens.)
        for (int id : vocab.endOfGenerationIds()) {
            endOfGeneration[id] = true;
        }
        return endOfGeneration;
    }

    /** Each token's type as attribute flags, and CONTROL for the texts llama.cpp makes control tokens. */
    private static int[] typeAttributes(Vocabulary vocab) {
        String[] tokens = vocab.tokens();
        int[] attributes = new int[tokens.length];
        for (int id = 0; id < tokens.length; id++) {
            attributes[id] = switch (vocab.tokenTypes()[id]) {
                case Vocabulary.NORMAL -> NORMAL;
                case Vocabulary.UNKNOWN -> UNKNOWN;
                case Vocabulary.CONTROL -> CONTROL;
                case Vocabulary.USER_DEFINED -> USER_DEFINED;
                case Vocabulary.BYTE -> BYTE;
                default -> 0; // unused or undefined: never produced, decodes to nothing
            };
            if (END_OF_GENERATION_TEXTS.contains(tokens[id]) || FILL_IN_THE_MIDDLE_TEXTS.contains(tokens[id])) {
                attributes[id] |= CONTROL;
            }
        }
        return attributes;
    }

    private static void perModelAttributes(Vocabulary vocab, String preTokenizer, int[] attributes) {
        String[] tokens = vocab.tokens();
        // llama.cpp's per-model rules, for files that do not carry Hugging Face's lstrip/rstrip
        // flags. Phi-3: whitespace after its special tokens is dropped, except after <unk>, <s>
        // and <|endoftext|>. Jina v2 and ModernBERT: whitespace before the mask token is dropped.
        String name = vocab.modelName().toLowerCase(Locale.ROOT);
        if (preTokenizer.contains("jina-v2-de") || preTokenizer.contains("jina-v2-es")
                || preTokenizer.contains("jina-v2-code")) {
            addAttribute(tokens, attributes, "<mask>", LSTRIP);
        } else if (name.contains("phi-3") || name.contains("phi3")) {
            for (int id = 0; id < tokens.length; id++) {
                boolean special = (attributes[id] & (UNKNOWN | CONTROL | USER_DEFINED)) != 0;
                boolean exempt = tokens[id].equals("<unk>") || tokens[id].equals("<s>")
                        || tokens[id].equals("<|endoftext|>");
                if ((special || tokens[id].equals("</s>")) && !exempt) {
                    attributes[id] |= RSTRIP;
                }
            }
        } else if (name.contains("modern-bert")) {
            addAttribute(tokens, attributes, "[MASK]", LSTRIP);
        }
    }

    private static void addAttribute(String[] tokens, int[] attributes, String text, int flag) {
        for (int id = 0; id < tokens.length; id++) {
            if (tokens[id].equals(text)) {
                attributes[id] |= flag;
            }
        }
    }

    /** Ids having any of {@code flags}, by decreasing UTF-8 length of their text, then by id. */
    private int[] longestFirst(int flags) {
        long[] keys = new long[tokens.length];
        int count = 0;
        for (int id = 0; id < tokens.length; id++) {
            if ((attributes[id] & flags) != 0) {
                int utf8Length = utf8Length(tokens[id]);
                keys[count++] = (long) (Integer.MAX_VALUE - utf8Length) << 32 | id;
            }
        }
        Arrays.sort(keys, 0, count);
        int[] ids = new int[count];
        for (int i = 0; i < count; i++) {
            ids[i] = (int) keys[i];
        }
        return ids;
    }

    private static int utf8Length(String text) {
        int length = 0;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            length += c < 0x80 ? 1 : c < 0x800 ? 2 : Character.isSurrogate(c) ? 2 : 3; // a pair: 4 in all
        }
        return length;
    }
}
