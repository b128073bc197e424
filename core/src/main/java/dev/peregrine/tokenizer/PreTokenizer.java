package dev.peregrine.tokenizer;

import static dev.peregrine.tokenizer.CharClasses.LETTER;
import static dev.peregrine.tokenizer.CharClasses.NUMBER;
import static dev.peregrine.tokenizer.CharClasses.OTHER;
import static dev.peregrine.tokenizer.CharClasses.SPACE;

import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Splits text into the words byte-level BPE merges within, the way llama.cpp does for each value
 * of {@code tokenizer.ggml.pre}: a sequence of passes, each cutting every piece of the previous
 * pass at the matches of its expression, a match and the text between two matches both becoming
 * pieces. Expressions see only the piece they cut: at its end, {@code (?!\S)} holds.
 *
 * <p>The two expressions most models use (GPT-2's and Llama 3's, which Qwen 2 uses with single
 * digits) are hand-written scanners, two to four times faster than {@code java.util.regex} on
 * English text (BpePreTokenizerTest checks them against it). The others are Java regular
 * expressions written to match as Hugging Face's do: {@code \s} is the White_Space property, and
 * {@code \p{L}}, {@code \p{N}}, {@code \p{P}} are Unicode categories. Immutable and thread-safe.
 */
final class PreTokenizer {

    /**
     * llama.cpp's pre-tokenizer families: the {@code tokenizer.ggml.pre} names it maps to each,
     * and the two options it ties to some of them.
     *
     * @see #forName(String)
     */
    enum Preset {
        /** Llama 3: merges skipped for words that are tokens, BOS added. */
        LLAMA3(true, true, "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                "lfm2", "jina-v5-nano"),
        /** Llama 3's expression without its options. */
        DBRX(false, false, "dbrx", "smaug-bpe"),
        /** Llama 3's expression with single digits. */
        QWEN2(false, false, "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "stablelm2", "hunyuan", "megrez",
                "solar-open"),
        GPT2(false, false, "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
                "a.x-4.0", "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "exaone4", "mpt",
                "olmo", "jais", "trillion", "granite-docling"),
        /** GPT-2's expression after cutting out every digit. */
        STARCODER(false, false, "starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b",
                "mellum2"),
        FALCON(false, false, "falcon"),
        DEEPSEEK_LLM(false, false, "deepseek-llm"),
        DEEPSEEK_CODER(false, false, "deepseek-coder"),
        /** llama.cpp's choice for files without a pre-tokenizer name. */
        DEFAULT(false, false, "default");

        private final boolean ignoreMerges;
        private final boolean addBos;
        private final Set<String> names;

        Preset(boolean ignoreMerges, boolean addBos, String... names) {
            this.ignoreMerges = ignoreMerges;
            this.addBos = addBos;
            this.names = Set.of(names);
        }

        /** Whether a word that is a token is that token, without merging (Llama 3). */
        boolean ignoreMerges() {
            return ignoreMerges;
        }

        /** Whether BOS is added when the file does not say. */
        boolean addBos() {
            return addBos;
        }

        /** The preset of {@code tokenizer.ggml.pre} {@code name}, or null if it is not supported. */
        static Preset forName(String name) {
            for (Preset preset : values()) {
                if (preset.names.contains(name)) {
                    return preset;
                }
            }
            return null;
        }

        /** All supported names, for messages. */
        static List<String> supportedNames() {
            return Arrays.stream(values()).flatMap(p -> p.names.stream()).sorted().toList();
        }
    }

    /** The Unicode White_Space property, which is what {@code \s} means to Hugging Face. */
    private static final String WS = "\\p{IsWhite_Space}";
    /** GPT-2's expression, also a pass of several other presets. */
    private static final Pass GPT2_PASS = scanner(PreTokenizer::gpt2Word);
    private static final Pass LLAMA3_PASS = scanner((text, pos, end) -> llama3Word(text, pos, end, 3));
    private static final Pass QWEN2_PASS = scanner((text, pos, end) -> llama3Word(text, pos, end, 1));
    /** Cased letters: the Unicode category LC of the regex library DeepSeek's tokenizer was made with. */
    private static final String DEEPSEEK_LETTERS = "A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}"
            + "\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"
            + "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}"
            + "\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}"
            + "\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}"
            + "\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}"
            + "\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}"
            + "\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}"
            + "\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}"
            + "\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}"
            + "\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}"
            + "\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}"
            + "\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"
            + "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}"
            + "\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}"
            + "\\x{1E900}-\\x{1E943}";
    /** DeepSeek's runs of CJK ideographs, the scripts from U+0800 up to them, and Hangul. */
    private static final String DEEPSEEK_CJK = "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+";

    private final Pass[] passes;

    private PreTokenizer(Pass... passes) {
        this.passes = passes;
    }

    /** The pre-tokenizer of {@code preset}, as llama.cpp builds it. */
    static PreTokenizer of(Preset preset) {
        return switch (preset) {
            case LLAMA3, DBRX -> new PreTokenizer(LLAMA3_PASS);
            case QWEN2 -> new PreTokenizer(QWEN2_PASS);
            case GPT2 -> new PreTokenizer(GPT2_PASS);
            case STARCODER -> new PreTokenizer(regex("\\p{N}"), GPT2_PASS);
            case FALCON -> new PreTokenizer(regex("[\\p{P}$+<=>^~|`]+"), GPT2_PASS, regex("[0-9][0-9][0-9]"));
            case DEEPSEEK_LLM -> new PreTokenizer(
                    regex("[\\r\\n]"),
                    regex(WS + "?[" + DEEPSEEK_LETTERS + "]+"),
                    // U+3000, a space, is in this class as in Hugging Face's; llama.cpp, which shows
                    // std::regex every non-ASCII space as U+000B, would not match it
                    regex(WS + "?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}"
                            + "\\x{3000}-\\x{3002}]+"),
                    regex(WS + "+\\z"),
                    regex(DEEPSEEK_CJK),
                    regex("\\p{N}+"));
            case DEEPSEEK_CODER -> new PreTokenizer(
                    regex("[\\r\\n]"),
                    regex(WS + "?\\p{L}+"),
                    regex(WS + "?\\p{P}+"),
                    regex(DEEPSEEK_CJK),
                    regex("\\p{N}"));
            case DEFAULT -> new PreTokenizer(
                    regex("[\\p{P}$+<=>^~|]+"), GPT2_PASS, regex("\\p{N}+"), regex("[0-9][0-9][0-9]"));
        };
    }

    /**
     * Cuts {@code text[start, end)} into words and returns the end of each, in order; the first
     * word starts at {@code start}. Empty when the range is.
     */
    IntList split(String text, int start, int end) {
        IntList ends = new IntList(1);
        if (start < end) {
            ends.add(end);
        }
        for (Pass pass : passes) {
            IntList next = new IntList((end - start) / 4); // English words average over 4 characters
            pass.split(text, start, ends, next);
            ends = next;
        }
        return ends;
    }

    // ---- passes ---------------------------------------------------------------------------------

    /** One splitting pass. */
    private interface Pass {
        /** Cuts the pieces that end at {@code ends} (the first starting at {@code start}) into {@code out}. */
        void split(String text, int start, IntList ends, IntList out);
    }

    /** The end of the word that starts at {@code pos}, which is before {@code end}. */
    private interface WordScanner {
        int wordEnd(String text, int pos, int end);
    }

    private static Pass scanner(WordScanner scanner) {
        return (text, start, ends, out) -> {
            int pos = start;
            for (int i = 0; i < ends.size(); i++) {
                int end = ends.get(i);
                while (pos < end) {
                    pos = scanner.wordEnd(text, pos, end);
                    out.add(pos);
                }
            }
        };
    }

    private static Pass regex(String expression) {
        Pattern pattern = Pattern.compile(expression);
        return (text, start, ends, out) -> {
            Matcher matcher = pattern.matcher(text);
            int from = start;
            for (int i = 0; i < ends.size(); i++) {
                int end = ends.get(i);
                // Default region bounds: anchors match at the region's end and lookaround stops there.
                matcher.region(from, end);
                while (matcher.find()) {
                    if (matcher.end() == matcher.start()) {
                        continue; // none of the expressions above can match empty; never cut there
                    }
                    if (matcher.start() > from) {
                        out.add(matcher.start());
                    }
                    out.add(matcher.end());
                    from = matcher.end();
                }
                if (from < end) {
                    out.add(end);
                }
                from = end;
            }
        };
    }

    // ---- hand-written scanners ------------------------------------------------------------------

    /**
     * GPT-2's {@code 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+}:
     * the first alternative that matches at {@code pos}, as a backtracking engine would choose it.
     */
    private static int gpt2Word(String text, int pos, int end) {
        char c = text.charAt(pos);
        if (c == '\'') {
            int contraction = contractionEnd(text, pos, end, false);
            if (contraction > 0) {
                return contraction;
            }
        }
        // " ?X+" for X = letters, numbers, or anything else that is not white space
        int from = c == ' ' && pos + 1 < end ? pos + 1 : pos;
        int kind = classAt(text, from, end);
        if (kind != SPACE) {
            return runEnd(text, from, end, kind);
        }
        return spaceEnd(text, pos, end, false);
    }

    /**
     * Llama 3's {@code (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
     * ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+}, with {@code maxDigits} in place of 3
     * (Qwen 2 uses 1).
     */
    private static int llama3Word(String text, int pos, int end, int maxDigits) {
        char c = text.charAt(pos);
        if (c == '\'') {
            int contraction = contractionEnd(text, pos, end, true);
            if (contraction > 0) {
                return contraction;
            }
        }
        int kind = classAt(text, pos, end);
        int next = pos + Character.charCount(text.codePointAt(pos));
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if (c != '\r' && c != '\n' && kind != NUMBER
                && (kind == LETTER || classAt(text, next, end) == LETTER)) {
            return runEnd(text, next, end, LETTER);
        }
        // \p{N}{1,maxDigits}
        if (kind == NUMBER) {
            int p = pos;
            for (int digits = 0; digits < maxDigits && classAt(text, p, end) == NUMBER; digits++) {
                p += Character.charCount(text.codePointAt(p));
            }
            return p;
        }
        // " ?[^\s\p{L}\p{N}]+[\r\n]*"
        int from = c == ' ' && pos + 1 < end ? pos + 1 : pos;
        if (classAt(text, from, end) == OTHER) {
            int p = runEnd(text, from, end, OTHER);
            while (p < end && (text.charAt(p) == '\r' || text.charAt(p) == '\n')) {
                p++;
            }
            return p;
        }
        return spaceEnd(text, pos, end, true);
    }

    /**
     * The end of a contraction ('s, 't, 're, 've, 'm, 'll, 'd; ASCII case-insensitive if asked, as
     * llama.cpp spells out Llama 3's {@code (?i:...)}) at {@code pos}, or 0.
     */
    private static int contractionEnd(String text, int pos, int end, boolean ignoreCase) {
        int c1 = pos + 1 < end ? lower(text.charAt(pos + 1), ignoreCase) : 0;
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
            return pos + 2;
        }
        int c2 = pos + 2 < end ? lower(text.charAt(pos + 2), ignoreCase) : 0;
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
            return pos + 3;
        }
        return 0;
    }

    private static int lower(char c, boolean ignoreCase) {
        return ignoreCase && c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
    }

    /**
     * White space at {@code pos}: {@code \s*[\r\n]+} up to the last line break of the run (when
     * asked), else {@code \s+(?!\S)} (all but the last character of a run followed by something
     * else, which keeps its space), else {@code \s+}.
     */
    private static int spaceEnd(String text, int pos, int end, boolean toLastLineBreak) {
        int p = pos;
        int afterLineBreak = -1;
        while (p < end && CharClasses.isWhiteSpace(text.charAt(p))) { // white space is all in the BMP
            if (text.charAt(p) == '\r' || text.charAt(p) == '\n') {
                afterLineBreak = p + 1;
            }
            p++;
        }
        if (toLastLineBreak && afterLineBreak > 0) {
            return afterLineBreak;
        }
        if (p - pos > 1 && p < end) {
            return p - 1;
        }
        return Math.max(p, pos + 1); // at least one character, as llama.cpp's scanner
    }

    /** The end of the run of characters of class {@code kind} from {@code pos}. */
    private static int runEnd(String text, int pos, int end, int kind) {
        int p = pos;
        while (p < end) {
            int cp = text.codePointAt(p);
            if (CharClasses.of(cp) != kind) {
                break;
            }
            p += Character.charCount(cp);
        }
        return p;
    }

    /** The class of the character at {@code pos}, or 0 at the end of the piece. */
    private static int classAt(String text, int pos, int end) {
        return pos < end ? CharClasses.of(text.codePointAt(pos)) : 0;
    }
}
