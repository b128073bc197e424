package dev.peregrine.tokenizer;

import static java.nio.charset.StandardCharsets.UTF_8;

import java.util.Objects;
import java.util.function.Function;

/**
 * What the tokenizers of llama.cpp's vocabulary types share: the sequence around the text (BOS,
 * special-token partitioning, EOS), the bytes each token decodes to, and the special ids.
 * Subclasses encode the text between special tokens and say what a normal token's text stands for.
 */
abstract sealed class VocabularyTokenizer implements Tokenizer
        permits SentencePieceTokenizer, ByteLevelBpeTokenizer, WordPieceTokenizer {
    private static final byte[] NO_BYTES = new byte[0];

    final Vocabulary vocab;
    final SpecialTokens special;
    private final byte[][] pieceBytes;
    private final boolean dropFirstSpace;

    /**
     * @param preTokenizer   {@code tokenizer.ggml.pre}, or "", for the special-token rules keyed on it
     * @param normalBytes    the bytes a normal token's text stands for
     * @param dropFirstSpace whether {@link #decode} drops the space in front of the first word
     */
    VocabularyTokenizer(Vocabulary vocab, String preTokenizer, Function<String, byte[]> normalBytes,
                        boolean dropFirstSpace) {
        this.vocab = Objects.requireNonNull(vocab, "vocab");
        this.special = new SpecialTokens(vocab, preTokenizer);
        this.dropFirstSpace = dropFirstSpace;
        this.pieceBytes = new byte[vocab.size()][];
        for (int id = 0; id < pieceBytes.length; id++) {
            pieceBytes[id] = pieceBytes(id, normalBytes);
        }
    }

    @Override
    public boolean isControlToken(int id) {
        return vocab.tokenTypes()[id] == Vocabulary.CONTROL;
    }

    public Vocabulary vocabulary() {
        return vocab;
    }

    @Override
    public final int[] encode(String text, boolean addSpecial, boolean parseSpecial) {
        Objects.requireNonNull(text, "text");
        IntList out = new IntList(text.length() / 3 + 2);
        if (addSpecial && vocab.addBos()) {
            out.add(vocab.bosId());
        }
        if (!text.isEmpty()) {
            IntList fragments = special.partition(text, parseSpecial);
            boolean afterSpecial = true; // the start of the sequence counts as "after a special token"
            for (int f = 0; f < fragments.size(); f += 3) {
                int token = fragments.get(f + 2);
                if (token >= 0) {
                    out.add(token);
                    afterSpecial = true;
                } else {
                    encodeText(text, fragments.get(f), fragments.get(f + 1), afterSpecial, out);
                    afterSpecial = false;
                }
            }
        }
        if (addSpecial) {
            addClosingTokens(out);
        }
        return out.toArray();
    }

    /**
     * Encodes {@code text[start, end)}, a fragment without special tokens, onto {@code out}.
     *
     * @param afterSpecial whether the fragment starts the sequence or follows a special token
     */
    abstract void encodeText(String text, int start, int end, boolean afterSpecial, IntList out);

    /** Adds the tokens that end a sequence with special tokens: EOS when the vocabulary asks. */
    void addClosingTokens(IntList out) {
        if (vocab.addEos()) {
            out.add(vocab.eosId());
        }
    }

    @Override
    public final byte[] tokenBytes(int id) {
        return pieceBytes[checkId(id)];
    }

    @Override
    public final String piece(int id) {
        return vocab.tokens()[checkId(id)];
    }

    @Override
    public final String decode(int[] ids) {
        StringBuilder text = new StringBuilder(ids.length * 4);
        Utf8Decoder utf8 = new Utf8Decoder();
        boolean atStart = dropFirstSpace;
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
    public final int vocabularySize() {
        return vocab.size();
    }

    @Override
    public final int bosId() {
        return vocab.bosId();
    }

    @Override
    public final int eosId() {
        return vocab.eosId();
    }

    @Override
    public final boolean isEndOfGeneration(int id) {
        return special.isEndOfGeneration(id);
    }

    private int checkId(int id) {
        if (id < 0 || id >= pieceBytes.length) {
            throw new IllegalArgumentException("token id " + id + " is outside the vocabulary of "
                    + pieceBytes.length + " tokens");
        }
        return id;
    }

    /**
     * What llama.cpp's {@code llama_token_to_piece} gives without special text: control, unknown,
     * unused and undefined tokens nothing, user-defined tokens their text, byte tokens their byte.
     */
    private byte[] pieceBytes(int id, Function<String, byte[]> normalBytes) {
        String text = vocab.tokens()[id];
        int attr = special.attributes(id);
        if ((attr & (SpecialTokens.CONTROL | SpecialTokens.UNKNOWN)) != 0) {
            return NO_BYTES;
        }
        if ((attr & SpecialTokens.USER_DEFINED) != 0) {
            return text.getBytes(UTF_8);
        }
        if ((attr & SpecialTokens.NORMAL) != 0) {
            return normalBytes.apply(text);
        }
        if ((attr & SpecialTokens.BYTE) != 0) {
            return new byte[] {(byte) vocab.byteValue(id)};
        }
        return NO_BYTES;
    }
}
