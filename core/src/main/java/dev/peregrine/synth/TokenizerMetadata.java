package dev.peregrine.synth;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufArray;
import dev.peregrine.format.gguf.GgufFile;
import dev.peregrine.format.gguf.GgufMetadata;
import dev.peregrine.format.gguf.GgufValueType;
import dev.peregrine.format.gguf.GgufWriter;
import dev.peregrine.model.Family;
import dev.peregrine.tokenizer.Tokenizers;
import dev.peregrine.tokenizer.Vocabulary;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The {@code tokenizer.*} metadata a synthetic GGUF model carries: a generated SentencePiece
 * vocabulary, or the tokenizer of a real GGUF file copied key by key with its value types.
 *
 * @param model      {@code tokenizer.ggml.model} ("llama" for SentencePiece, "gpt2" for byte-level BPE, ...)
 * @param tokenCount number of tokens; the model's vocabulary size
 * @param entries    the keys to write, in order, with their GGUF types
 */
public record TokenizerMetadata(String model, int tokenCount, List<Entry> entries) {

    /** One metadata entry, its value held as {@link GgufWriter#put} takes it. */
    public record Entry(String key, GgufValueType type, Object value) {
    }

    public TokenizerMetadata {
        entries = List.copyOf(entries);
    }

    /** A {@link SyntheticVocabulary} of {@code size} tokens, with the keys and types llama.cpp's converter writes. */
    public static TokenizerMetadata synthetic(int size) {
        return synthetic(SyntheticVocabulary.of(size));
    }

    /**
     * The synthetic vocabulary of {@code shape}'s size, with the special tokens that llama.cpp
     * requires of its family's files: a Phi-3 file (one named "phi3") must hold {@code <|endoftext|>},
     * which llama.cpp's vocabulary loader looks up by name; here it is the last token, a control token.
     */
    public static TokenizerMetadata synthetic(ModelShape shape) {
        SyntheticVocabulary v = SyntheticVocabulary.of(shape.vocab());
        if (shape.family() == Family.PHI3) {
            int last = shape.vocab() - 1;
            v.tokens()[last] = "<|endoftext|>";
            v.types()[last] = Vocabulary.CONTROL;
            v.scores()[last] = 0;
        }
        return synthetic(v);
    }

    private static TokenizerMetadata synthetic(SyntheticVocabulary v) {
        int size = v.size();
        long[] types = new long[size];
        for (int i = 0; i < size; i++) {
            types[i] = v.types()[i];
        }
        List<Entry> e = new ArrayList<>();
        e.add(new Entry(Tokenizers.KEY_MODEL, GgufValueType.STRING, "llama"));
        e.add(new Entry("tokenizer.ggml.pre", GgufValueType.STRING, "default"));
        e.add(new Entry(Vocabulary.KEY_TOKENS, GgufValueType.ARRAY, new GgufArray(GgufValueType.STRING, v.tokens())));
        e.add(new Entry(Vocabulary.KEY_SCORES, GgufValueType.ARRAY, new GgufArray(GgufValueType.FLOAT32, v.scores())));
        e.add(new Entry(Vocabulary.KEY_TOKEN_TYPES, GgufValueType.ARRAY, new GgufArray(GgufValueType.INT32, types)));
        e.add(new Entry(Vocabulary.KEY_BOS, GgufValueType.UINT32, (long) SyntheticVocabulary.BOS_ID));
        e.add(new Entry(Vocabulary.KEY_EOS, GgufValueType.UINT32, (long) SyntheticVocabulary.EOS_ID));
        e.add(new Entry(Vocabulary.KEY_UNK, GgufValueType.UINT32, (long) SyntheticVocabulary.UNK_ID));
        e.add(new Entry(Vocabulary.KEY_ADD_BOS, GgufValueType.BOOL, true));
        e.add(new Entry(Vocabulary.KEY_ADD_EOS, GgufValueType.BOOL, false));
        return new TokenizerMetadata("llama", size, e);
    }

    /**
     * Every {@code tokenizer.*} entry of a GGUF file (e.g. one of llama.cpp's vocab-only files).
     *
     * @throws ModelFormatException if the file is unreadable or has no {@code tokenizer.ggml.tokens}
     */
    public static TokenizerMetadata copiedFrom(Path gguf) {
        try (Arena arena = Arena.ofConfined()) {
            // The metadata is parsed into heap objects, so it outlives the mapping.
            GgufMetadata m = GgufFile.open(gguf, arena).metadata();
            String[] tokens = m.optStringArray(Vocabulary.KEY_TOKENS).orElseThrow(() -> new ModelFormatException(gguf, -1,
                    "has no '" + Vocabulary.KEY_TOKENS + "': not a tokenizer to copy"));
            List<Entry> e = new ArrayList<>();
            for (Map.Entry<String, Object> kv : m.asMap().entrySet()) {
                if (kv.getKey().startsWith("tokenizer.")) {
                    e.add(new Entry(kv.getKey(), m.typeOf(kv.getKey()), kv.getValue()));
                }
            }
            return new TokenizerMetadata(m.optString(Tokenizers.KEY_MODEL).orElse("(none)"), tokens.length, e);
        }
    }

    /** Why Peregrine's tokenizers cannot load this tokenizer, or empty when they can. */
    public Optional<String> loadProblem() {
        Map<String, Object> values = new LinkedHashMap<>();
        for (Entry e : entries) {
            values.put(e.key(), e.value());
        }
        try {
            Tokenizers.fromGguf(GgufMetadata.of(Path.of("tokenizer"), values));
            return Optional.empty();
        } catch (ModelFormatException e) {
            return Optional.of(e.getMessage());
        }
    }

    void writeTo(GgufWriter w) {
        for (Entry e : entries) {
            w.put(e.key(), e.type(), e.value());
        }
    }
}
