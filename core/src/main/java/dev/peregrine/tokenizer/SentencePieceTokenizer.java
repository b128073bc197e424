package dev.peregrine.tokenizer;

import static java.nio.charset.StandardCharsets.UTF_8;

import dev.peregrine.ModelFormatException;
import java.util.Arrays;
import java.util.Locale;
import java.util.Objects;
import java.util.Set;

/**
 * The SentencePiece BPE tokenizer of llama.cpp's "llama" vocabulary type (Llama 1/2, Mistral 7B,
 * Phi-3, TinyLlama, llama2.c models), giving the same ids as llama.cpp's {@code llama_tokenize}.
 *
 * <p>Encoding, as llama.cpp does it:
 * <ol>
 *   <li>Special-token partitioning: the text of control, unknown and user-defined tokens is cut
 *       out of the text, longest token first. Without {@code parseSpecial} only user-defined tokens
 *       are cut out (as Hugging Face does for added tokens).
 *   <li>Each remaining text fragment that starts the sequence or follows a special token gets a
 *       space in front when the vocabulary's {@code add_space_prefix} is set; spaces become "▁".
 *   <li>BPE on characters: adjacent symbols whose concatenation is a token are merged, highest
 *       token score first (leftmost on ties), using a linked list of symbols and a heap of
 *       candidate pairs, so a text of n characters costs O(n log n).
 *   <li>A character that is no token becomes byte tokens "&lt;0xHH&gt;" for its UTF-8 bytes; when
 *       the vocabulary lacks those, the unknown token (llama.cpp would abort instead).
 * </ol>
 *
 * <p>Decoding: "▁" becomes a space, byte tokens become their byte, user-defined tokens their
 * text; control, unknown and unused tokens contribute nothing (llama.cpp's {@code
 * llama_token_to_piece} with {@code special = false}). {@link #decode} of a whole sequence drops
 * the one space that encoding put before the first piece of text, when {@code add_space_prefix}
 * is set, so {@code decode(encode(s)) == s}. That follows SentencePiece and Hugging Face
 * ({@code skip_special_tokens}); llama.cpp's {@code llama_detokenize} differs only when the
 * sequence starts with BOS, where it keeps that space. {@link StreamingDecoder} keeps every space,
 * since it decodes text that continues a prompt.
 *
 * <p>Immutable and thread-safe.
 */
public final class SentencePieceTokenizer implements Tokenizer {
    private static final char SPACE_MARK = '\u2581';
    private static final byte[] NO_BYTES = new byte[0];
    /** The marker bits of a UTF-8 sequence's first byte, by sequence length. */
    private static final int[] UTF8_LEAD = {0, 0, 0xC0, 0xE0, 0xF0};

    // Token attributes as bit flags, like llama.cpp's: a token keeps its type's flag and may gain
    // CONTROL or RSTRIP from the rules below.
    private static final int NORMAL = 1;
    private static final int UNKNOWN = 1 << 1;
    private static final int CONTROL = 1 << 2;
    private static final int USER_DEFINED = 1 << 3;
    private static final int BYTE = 1 << 4;
    private static final int RSTRIP = 1 << 5; // whitespace after the token's text is dropped

    /**
     * Texts llama.cpp treats as end of generation (and so as control tokens) whatever the file
     * says: the markers of end of turn / message / text of the common model families.
     */
    private static final Set<String> END_OF_GENERATION_TEXTS = Set.of(
            "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
            "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
            "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
            "<｜end▁of▁sentence｜>", "[e~[",
            // fill-in-the-middle padding, repository and file separators end a generation too
            "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
            "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>");

    /** Fill-in-the-middle markers: llama.cpp makes them control tokens too. */
    private static final Set<String> FILL_IN_THE_MIDDLE_TEXTS = Set.of(
            "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
            "<|code_prefix|>", "<|prefix|>",
            "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
            "<|code_suffix|>", "<|suffix|>",
            "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
            "<|code_middle|>", "<|middle|>");

    private final Vocabulary vocab;
    private final TokenIndex index;
    private final int[] attributes;
    private final boolean[] endOfGeneration;
    private final byte[][] pieceBytes;
    /** Token of each byte value for byte fallback, or -1. */
    private final int[] byteTokens = new int[256];
    /** Control, unknown and user-defined tokens, longest text (in UTF-8 bytes) first. */
    private final int[] specialTokens;
    /** The user-defined ones among them: cut out even when special text is not parsed. */
    private final int[] userDefinedTokens;

    /**
     * @throws ModelFormatException if two tokens share a text or a byte token's text is not
     *                              "&lt;0xHH&gt;"
     */
    public SentencePieceTokenizer(Vocabulary vocab) {
        this.vocab = Objects.requireNonNull(vocab, "vocab");
        String[] tokens = vocab.tokens();
        this.index = new TokenIndex(tokens);
        this.attributes = attributes(vocab);

        this.endOfGeneration = new boolean[tokens.length];
        for (int id = 0; id < tokens.length; id++) {
            endOfGeneration[id] = END_OF_GENERATION_TEXTS.contains(tokens[id]);
        }
        for (int id : new int[] {vocab.eosId(), vocab.eotId(), vocab.eomId()}) {
            if (id >= 0) {
                endOfGeneration[id] = true;
            }
        }

        this.pieceBytes = new byte[tokens.length][];
        for (int id = 0; id < tokens.length; id++) {
            pieceBytes[id] = pieceBytes(id);
        }

        for (int b = 0; b < 256; b++) {
            int id = index.find(String.format(Locale.ROOT, "<0x%02X>", b));
            // llama.cpp's fallback for vocabularies without byte tokens: the byte as a one-char token
            byteTokens[b] = id >= 0 || b >= 0x80 ? id : index.find(String.valueOf((char) b));
        }

        this.specialTokens = specialTokensLongestFirst(UNKNOWN | CONTROL | USER_DEFINED);
        this.userDefinedTokens = Arrays.stream(specialTokens)
                .filter(id -> (attributes[id] & (CONTROL | UNKNOWN)) == 0)
                .toArray();
    }

    public Vocabulary vocabulary() {
        return vocab;
    }

    @Override
    public int[] encode(String text, boolean addSpecial, boolean parseSpecial) {
        Objects.requireNonNull(text, "text");
        IntList out = new IntList(text.length() / 2 + 2);
        if (addSpecial && vocab.addBos()) {
            out.add(vocab.bosId());
        }
        if (!text.isEmpty()) {
            IntList fragments = partition(text, parseSpecial ? specialTokens : userDefinedTokens);
            boolean afterSpecial = true; // the start of the sequence counts as "after a special token"
            for (int f = 0; f < fragments.size(); f += 3) {
                int special = fragments.get(f + 2);
                if (special >= 0) {
                    out.add(special);
                    afterSpecial = true;
                } else {
                    encodeText(text, fragments.get(f), fragments.get(f + 1),
                            vocab.addSpacePrefix() && afterSpecial, out);
                    afterSpecial = false;
                }
            }
        }
        if (addSpecial && vocab.addEos()) {
            out.add(vocab.eosId());
        }
        return out.toArray();
    }

    @Override
    public byte[] tokenBytes(int id) {
        return pieceBytes[checkId(id)];
    }

    @Override
    public String piece(int id) {
        return vocab.tokens()[checkId(id)];
    }

    @Override
    public String decode(int[] ids) {
        StringBuilder text = new StringBuilder(ids.length * 4);
        Utf8Decoder utf8 = new Utf8Decoder();
        boolean atStart = vocab.addSpacePrefix();
        for (int id : ids) {
            byte[] bytes = tokenBytes(id);
            if (bytes.length > 0) {
                utf8.decode(bytes, atStart && bytes[0] == ' ' ? 1 : 0, bytes.length, text);
                atStart = false;
            }
        }
        utf8.finish(text);
        return text.toString();
    }

    @Override
    public int vocabularySize() {
        return vocab.size();
    }

    @Override
    public int bosId() {
        return vocab.bosId();
    }

    @Override
    public int eosId() {
        return vocab.eosId();
    }

    @Override
    public boolean isEndOfGeneration(int id) {
        return id >= 0 && id < endOfGeneration.length && endOfGeneration[id];
    }

    // ---- encoding -------------------------------------------------------------------------------

    /**
     * Cuts the text at every occurrence of the special tokens' texts, one token after the other,
     * longest first (llama.cpp's {@code tokenizer_st_partition}). Returns fragments as triples
     * (start, end, token id), the id being -1 for a piece of text still to be encoded.
     */
    private IntList partition(String text, int[] specials) {
        IntList fragments = new IntList(3);
        fragments.add(0);
        fragments.add(text.length());
        fragments.add(-1);
        IntList scratch = new IntList(3);
        for (int special : specials) {
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
        String token = vocab.tokens()[special];
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
                if (match > from) {
                    addFragment(result, from, match, -1);
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

    /** Encodes {@code text[start, end)}, a fragment without special tokens, onto {@code out}. */
    private void encodeText(String text, int start, int end, boolean spacePrefix, IntList out) {
        char[] chars = new char[end - start + (spacePrefix ? 1 : 0)];
        int n = 0;
        if (spacePrefix) {
            chars[n++] = SPACE_MARK;
        }
        for (int i = start; i < end; i++) {
            char c = text.charAt(i);
            if (c == ' ') {
                c = SPACE_MARK;
            } else if (Character.isHighSurrogate(c) && i + 1 < end && Character.isLowSurrogate(text.charAt(i + 1))) {
                chars[n++] = c;
                c = text.charAt(++i);
            } else if (Character.isSurrogate(c)) {
                c = '?'; // an unpaired surrogate has no UTF-8 form; String.getBytes writes '?' too
            }
            chars[n++] = c;
        }

        if (n == 0) {
            return;
        }
        Merger merger = new Merger(chars, index, vocab.scores());
        merger.run();
        for (int s = 0; s >= 0; s = merger.next[s]) {
            emitSymbol(chars, merger.start[s], merger.length[s], out);
        }
    }

    /** A symbol that survived merging: a token, or a character that needs byte fallback. */
    private void emitSymbol(char[] chars, int from, int length, IntList out) {
        int id = index.find(chars, from, length);
        if (id >= 0) {
            out.add(id);
            return;
        }
        int codePoint = Character.codePointAt(chars, from);
        int byteCount = codePoint < 0x80 ? 1 : codePoint < 0x800 ? 2 : codePoint < 0x10000 ? 3 : 4;
        int first = out.size();
        for (int i = 0; i < byteCount; i++) {
            int shift = 6 * (byteCount - 1 - i);
            int b = i == 0 ? UTF8_LEAD[byteCount] | (codePoint >> shift) : 0x80 | ((codePoint >> shift) & 0x3F);
            int byteToken = byteTokens[b];
            if (byteToken < 0) {
                out.truncate(first);
                emitUnknown(codePoint, b, out);
                return;
            }
            out.add(byteToken);
        }
    }

    private void emitUnknown(int codePoint, int missingByte, IntList out) {
        if (vocab.unkId() < 0) {
            throw new ModelFormatException(String.format(Locale.ROOT,
                    "the vocabulary cannot encode U+%04X: it has no byte token <0x%02X> and no unknown token",
                    codePoint, missingByte));
        }
        out.add(vocab.unkId());
    }

    private int checkId(int id) {
        if (id < 0 || id >= pieceBytes.length) {
            throw new IllegalArgumentException("token id " + id + " is outside the vocabulary of "
                    + pieceBytes.length + " tokens");
        }
        return id;
    }

    // ---- construction ---------------------------------------------------------------------------

    private static int[] attributes(Vocabulary vocab) {
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
        // llama.cpp's rule for Phi-3, whose files do not carry Hugging Face's rstrip flags:
        // whitespace after its special tokens is dropped, except after <unk>, <s>, <|endoftext|>.
        String name = vocab.modelName().toLowerCase(Locale.ROOT);
        if (name.contains("phi-3") || name.contains("phi3")) {
            for (int id = 0; id < tokens.length; id++) {
                boolean special = (attributes[id] & (UNKNOWN | CONTROL | USER_DEFINED)) != 0;
                boolean exempt = tokens[id].equals("<unk>") || tokens[id].equals("<s>")
                        || tokens[id].equals("<|endoftext|>");
                if ((special || tokens[id].equals("</s>")) && !exempt) {
                    attributes[id] |= RSTRIP;
                }
            }
        }
        return attributes;
    }

    private byte[] pieceBytes(int id) {
        String text = vocab.tokens()[id];
        int attr = attributes[id];
        if ((attr & (CONTROL | UNKNOWN)) != 0) {
            return NO_BYTES;
        }
        if ((attr & USER_DEFINED) != 0) {
            return text.getBytes(UTF_8);
        }
        if ((attr & NORMAL) != 0) {
            return text.replace(SPACE_MARK, ' ').getBytes(UTF_8);
        }
        if ((attr & BYTE) != 0) {
            return new byte[] {(byte) byteValue(id, text)};
        }
        return NO_BYTES;
    }

    private static int byteValue(int id, String text) {
        int high = text.length() == 6 && text.startsWith("<0x") && text.endsWith(">")
                ? Character.digit(text.charAt(3), 16) : -1;
        int low = high >= 0 ? Character.digit(text.charAt(4), 16) : -1;
        if (low < 0) {
            throw new ModelFormatException("'" + Vocabulary.KEY_TOKENS + "'[" + id + "] = '" + text
                    + "' has the byte token type but is not of the form <0xHH>");
        }
        return high << 4 | low;
    }

    /** Ids having any of {@code flags}, by decreasing UTF-8 length of their text, then by id. */
    private int[] specialTokensLongestFirst(int flags) {
        String[] tokens = vocab.tokens();
        long[] keys = new long[tokens.length];
        int count = 0;
        for (int id = 0; id < tokens.length; id++) {
            if ((attributes[id] & flags) != 0) {
                int utf8Length = pieceLengthUtf8(tokens[id]);
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

    private static int pieceLengthUtf8(String text) {
        int length = 0;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            length += c < 0x80 ? 1 : c < 0x800 ? 2 : Character.isSurrogate(c) ? 2 : 3; // a pair: 4 in all
        }
        return length;
    }

    /**
     * One run of SentencePiece BPE over a fragment: symbols (initially one per character) in a
     * doubly linked list, candidate pairs in a binary min-heap of keys that order them by token
     * score (highest first), then by left symbol (leftmost first). A merge leaves stale pairs
     * behind in the heap; they are recognised by the changed length of their symbols and skipped.
     */
    private static final class Merger {
        private final char[] text;
        private final TokenIndex index;
        private final float[] scores;
        final int[] start;
        final int[] length; // 0 once merged into the symbol on its left
        final int[] prev;
        final int[] next;
        private final int symbolCount;

        /** Pair keys: inverted sortable score bits, then the left symbol (see {@link #key}). */
        private long[] heapKey;
        /** The pair's merged length when queued; a different current length means it is stale. */
        private int[] heapLength;
        private int heapSize;

        Merger(char[] text, TokenIndex index, float[] scores) {
            this.text = text;
            this.index = index;
            this.scores = scores;
            int capacity = text.length;
            start = new int[capacity];
            length = new int[capacity];
            prev = new int[capacity];
            next = new int[capacity];
            int count = 0;
            for (int i = 0; i < text.length; count++) {
                int len = Character.isHighSurrogate(text[i]) && i + 1 < text.length
                        && Character.isLowSurrogate(text[i + 1]) ? 2 : 1;
                start[count] = i;
                length[count] = len;
                prev[count] = count - 1;
                next[count] = count + 1;
                i += len;
            }
            next[count - 1] = -1;
            symbolCount = count;
            // n - 1 pairs to start with, then at most two more per merge: grown on demand.
            heapKey = new long[Math.max(4, count)];
            heapLength = new int[heapKey.length];
        }

        void run() {
            for (int s = 1; s < symbolCount; s++) {
                int id = pairToken(s - 1, s);
                if (id >= 0) {
                    heapKey[heapSize] = key(scores[id], s - 1);
                    heapLength[heapSize++] = length[s - 1] + length[s];
                }
            }
            for (int i = heapSize / 2 - 1; i >= 0; i--) {
                siftDown(i);
            }
            while (heapSize > 0) {
                int left = (int) heapKey[0];
                int merged = heapLength[0];
                pop();
                // A pair whose symbols are both unchanged is still adjacent, so its right symbol
                // is next[left]; any merge since it was queued changed one of the two lengths.
                int right = next[left];
                if (length[left] == 0 || right < 0 || length[left] + length[right] != merged) {
                    continue;
                }
                length[left] = merged;
                length[right] = 0;
                next[left] = next[right];
                if (next[right] >= 0) {
                    prev[next[right]] = left;
                }
                tryPair(prev[left], left);
                tryPair(left, next[left]);
            }
        }

        /** The token that symbols {@code left} and {@code right} (adjacent) would merge into, or -1. */
        private int pairToken(int left, int right) {
            return index.find(text, start[left], length[left] + length[right]);
        }

        private void tryPair(int left, int right) {
            if (left < 0 || right < 0) {
                return;
            }
            int id = pairToken(left, right);
            if (id >= 0) {
                push(key(scores[id], left), length[left] + length[right]);
            }
        }

        /**
         * A key whose signed order is: higher score first, then lower left symbol. Float bits are
         * made to sort like the floats (negative ones flipped), inverted for "highest first";
         * -0.0 is folded into 0.0, which compares equal to it.
         */
        private static long key(float score, int left) {
            int bits = Float.floatToIntBits(score + 0.0f);
            int sortable = bits >= 0 ? bits : bits ^ 0x7FFF_FFFF;
            return (long) ~sortable << 32 | left;
        }

        private void push(long key, int merged) {
            if (heapSize == heapKey.length) {
                heapKey = Arrays.copyOf(heapKey, heapSize * 2);
                heapLength = Arrays.copyOf(heapLength, heapSize * 2);
            }
            int i = heapSize++;
            while (i > 0) {
                int parent = (i - 1) >>> 1;
                if (heapKey[parent] <= key) {
                    break;
                }
                heapKey[i] = heapKey[parent];
                heapLength[i] = heapLength[parent];
                i = parent;
            }
            heapKey[i] = key;
            heapLength[i] = merged;
        }

        private void pop() {
            heapSize--;
            if (heapSize > 0) {
                heapKey[0] = heapKey[heapSize];
                heapLength[0] = heapLength[heapSize];
                siftDown(0);
            }
        }

        private void siftDown(int i) {
            long key = heapKey[i];
            int merged = heapLength[i];
            while (true) {
                int child = 2 * i + 1;
                if (child >= heapSize) {
                    break;
                }
                if (child + 1 < heapSize && heapKey[child + 1] < heapKey[child]) {
                    child++;
                }
                if (heapKey[child] >= key) {
                    break;
                }
                heapKey[i] = heapKey[child];
                heapLength[i] = heapLength[child];
                i = child;
            }
            heapKey[i] = key;
            heapLength[i] = merged;
        }
    }
}
