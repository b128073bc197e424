package dev.peregrine.tokenizer;

import static java.nio.charset.StandardCharsets.UTF_8;

import dev.peregrine.ModelFormatException;
import java.util.Locale;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The model of a Hugging Face tokenizer.json: turns one pre-tokenized piece into token ids.
 * Thread-safe.
 */
sealed interface HfModel {

    /** Adds the ids of {@code piece} (not empty) to {@code out}. */
    void encode(String piece, IntList out);

    /**
     * BPE as Hugging Face's tokenizers runs it. A piece is cut into characters, each looked up in
     * the model's vocabulary (with {@code continuing_subword_prefix} on all but the first and
     * {@code end_of_word_suffix} on the last); a character that is no token becomes its UTF-8
     * byte tokens ("&lt;0xHH&gt;", with {@code byte_fallback}), else the unknown token (adjacent ones
     * fused into one with {@code fuse_unk}), else nothing. Then {@link SymbolMerger} applies the
     * merges, lowest rank first, leftmost on ties. With {@code ignore_merges} a piece that is a
     * token is that token. Pieces are cached, as in Hugging Face (up to {@value #CACHE_PIECES}).
     */
    final class Bpe implements HfModel {
        private static final int CACHE_PIECES = 1 << 16;
        /** Longer pieces are rare and would only fill the cache. */
        private static final int CACHE_PIECE_LENGTH = 64;

        private final TokenIndex vocab;
        private final MergeTable merges;
        private final int unkId;
        private final boolean fuseUnk;
        private final boolean ignoreMerges;
        private final String prefix;
        private final String suffix;
        /** The byte-fallback token of each byte, or -1 (all -1 without byte fallback). */
        private final int[] byteTokens;
        private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();

        /**
         * @param unkId  the unknown token, or -1
         * @param prefix {@code continuing_subword_prefix}, or ""
         * @param suffix {@code end_of_word_suffix}, or ""
         */
        Bpe(TokenIndex vocab, MergeTable merges, int unkId, boolean fuseUnk, boolean byteFallback,
            boolean ignoreMerges, String prefix, String suffix) {
            this.vocab = vocab;
            this.merges = merges;
            this.unkId = unkId;
            this.fuseUnk = fuseUnk;
            this.ignoreMerges = ignoreMerges;
            this.prefix = prefix;
            this.suffix = suffix;
            this.byteTokens = new int[256];
            for (int b = 0; b < 256; b++) {
                byteTokens[b] = byteFallback ? vocab.find(String.format(Locale.ROOT, "<0x%02X>", b)) : -1;
            }
        }

        @Override
        public void encode(String piece, IntList out) {
            int[] ids = piece.length() <= CACHE_PIECE_LENGTH ? cache.get(piece) : null;
            if (ids == null) {
                ids = encodePiece(piece);
                if (piece.length() <= CACHE_PIECE_LENGTH && cache.size() < CACHE_PIECES) {
                    cache.putIfAbsent(piece, ids);
                }
            }
            for (int id : ids) {
                out.add(id);
            }
        }

        private int[] encodePiece(String piece) {
            if (ignoreMerges) {
                int id = vocab.find(piece);
                if (id >= 0) {
                    return new int[] {id};
                }
            }
            char[] chars = piece.toCharArray();
            int n = chars.length;
            SymbolMerger merger = new SymbolMerger(n);
            int position = 0;     // symbol start: only orders symbols (rules here look at ids alone)
            int pendingUnk = 0;   // length of an unknown run not yet added, 0 if none
            for (int i = 0; i < n; ) {
                int length = Character.isHighSurrogate(chars[i]) && i + 1 < n ? 2 : 1;
                boolean plain = (prefix.isEmpty() || i == 0) && (suffix.isEmpty() || i + length < n);
                String text = plain ? null : (i == 0 ? "" : prefix) + new String(chars, i, length)
                        + (i + length == n ? suffix : "");
                int id = plain ? vocab.find(chars, i, length) : vocab.find(text);
                int utf8Length = utf8Length(chars, i, length);
                i += length;
                if (id >= 0) {
                    if (pendingUnk > 0) {
                        merger.add(position, pendingUnk, unkId);
                        position += pendingUnk;
                        pendingUnk = 0;
                    }
                    merger.add(position, utf8Length, id);
                    position += utf8Length;
                    continue;
                }
                byte[] bytes = (plain ? new String(chars, i - length, length) : text).getBytes(UTF_8);
                if (hasByteTokens(bytes)) {
                    // added before an unknown run still pending, as Hugging Face does
                    for (byte b : bytes) {
                        merger.add(position++, 1, byteTokens[b & 0xFF]);
                    }
                    continue;
                }
                if (unkId >= 0) {
                    if (pendingUnk > 0 && !fuseUnk) {
                        merger.add(position, pendingUnk, unkId);
                        position += pendingUnk;
                        pendingUnk = 0;
                    }
                    pendingUnk += utf8Length;
                }
                // no token, no bytes, no unknown token: the character is dropped, as in Hugging Face
            }
            if (pendingUnk > 0) {
                merger.add(position, pendingUnk, unkId);
            }
            merger.run((left, right, start, length) -> merges.find(left, right));
            IntList ids = new IntList(n);
            for (int s = merger.first(); s >= 0; s = merger.next(s)) {
                ids.add(merger.token(s));
            }
            return ids.toArray();
        }

        private boolean hasByteTokens(byte[] bytes) {
            for (byte b : bytes) {
                if (byteTokens[b & 0xFF] < 0) {
                    return false;
                }
            }
            return true;
        }

        private static int utf8Length(char[] chars, int from, int length) {
            char c = chars[from];
            return length == 2 ? 4 : c < 0x80 ? 1 : c < 0x800 ? 2 : 3;
        }
    }

    /**
     * WordPiece as Hugging Face's tokenizers runs it: greedy longest match from the start of the
     * piece, then from where the match ended, continuation pieces carrying the prefix ("##"); a piece
     * that cannot be covered, or is longer than {@code maxChars} characters, is the unknown token.
     * The matching loop is {@link WordPieceTokenizer#longestMatchFirst}.
     */
    final class WordPiece implements HfModel {
        private final TokenIndex vocab;
        private final int unkId;
        private final String unkToken;
        private final char[] prefix;
        private final int maxChars;

        /** @param unkId the unknown token, or -1 if {@code unkToken} is not in the vocabulary */
        WordPiece(TokenIndex vocab, int unkId, String unkToken, String prefix, int maxChars) {
            this.vocab = vocab;
            this.unkId = unkId;
            this.unkToken = unkToken;
            this.prefix = prefix.toCharArray();
            this.maxChars = maxChars;
        }

        @Override
        public void encode(String piece, IntList out) {
            char[] chars = piece.toCharArray();
            if (piece.codePointCount(0, chars.length) <= maxChars) {
                char[] scratch = new char[prefix.length + chars.length];
                System.arraycopy(prefix, 0, scratch, 0, prefix.length);
                boolean covered = WordPieceTokenizer.longestMatchFirst(chars.length, vocab.maxLength(), (start, end) -> {
                    if (start == 0) {
                        return vocab.find(chars, 0, end);
                    }
                    System.arraycopy(chars, start, scratch, prefix.length, end - start);
                    return vocab.find(scratch, 0, prefix.length + end - start);
                }, out);
                if (covered) {
                    return;
                }
            }
            if (unkId < 0) {
                // Hugging Face fails here too (MissingUnkToken)
                throw new ModelFormatException("the WordPiece vocabulary cannot encode '" + piece
                        + "': its unknown token '" + unkToken + "' is not in the vocabulary");
            }
            out.add(unkId);
        }
    }
}
