package dev.peregrine.tokenizer;

import dev.peregrine.ModelFormatException;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Builds an {@link HfTokenizer} from the parsed JSON of a {@code tokenizer.json} (and optionally
 * its {@code tokenizer_config.json}). Every value is checked where it is read: a missing or
 * malformed one, or a component Peregrine does not support, is a {@link ModelFormatException}
 * naming the file and the JSON path ("model.merges[12]").
 */
final class HfTokenizerReader {
    private static final Logger LOG = LoggerFactory.getLogger(HfTokenizerReader.class);

    /** Llama 3's split expression, scanned by {@link PreTokenizer}'s hand-written scanner. */
    static final String LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
            + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    /** Qwen 2's (and Qwen 3's): Llama 3's with single digits. */
    static final String QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
            + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    /** GPT-2's, which ByteLevel's {@code use_regex} means. */
    static final String GPT2_SPLIT = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

    /** transformers classes whose add_bos_token defaults to true. */
    private static final Set<String> BOS_BY_DEFAULT = Set.of("LlamaTokenizer", "LlamaTokenizerFast",
            "CodeLlamaTokenizer", "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast");

    private final Path file;
    /** The model's vocabulary, by id and by text. */
    private String[] modelTokens;
    private TokenIndex modelIndex;
    /** Added tokens' content to id, as Hugging Face assigns them. */
    private final Map<String, Integer> addedIds = new HashMap<>();

    private HfTokenizerReader(Path file) {
        this.file = file;
    }

    /**
     * @param config     the parsed tokenizer_config.json, or null
     * @param configFile its path, for messages (null if {@code config} is)
     */
    static HfTokenizer read(Object json, Path file, Object config, Path configFile) {
        return new HfTokenizerReader(file).build(new Node(json, "", file), config == null ? null : new Node(config, "", configFile));
    }

    private HfTokenizer build(Node root, Node config) {
        root.map();
        // Not applied when encoding one text; an encoder takes truncation's max_length as its limit
        // (EncoderMetadata), and its pipeline pads batches itself.
        if (!root.get("truncation").isNull()) {
            LOG.info("{}: 'truncation' is not applied when encoding (an encoder takes its max_length as its limit of"
                    + " tokens per text)", file);
        }
        if (!root.get("padding").isNull()) {
            LOG.info("{}: 'padding' is not applied when encoding (encoders' batches are padded as they are made)", file);
        }
        Node modelNode = root.get("model");
        String modelType = modelNode.get("type").isNull() && !modelNode.get("merges").isNull()
                ? "BPE" : modelNode.get("type").string();
        if (!modelType.equals("BPE") && !modelType.equals("WordPiece")) {
            throw modelNode.get("type").error("is '" + modelType
                    + "': only BPE and WordPiece models are supported (not Unigram or WordLevel)");
        }
        readModelVocabulary(modelNode.get("vocab"));

        // Added tokens, before the model: their ids, and the normalizer for normalized ones.
        HfNormalizer normalizer = root.get("normalizer").isNull() ? null : normalizer(root.get("normalizer"));
        List<HfAddedTokens.Token> raw = new ArrayList<>();
        List<HfAddedTokens.Token> normalized = new ArrayList<>();
        Map<Integer, String> addedTexts = new HashMap<>();
        Map<Integer, Boolean> addedSpecial = new HashMap<>();
        readAddedTokens(root.get("added_tokens"), normalizer, raw, normalized, addedTexts, addedSpecial);

        int size = Math.max(modelTokens.length, addedTexts.keySet().stream().mapToInt(i -> i + 1).max().orElse(0));
        String[] tokens = new String[size];
        System.arraycopy(modelTokens, 0, tokens, 0, modelTokens.length);
        addedTexts.forEach((id, text) -> tokens[id] = text);

        boolean bpe = modelType.equals("BPE");
        int unkId = bpe ? bpeUnknown(modelNode) : modelIndex.find(modelNode.get("unk_token").optString("[UNK]"));
        boolean byteFallback = bpe && modelNode.get("byte_fallback").bool(false);
        HfModel model = bpe ? bpe(modelNode, unkId, byteFallback) : wordPiece(modelNode, unkId);

        HfPreTokenizer preTokenizer = root.get("pre_tokenizer").isNull() ? null : preTokenizer(root.get("pre_tokenizer"));
        IntList prefix = new IntList(2);
        IntList suffix = new IntList(2);
        if (!root.get("post_processor").isNull()) {
            postProcessor(root.get("post_processor"), prefix, suffix);
        }
        HfDecoder decoder = new HfDecoder(root.get("decoder").isNull() ? List.of() : decoder(root.get("decoder")));

        int bosId = -1;
        int eosId = -1;
        if (config != null) {
            config.map();
            bosId = specialToken(config.get("bos_token"));
            eosId = specialToken(config.get("eos_token"));
            transformersPostProcessor(config, bosId, eosId, prefix, suffix);
        }

        int[] prefixIds = prefix.toArray();
        int[] suffixIds = suffix.toArray();
        for (int id : concat(prefixIds, suffixIds)) {
            if (id >= size) {
                throw root.get("post_processor").error("adds token id " + id + ", outside the vocabulary of " + size);
            }
        }
        Vocabulary vocabulary = new Vocabulary(tokens, new float[size], types(tokens, addedSpecial, unkId, byteFallback),
                bosId, eosId, unkId, -1, -1, -1, -1, bosId >= 0 && contains(prefixIds, bosId),
                eosId >= 0 && contains(suffixIds, eosId), false, false, "");
        return new HfTokenizer(tokens, new HfAddedTokens(raw, normalized), normalizer, preTokenizer, model,
                prefixIds, suffixIds, decoder, vocabulary);
    }

    /** llama.cpp's token types: special added tokens are control tokens, other added ones user-defined. */
    private static int[] types(String[] tokens, Map<Integer, Boolean> addedSpecial, int unkId, boolean byteFallback) {
        int[] types = new int[tokens.length];
        for (int id = 0; id < tokens.length; id++) {
            types[id] = id == unkId ? Vocabulary.UNKNOWN
                    : byteFallback && HfDecoder.ByteFallback.byteOf(tokens[id]) >= 0 ? Vocabulary.BYTE
                    : Vocabulary.NORMAL;
        }
        addedSpecial.forEach((id, special) -> types[id] = special ? Vocabulary.CONTROL : Vocabulary.USER_DEFINED);
        return types;
    }

    // ---- models -------------------------------------------------------------------------------------

    private int bpeUnknown(Node model) {
        String unk = model.get("unk_token").optString(null);
        return unk == null ? -1 : modelId(model.get("unk_token"), unk);
    }

    private HfModel bpe(Node model, int unkId, boolean byteFallback) {
        double dropout = model.get("dropout").isNull() ? 0 : model.get("dropout").number();
        if (dropout != 0) {
            throw model.get("dropout").error("is " + dropout + ": BPE dropout (random merges) is not supported");
        }
        String prefix = model.get("continuing_subword_prefix").optString("");
        return new HfModel.Bpe(modelIndex, merges(model.get("merges"), prefix), unkId, model.get("fuse_unk").bool(false),
                byteFallback, model.get("ignore_merges").bool(false), prefix, model.get("end_of_word_suffix").optString(""));
    }

    private HfModel wordPiece(Node model, int unkId) {
        Node maxChars = model.get("max_input_chars_per_word");
        return new HfModel.WordPiece(modelIndex, unkId, model.get("unk_token").optString("[UNK]"),
                model.get("continuing_subword_prefix").optString("##"),
                maxChars.isNull() ? 100 : (int) maxChars.integer(0, Integer.MAX_VALUE));
    }

    // ---- vocabulary and added tokens ----------------------------------------------------------------

    private void readModelVocabulary(Node vocab) {
        Map<String, Object> map = vocab.map();
        modelTokens = new String[map.size()];
        for (Map.Entry<String, Object> e : map.entrySet()) {
            // a Node (and its path) only for an entry that is wrong: there are 100,000s of them
            if (!(e.getValue() instanceof Long id) || id < 0 || id >= map.size() || e.getKey().isEmpty()
                    || modelTokens[(int) (long) id] != null) {
                Node idNode = vocab.get(e.getKey());
                if (e.getKey().isEmpty()) {
                    throw idNode.error("is an empty token, which is not supported");
                }
                int id = (int) idNode.integer(0, map.size() - 1);
                throw idNode.error("= " + id + " is also the id of '" + modelTokens[id]
                        + "': ids must be 0.." + (map.size() - 1) + ", each once");
            }
            modelTokens[(int) (long) id] = e.getKey();
        }
        modelIndex = new TokenIndex(modelTokens);
    }

    /**
     * Assigns ids as Hugging Face does (the "id" fields are checked, not trusted): a token whose
     * content is already a token keeps that id; others take the next id after the model's
     * vocabulary, in order.
     */
    private void readAddedTokens(Node list, HfNormalizer normalizer, List<HfAddedTokens.Token> raw,
                                 List<HfAddedTokens.Token> normalized, Map<Integer, String> texts,
                                 Map<Integer, Boolean> special) {
        if (list.isNull()) {
            return;
        }
        int nextId = modelTokens.length;
        Map<String, HfAddedTokens.Token> byContent = new LinkedHashMap<>();
        Map<String, Boolean> isNormalizedByContent = new HashMap<>();
        for (int i = 0; i < list.list().size(); i++) {
            Node t = list.at(i);
            String content = t.get("content").string();
            if (content.isEmpty()) {
                continue; // Hugging Face ignores an empty added token
            }
            boolean isSpecial = t.get("special").bool(false);
            boolean isNormalized = t.get("normalized").bool(!isSpecial);
            Integer id = addedIds.get(content);
            if (id == null) {
                id = modelId(content);
            }
            if (id == null) {
                id = nextId++;
            }
            if (!t.get("id").isNull() && t.get("id").integer(0, Integer.MAX_VALUE) != id) {
                LOG.warn("{}: '{}' = {}, but '{}' takes id {}, as Hugging Face assigns it", file, t.get("id").path(),
                        t.get("id").integer(0, Integer.MAX_VALUE), content, id);
            }
            String pattern = isNormalized && normalizer != null ? normalizer.normalize(content) : content;
            addedIds.put(content, id);
            // Decoded as its content, as Hugging Face decodes an added token, whatever it is matched as.
            texts.put(id, content);
            special.put(id, isSpecial);
            byContent.put(content, new HfAddedTokens.Token(id, pattern, t.get("single_word").bool(false),
                    t.get("lstrip").bool(false), t.get("rstrip").bool(false), isSpecial));
            isNormalizedByContent.put(content, isNormalized);
        }
        byContent.forEach((content, token) -> (isNormalizedByContent.get(content) ? normalized : raw).add(token));
    }

    /** The model's id of {@code token}, or null. */
    private Integer modelId(String token) {
        int id = modelIndex.find(token);
        return id < 0 ? null : id;
    }

    private int modelId(Node where, String token) {
        int id = modelIndex.find(token);
        if (id < 0) {
            throw where.error("= '" + token + "' is not in model.vocab");
        }
        return id;
    }

    /** The id of a token named in tokenizer_config.json (a string, or an AddedToken object), or -1. */
    private int specialToken(Node node) {
        if (node.isNull()) {
            return -1;
        }
        String content = node.value() instanceof Map ? node.get("content").string() : node.string();
        Integer id = addedIds.get(content);
        if (id == null) {
            id = modelId(content);
        }
        if (id == null) {
            LOG.warn("{}: '{}' = '{}' is not a token of the tokenizer; ignored", node.file(), node.path(), content);
            return -1;
        }
        return id;
    }

    /**
     * Resolves the merges to ids. Each is looked up through one scratch array, without a String or
     * a {@link Node} per merge: there are 100,000s of them.
     */
    private MergeTable merges(Node list, String prefix) {
        List<?> merges = list.list();
        int n = merges.size();
        int[] left = new int[n];
        int[] right = new int[n];
        int[] merged = new int[n];
        char[] chars = new char[2 * modelIndex.maxLength() + 2];
        for (int i = 0; i < n; i++) {
            int aLength;
            int bStart;
            int length;
            if (merges.get(i) instanceof String s) {
                // the legacy form: "a b", exactly one space
                int space = s.indexOf(' ');
                if (space < 0 || s.indexOf(' ', space + 1) >= 0) {
                    throw list.at(i).error("= '" + s + "' is not two tokens separated by one space");
                }
                if (s.length() > chars.length) {
                    throw list.at(i).error("= '" + s + "' merges a token longer than any in model.vocab");
                }
                s.getChars(0, s.length(), chars, 0);
                aLength = space;
                bStart = space + 1;
                length = s.length();
            } else if (merges.get(i) instanceof List<?> pair && pair.size() == 2
                    && pair.get(0) instanceof String a && pair.get(1) instanceof String b) {
                if (a.length() + b.length() > chars.length) {
                    throw list.at(i).error("merges a token longer than any in model.vocab");
                }
                a.getChars(0, a.length(), chars, 0);
                b.getChars(0, b.length(), chars, a.length());
                aLength = a.length();
                bStart = a.length();
                length = a.length() + b.length();
            } else {
                throw list.at(i).error("is not a pair of tokens");
            }
            left[i] = mergeToken(list, i, chars, 0, aLength);
            right[i] = mergeToken(list, i, chars, bStart, length - bStart);
            // the merged token: a, then b without the continuation prefix (moved left over the gap)
            int tail = bStart + (startsWith(chars, bStart, length, prefix) ? prefix.length() : 0);
            System.arraycopy(chars, tail, chars, aLength, length - tail);
            merged[i] = mergeToken(list, i, chars, 0, aLength + length - tail);
        }
        return new MergeTable(left, right, merged);
    }

    private int mergeToken(Node list, int i, char[] chars, int from, int length) {
        int id = modelIndex.find(chars, from, length);
        if (id < 0) {
            throw list.at(i).error("merges '" + new String(chars, from, length) + "', which is not in model.vocab");
        }
        return id;
    }

    private static boolean startsWith(char[] chars, int from, int end, String prefix) {
        if (prefix.isEmpty() || end - from < prefix.length()) {
            return false;
        }
        for (int k = 0; k < prefix.length(); k++) {
            if (chars[from + k] != prefix.charAt(k)) {
                return false;
            }
        }
        return true;
    }

    // ---- normalizers ------------------------------------------------------------------------------

    private HfNormalizer normalizer(Node n) {
        String type = n.get("type").string();
        return switch (type) {
            case "NFC" -> new HfNormalizer.Unicode(Normalizer.Form.NFC);
            case "NFD" -> new HfNormalizer.Unicode(Normalizer.Form.NFD);
            case "NFKC" -> new HfNormalizer.Unicode(Normalizer.Form.NFKC);
            case "NFKD" -> new HfNormalizer.Unicode(Normalizer.Form.NFKD);
            case "Lowercase" -> new HfNormalizer.Lowercase();
            case "Strip" -> new HfNormalizer.Strip(n.get("strip_left").bool(true), n.get("strip_right").bool(true));
            case "Prepend" -> new HfNormalizer.Prepend(n.get("prepend").string());
            case "Replace" -> new HfNormalizer.Replace(pattern(n.get("pattern")), n.get("content").string());
            case "Sequence" -> {
                List<HfNormalizer> steps = new ArrayList<>();
                for (int i = 0; i < n.get("normalizers").list().size(); i++) {
                    steps.add(normalizer(n.get("normalizers").at(i)));
                }
                yield new HfNormalizer.Sequence(steps);
            }
            case "BertNormalizer" -> {
                boolean lowercase = n.get("lowercase").bool(true);
                yield new HfNormalizer.Bert(n.get("clean_text").bool(true), n.get("handle_chinese_chars").bool(true),
                        n.get("strip_accents").bool(lowercase), lowercase);
            }
            default -> throw n.get("type").error("is '" + type + "', a normalizer that is not supported"
                    + " (supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, Prepend, Replace, Sequence, BertNormalizer)");
        };
    }

    // ---- pre-tokenizers ---------------------------------------------------------------------------

    private HfPreTokenizer preTokenizer(Node n) {
        String type = n.get("type").string();
        return switch (type) {
            case "ByteLevel" -> new HfPreTokenizer.ByteLevel(n.get("add_prefix_space").bool(true),
                    n.get("use_regex").bool(true) ? PreTokenizer.of(PreTokenizer.Preset.GPT2) : null);
            case "Split" -> split(n);
            case "Metaspace" -> new HfPreTokenizer.Metaspace(replacement(n), prependScheme(n), n.get("split").bool(true));
            case "Digits" -> new HfPreTokenizer.CharSplit(cp -> CharClasses.of(cp) == CharClasses.NUMBER,
                    n.get("individual_digits").bool(false) ? HfPreTokenizer.Behavior.ISOLATED
                            : HfPreTokenizer.Behavior.CONTIGUOUS);
            case "Whitespace" -> new HfPreTokenizer.Split(HfPreTokenizer.WORDS, HfPreTokenizer.Behavior.REMOVED, true);
            case "WhitespaceSplit" -> new HfPreTokenizer.CharSplit(CharClasses::isWhiteSpace,
                    HfPreTokenizer.Behavior.REMOVED);
            case "BertPreTokenizer" -> new HfPreTokenizer.Sequence(List.of(
                    new HfPreTokenizer.CharSplit(CharClasses::isWhiteSpace, HfPreTokenizer.Behavior.REMOVED),
                    new HfPreTokenizer.CharSplit(WordPieceTokenizer::isPunctuation, HfPreTokenizer.Behavior.ISOLATED)));
            case "Punctuation" -> new HfPreTokenizer.CharSplit(WordPieceTokenizer::isPunctuation,
                    n.get("behavior").isNull() ? HfPreTokenizer.Behavior.ISOLATED : behavior(n.get("behavior")));
            case "CharDelimiterSplit" -> {
                int delimiter = singleChar(n.get("delimiter"));
                yield new HfPreTokenizer.CharSplit(cp -> cp == delimiter, HfPreTokenizer.Behavior.REMOVED);
            }
            case "Sequence" -> {
                List<HfPreTokenizer> steps = new ArrayList<>();
                for (int i = 0; i < n.get("pretokenizers").list().size(); i++) {
                    steps.add(preTokenizer(n.get("pretokenizers").at(i)));
                }
                yield new HfPreTokenizer.Sequence(steps);
            }
            default -> throw n.get("type").error("is '" + type + "', a pre-tokenizer that is not supported (supported:"
                    + " ByteLevel, Split, Metaspace, Digits, Whitespace, WhitespaceSplit, BertPreTokenizer, Punctuation,"
                    + " CharDelimiterSplit, Sequence)");
        };
    }

    private HfPreTokenizer split(Node n) {
        HfPreTokenizer.Behavior behavior = behavior(n.get("behavior"));
        boolean invert = n.get("invert").bool(false);
        Node regex = n.get("pattern").get("Regex");
        if (!regex.isNull() && behavior == HfPreTokenizer.Behavior.ISOLATED && !invert) {
            PreTokenizer.Preset preset = switch (regex.string()) {
                case LLAMA3_SPLIT -> PreTokenizer.Preset.LLAMA3;
                case QWEN2_SPLIT -> PreTokenizer.Preset.QWEN2;
                case GPT2_SPLIT -> PreTokenizer.Preset.GPT2;
                default -> null;
            };
            if (preset != null) {
                return new HfPreTokenizer.Scanner(PreTokenizer.of(preset));
            }
        }
        return new HfPreTokenizer.Split(pattern(n.get("pattern")), behavior, invert);
    }

    private static HfPreTokenizer.Behavior behavior(Node n) {
        return switch (n.string()) {
            case "Removed" -> HfPreTokenizer.Behavior.REMOVED;
            case "Isolated" -> HfPreTokenizer.Behavior.ISOLATED;
            case "MergedWithPrevious" -> HfPreTokenizer.Behavior.MERGED_WITH_PREVIOUS;
            case "MergedWithNext" -> HfPreTokenizer.Behavior.MERGED_WITH_NEXT;
            case "Contiguous" -> HfPreTokenizer.Behavior.CONTIGUOUS;
            default -> throw n.error("is '" + n.string() + "', not a split behavior (Removed, Isolated,"
                    + " MergedWithPrevious, MergedWithNext, Contiguous)");
        };
    }

    private static char replacement(Node n) {
        int c = singleChar(n.get("replacement"));
        if (Character.isSupplementaryCodePoint(c)) {
            throw n.get("replacement").error("is outside the Basic Multilingual Plane, which is not supported");
        }
        return (char) c;
    }

    /** prepend_scheme, or the older add_prefix_space (false: never). */
    private static HfPreTokenizer.Metaspace.Prepend prependScheme(Node n) {
        if (!n.get("add_prefix_space").isNull() && !n.get("add_prefix_space").bool(true)) {
            return HfPreTokenizer.Metaspace.Prepend.NEVER;
        }
        Node scheme = n.get("prepend_scheme");
        if (scheme.isNull()) {
            return HfPreTokenizer.Metaspace.Prepend.ALWAYS;
        }
        return switch (scheme.string()) {
            case "always" -> HfPreTokenizer.Metaspace.Prepend.ALWAYS;
            case "first" -> HfPreTokenizer.Metaspace.Prepend.FIRST;
            case "never" -> HfPreTokenizer.Metaspace.Prepend.NEVER;
            default -> throw scheme.error("is '" + scheme.string() + "', not always, first or never");
        };
    }

    /**
     * A {@code {"String": ...}} pattern (literal) or {@code {"Regex": ...}} (Oniguruma syntax, run by
     * java.util.regex with Unicode classes: \s is White_Space, \w and \d Unicode, as in Oniguruma).
     */
    private static Pattern pattern(Node n) {
        if (!n.get("String").isNull()) {
            return Pattern.compile(Pattern.quote(n.get("String").string()));
        }
        Node regex = n.get("Regex");
        try {
            return Pattern.compile(javaRegex(regex.string()), Pattern.UNICODE_CHARACTER_CLASS);
        } catch (PatternSyntaxException e) {
            throw regex.error("is a regular expression Peregrine cannot run: " + e.getDescription());
        }
    }

    /** Oniguruma's script classes ("\p{Han}") in Java's spelling ("\p{IsHan}"). */
    static String javaRegex(String onig) {
        StringBuilder b = new StringBuilder(onig.length());
        for (int i = 0; i < onig.length(); i++) {
            char c = onig.charAt(i);
            b.append(c);
            if (c != '\\' || i + 1 >= onig.length()) {
                continue;
            }
            char next = onig.charAt(++i);
            b.append(next);
            int close = onig.indexOf('}', i);
            if ((next == 'p' || next == 'P') && i + 1 < onig.length() && onig.charAt(i + 1) == '{' && close > 0) {
                String name = onig.substring(i + 2, close);
                if (isScript(name)) {
                    b.append("{Is").append(name).append('}');
                    i = close;
                }
            }
        }
        return b.toString();
    }

    private static boolean isScript(String name) {
        try {
            Character.UnicodeScript.forName(name);
            return name.length() > 2; // not a one- or two-letter category such as L or Lu
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    // ---- post-processors --------------------------------------------------------------------------

    /** Adds the tokens the post-processor puts before and after a single sequence. */
    private void postProcessor(Node n, IntList prefix, IntList suffix) {
        String type = n.get("type").string();
        switch (type) {
            case "ByteLevel" -> {
                // offsets only
            }
            case "TemplateProcessing" -> {
                Node single = n.get("single");
                Node specials = n.get("special_tokens");
                IntList before = new IntList(2);
                IntList after = new IntList(2);
                boolean sequenceSeen = false;
                for (int i = 0; i < single.list().size(); i++) {
                    Node piece = single.at(i);
                    if (!piece.get("Sequence").isNull()) {
                        Node id = piece.get("Sequence").get("id");
                        if (!id.string().equals("A") || sequenceSeen) {
                            throw id.error("is '" + id.string() + "': a single-sequence template holds $A once");
                        }
                        sequenceSeen = true;
                        continue;
                    }
                    Node name = piece.get("SpecialToken").get("id");
                    Node ids = specials.get(name.string()).get("ids");
                    if (ids.isNull()) {
                        throw name.error("= '" + name.string() + "' is not in " + specials.path());
                    }
                    for (int k = 0; k < ids.list().size(); k++) {
                        (sequenceSeen ? after : before).add((int) ids.at(k).integer(0, Integer.MAX_VALUE));
                    }
                }
                if (!sequenceSeen) {
                    throw single.error("has no $A");
                }
                wrap(prefix, suffix, before.toArray(), after.toArray());
            }
            case "BertProcessing", "RobertaProcessing" -> wrap(prefix, suffix,
                    new int[] {(int) n.get("cls").at(1).integer(0, Integer.MAX_VALUE)},
                    new int[] {(int) n.get("sep").at(1).integer(0, Integer.MAX_VALUE)});
            case "Sequence" -> {
                int adding = 0;
                for (int i = 0; i < n.get("processors").list().size(); i++) {
                    Node processor = n.get("processors").at(i);
                    // After one that adds tokens, Hugging Face hands the next several encodings
                    // (its pair template for two, a panic for more): not something to reproduce.
                    if (!processor.get("type").string().equals("ByteLevel") && ++adding > 1) {
                        throw processor.error("follows another processor that adds tokens, which is not supported");
                    }
                    postProcessor(processor, prefix, suffix);
                }
            }
            default -> throw n.get("type").error("is '" + type + "', a post-processor that is not supported"
                    + " (supported: ByteLevel, TemplateProcessing, BertProcessing, RobertaProcessing, Sequence)");
        }
    }

    /** Sets the tokens around a sequence (only one processor adds any, see "Sequence"). */
    private static void wrap(IntList prefix, IntList suffix, int[] before, int[] after) {
        for (int id : before) {
            prefix.add(id);
        }
        for (int id : after) {
            suffix.add(id);
        }
    }

    /**
     * What transformers does on loading: a tokenizer_config.json that sets add_bos_token or
     * add_eos_token, or names a Llama or Gemma tokenizer class (which add BOS unless told not to),
     * has its post-processor replaced by "[BOS] $A [EOS]" with each part as the config says. So
     * DeepSeek-V3's files, whose tokenizer.json adds nothing, add BOS as the model expects.
     */
    private void transformersPostProcessor(Node config, int bosId, int eosId, IntList prefix, IntList suffix) {
        String tokenizerClass = config.get("tokenizer_class").optString("");
        boolean bosByDefault = BOS_BY_DEFAULT.contains(tokenizerClass);
        if (config.get("add_bos_token").isNull() && config.get("add_eos_token").isNull() && !bosByDefault) {
            return;
        }
        boolean addBos = config.get("add_bos_token").bool(bosByDefault);
        boolean addEos = config.get("add_eos_token").bool(false);
        if ((addBos && bosId < 0) || (addEos && eosId < 0)) {
            throw config.error("asks for " + (addBos && bosId < 0 ? "a BOS" : "an EOS") + " token but names none");
        }
        int[] before = prefix.toArray();
        int[] after = suffix.toArray();
        prefix.clear();
        suffix.clear();
        if (addBos) {
            prefix.add(bosId);
        }
        if (addEos) {
            suffix.add(eosId);
        }
        if (!Arrays.equals(before, prefix.toArray()) || !Arrays.equals(after, suffix.toArray())) {
            LOG.info("{}: add_bos_token = {}, add_eos_token = {} ({}): the tokens around a sequence are set as"
                    + " transformers sets them, not as tokenizer.json's post_processor says", config.file(), addBos,
                    addEos, tokenizerClass.isEmpty() ? "no tokenizer_class" : tokenizerClass);
        }
    }

    // ---- decoders ---------------------------------------------------------------------------------

    private List<HfDecoder.Step> decoder(Node n) {
        String type = n.get("type").string();
        return switch (type) {
            case "ByteLevel" -> List.of(new HfDecoder.ByteLevel());
            case "ByteFallback" -> List.of(new HfDecoder.ByteFallback());
            case "Fuse" -> List.of(new HfDecoder.Fuse());
            case "Replace" -> {
                Node pattern = n.get("pattern");
                String content = n.get("content").string();
                yield List.of(pattern.get("String").isNull()
                        ? new HfDecoder.Replace(null, pattern(pattern), content)
                        : new HfDecoder.Replace(pattern.get("String").string(), null, content));
            }
            case "Strip" -> List.of(new HfDecoder.Strip(singleChar(n.get("content")),
                    (int) n.get("start").integer(0, Integer.MAX_VALUE), (int) n.get("stop").integer(0, Integer.MAX_VALUE)));
            case "Metaspace" -> List.of(new HfDecoder.Metaspace(replacement(n),
                    prependScheme(n) != HfPreTokenizer.Metaspace.Prepend.NEVER));
            case "WordPiece" -> List.of(new HfDecoder.WordPiece(n.get("prefix").optString("##"), n.get("cleanup").bool(true)));
            case "Sequence" -> {
                List<HfDecoder.Step> steps = new ArrayList<>();
                for (int i = 0; i < n.get("decoders").list().size(); i++) {
                    steps.addAll(decoder(n.get("decoders").at(i)));
                }
                yield steps;
            }
            default -> throw n.get("type").error("is '" + type + "', a decoder that is not supported (supported:"
                    + " ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace, WordPiece, Sequence)");
        };
    }

    // ---- helpers ----------------------------------------------------------------------------------

    private static int singleChar(Node n) {
        String s = n.string();
        if (s.isEmpty() || s.codePointCount(0, s.length()) != 1) {
            throw n.error("= '" + s + "' is not a single character");
        }
        return s.codePointAt(0);
    }

    private static boolean contains(int[] ids, int id) {
        for (int i : ids) {
            if (i == id) {
                return true;
            }
        }
        return false;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    /** A JSON value with its path, for typed access and messages that say where a problem is. */
    record Node(Object value, String path, Path file) {

        /** The member {@code key} of this object (null value if absent). */
        Node get(String key) {
            Object v = value instanceof Map<?, ?> m ? m.get(key) : null;
            if (value != null && !(value instanceof Map)) {
                throw error("is not an object");
            }
            return new Node(v, path.isEmpty() ? key : path + "." + key, file);
        }

        Node at(int index) {
            return new Node(list().get(index), path + "[" + index + "]", file);
        }

        boolean isNull() {
            return value == null;
        }

        @SuppressWarnings("unchecked")
        Map<String, Object> map() {
            if (value instanceof Map<?, ?> m) {
                return (Map<String, Object>) m;
            }
            throw error(value == null ? "is missing" : "is not an object");
        }

        List<?> list() {
            if (value instanceof List<?> l) {
                return l;
            }
            throw error(value == null ? "is missing" : "is not an array");
        }

        String string() {
            if (value instanceof String s) {
                return s;
            }
            throw error(value == null ? "is missing" : "is not a string");
        }

        String optString(String absent) {
            return value == null ? absent : string();
        }

        boolean bool(boolean absent) {
            if (value == null) {
                return absent;
            }
            if (value instanceof Boolean b) {
                return b;
            }
            throw error("is not true or false");
        }

        double number() {
            if (value instanceof Number x) {
                return x.doubleValue();
            }
            throw error(value == null ? "is missing" : "is not a number");
        }

        long integer(long min, long max) {
            if (!(value instanceof Long x)) {
                throw error(value == null ? "is missing" : "is not an integer");
            }
            if (x < min || x > max) {
                throw error("= " + x + " is outside " + min + ".." + max);
            }
            return x;
        }

        ModelFormatException error(String reason) {
            return new ModelFormatException(file + ": '" + (path.isEmpty() ? "(top level)" : path) + "' " + reason);
        }

        @Override
        public String toString() {
            return path + " = " + Objects.toString(value);
        }
    }
}
