package dev.peregrine.tokenizer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A tokenizer described by a Hugging Face {@code tokenizer.json}, giving the ids and texts of
 * Hugging Face's tokenizers library (see {@link Tokenizers#fromHuggingFace} for what is supported).
 *
 * <p>Encoding runs Hugging Face's pipeline: added tokens are cut out of the raw text
 * ({@link HfAddedTokens}), each remaining piece is normalized ({@link HfNormalizer}), added tokens
 * matched after normalization are cut out, the rest is pre-tokenized ({@link HfPreTokenizer}) and
 * each piece encoded by the model ({@link HfModel}: BPE or WordPiece); with {@code addSpecial} the
 * post-processor's tokens go around the sequence. {@code parseSpecial = false} is Hugging Face's
 * {@code split_special_tokens = True}: the text of special added tokens is encoded as plain text,
 * while non-special added tokens (Qwen 3's {@code <think>}, DeepSeek's {@code <｜User｜>}) are still
 * recognised, as there.
 *
 * <p>{@link #decode} gives exactly Hugging Face's {@code decode(ids, skip_special_tokens=False)}:
 * special tokens appear as their text, and the decoder's rules for the first token apply to the
 * first token of the sequence, special or not (Mistral's "&lt;s&gt; Hello" keeps its space).
 * {@link #tokenBytes} is what a token contributes in the middle of a sequence, special tokens
 * included (their text, as in {@code decode}), so that streaming agrees with {@code decode} (see
 * {@link HfDecoder} for the two exceptions); a generation that ends on an end-of-generation token
 * never streams that token.
 *
 * <p>Immutable and thread-safe (the model's piece cache is its only mutable state).
 */
public final class HfTokenizer implements Tokenizer {
    private static final Logger LOG = LoggerFactory.getLogger(HfTokenizer.class);

    private final String[] tokens;
    private final HfAddedTokens added;
    private final HfNormalizer normalizer;
    private final HfPreTokenizer preTokenizer;
    private final HfModel model;
    private final int[] prefix;
    private final int[] suffix;
    private final HfDecoder decoder;
    private final byte[][] tokenBytes;
    private final Vocabulary vocabulary;
    private final SpecialTokens special;

    /**
     * @param tokens       every id's text as Hugging Face decodes it (an added token's content)
     * @param normalizer   null if none
     * @param preTokenizer null if none
     * @param prefix       the post-processor's tokens before a sequence
     * @param suffix       the post-processor's tokens after a sequence
     * @param vocabulary   the same tokens with their types and special ids
     */
    HfTokenizer(String[] tokens, HfAddedTokens added, HfNormalizer normalizer, HfPreTokenizer preTokenizer,
                HfModel model, int[] prefix, int[] suffix, HfDecoder decoder, Vocabulary vocabulary) {
        this.tokens = tokens;
        this.added = added;
        this.normalizer = normalizer;
        this.preTokenizer = preTokenizer;
        this.model = model;
        this.prefix = prefix;
        this.suffix = suffix;
        this.decoder = decoder;
        this.vocabulary = vocabulary;
        this.special = new SpecialTokens(vocabulary, "");
        this.tokenBytes = new byte[tokens.length][];
        for (int id = 0; id < tokens.length; id++) {
            tokenBytes[id] = decoder.middle(tokens[id]);
        }
    }

    /** {@code original} with another vocabulary (the same tokens). */
    private HfTokenizer(HfTokenizer original, Vocabulary vocabulary) {
        this.tokens = original.tokens;
        this.added = original.added;
        this.normalizer = original.normalizer;
        this.preTokenizer = original.preTokenizer;
        this.model = original.model;
        this.prefix = original.prefix;
        this.suffix = original.suffix;
        this.decoder = original.decoder;
        this.tokenBytes = original.tokenBytes;
        this.vocabulary = vocabulary;
        this.special = new SpecialTokens(vocabulary, "");
    }

    /**
     * This tokenizer, with generation also ending on {@code ids}: the {@code eos_token_id}s of a
     * model's config.json and generation_config.json (an id or a list of them), which transformers'
     * {@code generate} stops on. The tokenizer's own end-of-generation tokens (tokenizer_config.json's
     * EOS, the end-of-turn texts) still end it. Ids outside the tokenizer's vocabulary (an embedding
     * table padded past it) are left out, with a warning. Encoding and decoding are unchanged.
     */
    public HfTokenizer withEndOfGeneration(int... ids) {
        int[] inside = Arrays.stream(ids).filter(id -> id >= 0 && id < tokens.length).toArray();
        if (inside.length < ids.length) {
            LOG.warn("end-of-generation ids {} are outside the tokenizer's {} tokens: left out",
                    Arrays.stream(ids).filter(id -> id < 0 || id >= tokens.length).boxed().toList(), tokens.length);
        }
        return inside.length == 0 ? this : new HfTokenizer(this, vocabulary.withEndOfGeneration(inside));
    }

    @Override
    public boolean isControlToken(int id) {
        return vocabulary.tokenTypes()[id] == Vocabulary.CONTROL;
    }

    /**
     * The vocabulary in llama.cpp's terms: special added tokens are control tokens, other added
     * tokens user-defined, "&lt;0xHH&gt;" tokens of a byte-fallback model byte tokens; BOS and EOS
     * come from tokenizer_config.json; add BOS / EOS say whether the post-processor adds them.
     */
    public Vocabulary vocabulary() {
        return vocabulary;
    }

    @Override
    public int[] encode(String text, boolean addSpecial, boolean parseSpecial) {
        Objects.requireNonNull(text, "text");
        IntList out = new IntList(text.length() / 3 + prefix.length + suffix.length);
        if (addSpecial) {
            addAll(prefix, out);
        }
        IntList fragments = added.split(text, false, parseSpecial);
        for (int f = 0; f < fragments.size(); f += 3) {
            int start = fragments.get(f);
            if (fragments.get(f + 2) >= 0) {
                out.add(fragments.get(f + 2));
            } else {
                encodeFragment(text.substring(start, fragments.get(f + 1)), start == 0, parseSpecial, out);
            }
        }
        if (addSpecial) {
            addAll(suffix, out);
        }
        return out.toArray();
    }

    /** Normalizes a piece of text between added tokens, then encodes what is between normalized added tokens. */
    private void encodeFragment(String fragment, boolean atStart, boolean parseSpecial, IntList out) {
        String text = normalizer == null ? fragment : normalizer.normalize(fragment);
        IntList fragments = added.split(text, true, parseSpecial);
        for (int f = 0; f < fragments.size(); f += 3) {
            int start = fragments.get(f);
            if (fragments.get(f + 2) >= 0) {
                out.add(fragments.get(f + 2));
                continue;
            }
            HfPreTokenizer.Piece piece = new HfPreTokenizer.Piece(text.substring(start, fragments.get(f + 1)),
                    atStart && start == 0);
            if (preTokenizer == null) {
                model.encode(piece.text(), out);
                continue;
            }
            List<HfPreTokenizer.Piece> pieces = new ArrayList<>();
            preTokenizer.split(piece, pieces);
            for (HfPreTokenizer.Piece p : pieces) {
                model.encode(p.text(), out);
            }
        }
    }

    private static void addAll(int[] ids, IntList out) {
        for (int id : ids) {
            out.add(id);
        }
    }

    @Override
    public byte[] tokenBytes(int id) {
        return tokenBytes[checkId(id)];
    }

    @Override
    public String piece(int id) {
        return tokens[checkId(id)];
    }

    @Override
    public String decode(int[] ids) {
        List<String> pieces = new ArrayList<>(ids.length);
        for (int id : ids) {
            pieces.add(tokens[checkId(id)]);
        }
        return decoder.decode(pieces);
    }

    @Override
    public int vocabularySize() {
        return tokens.length;
    }

    @Override
    public int bosId() {
        return vocabulary.bosId();
    }

    @Override
    public int eosId() {
        return vocabulary.eosId();
    }

    @Override
    public boolean isEndOfGeneration(int id) {
        return special.isEndOfGeneration(id);
    }

    private int checkId(int id) {
        if (id < 0 || id >= tokens.length) {
            throw new IllegalArgumentException("token id " + id + " is outside the vocabulary of "
                    + tokens.length + " tokens");
        }
        return id;
    }
}
