package dev.peregrine.tokenizer;

/**
 * An incremental UTF-8 decoder: bytes may arrive in pieces that split a character, and the
 * incomplete tail is held until its next piece. Ill-formed input becomes U+FFFD, one for each
 * maximal subpart of an ill-formed sequence (the Unicode Standard's recommended practice, §3.9,
 * also followed by the WHATWG Encoding Standard and Python). Java's own decoder differs in one
 * case: it replaces an encoded surrogate (ED A0..BF xx) with one U+FFFD instead of three. Not
 * thread-safe.
 */
final class Utf8Decoder {
    private static final char REPLACEMENT = '\uFFFD';

    private int missing;   // continuation bytes still needed by the pending character
    private int codePoint; // bits of the pending character so far
    private int lowest;    // allowed range of the next continuation byte: narrower than
    private int highest;   // 80..BF right after E0, ED, F0 and F4 (no overlong forms or surrogates)

    /** Decodes {@code bytes[from, to)}, appending every character it completes to {@code out}. */
    void decode(byte[] bytes, int from, int to, StringBuilder out) {
        for (int i = from; i < to; i++) {
            int b = bytes[i] & 0xFF;
            if (missing > 0) {
                if (b >= lowest && b <= highest) {
                    codePoint = (codePoint << 6) | (b & 0x3F);
                    lowest = 0x80;
                    highest = 0xBF;
                    if (--missing == 0) {
                        out.appendCodePoint(codePoint);
                    }
                    continue;
                }
                // The pending bytes are a maximal ill-formed subpart; b starts afresh.
                out.append(REPLACEMENT);
                missing = 0;
            }
            if (b < 0x80) {
                out.append((char) b);
            } else if (b >= 0xC2 && b <= 0xDF) {
                begin(1, b & 0x1F, 0x80, 0xBF);
            } else if (b >= 0xE0 && b <= 0xEF) {
                begin(2, b & 0x0F, b == 0xE0 ? 0xA0 : 0x80, b == 0xED ? 0x9F : 0xBF);
            } else if (b >= 0xF0 && b <= 0xF4) {
                begin(3, b & 0x07, b == 0xF0 ? 0x90 : 0x80, b == 0xF4 ? 0x8F : 0xBF);
            } else {
                out.append(REPLACEMENT); // a stray continuation byte, C0, C1 or F5..FF
            }
        }
    }

    /** Whether bytes of an unfinished character are held back. */
    boolean hasPending() {
        return missing > 0;
    }

    /** Ends the input: an unfinished character becomes U+FFFD. */
    void finish(StringBuilder out) {
        if (missing > 0) {
            out.append(REPLACEMENT);
            missing = 0;
        }
    }

    private void begin(int continuationBytes, int bits, int low, int high) {
        missing = continuationBytes;
        codePoint = bits;
        lowest = low;
        highest = high;
    }
}
