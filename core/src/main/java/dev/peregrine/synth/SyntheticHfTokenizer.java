package dev.peregrine.synth;

import static java.nio.charset.StandardCharsets.UTF_8;

import dev.peregrine.format.hf.JsonText;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The Hugging Face tokenizer files of a {@link SyntheticVocabulary}: {@code tokenizer.json} and
 * {@code tokenizer_config.json}, as transformers' {@code LlamaConverter} writes them for a Llama
 * SentencePiece model, so that a synthetic Hugging Face directory loads and encodes as the GGUF
 * file of the same vocabulary does (Peregrine's {@code HfTokenizer} gives the ids of its
 * {@code SentencePieceTokenizer}).
 *
 * <ul>
 *   <li>the model is BPE with byte fallback and {@code <unk>}; its merges are every split of a piece
 *       into two pieces, ranked by the merged piece's score (the vocabulary's scores fall with the
 *       id, so by id), the splits of one piece by left then right id;
 *   <li>normalizer: "▁" prepended, spaces replaced by "▁" (SentencePiece's dummy prefix); no
 *       pre-tokenizer;
 *   <li>{@code <unk>}, {@code <s>} and {@code </s>} are special added tokens; the post-processor
 *       puts {@code <s>} in front of a sequence;
 *   <li>decoder: "▁" back to a space, byte fallback, fuse, one leading space stripped;
 *   <li>tokenizer_config.json: BOS {@code <s>}, EOS {@code </s>}, add BOS, no EOS, LlamaTokenizer.
 * </ul>
 * No chat template is written (the synthetic GGUF file has none either).
 */
public final class SyntheticHfTokenizer {
    public static final String TOKENIZER_JSON = "tokenizer.json";
    public static final String TOKENIZER_CONFIG_JSON = "tokenizer_config.json";

    private SyntheticHfTokenizer() {
    }

    /**
     * Checks that a vocabulary of {@code size} tokens can be written, before anything is.
     *
     * @throws IllegalArgumentException if {@code size} is too small for a synthetic vocabulary
     */
    public static void checkSize(int size) {
        SyntheticVocabulary.of(size);
    }

    /**
     * Writes tokenizer.json and tokenizer_config.json for the synthetic vocabulary of {@code size}
     * tokens into {@code dir} (which must exist), replacing files of those names.
     *
     * @return the two files written
     * @throws IllegalArgumentException if {@code size} is too small for a synthetic vocabulary
     * @throws UncheckedIOException     if a file cannot be written
     */
    public static List<Path> write(Path dir, int size) {
        SyntheticVocabulary vocabulary = SyntheticVocabulary.of(size);
        Path tokenizer = dir.resolve(TOKENIZER_JSON);
        Path config = dir.resolve(TOKENIZER_CONFIG_JSON);
        try {
            Files.writeString(tokenizer, tokenizerJson(vocabulary), UTF_8);
            Files.writeString(config, tokenizerConfigJson(vocabulary), UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the tokenizer files into " + dir + ": " + e.getMessage(), e);
        }
        return List.of(tokenizer, config);
    }

    /** tokenizer.json of the vocabulary. */
    static String tokenizerJson(SyntheticVocabulary v) {
        String[] tokens = v.tokens();
        String unk = tokens[SyntheticVocabulary.UNK_ID];
        String bos = tokens[SyntheticVocabulary.BOS_ID];
        StringBuilder j = new StringBuilder(tokens.length * 40);
        j.append("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [");
        int[] special = {SyntheticVocabulary.UNK_ID, SyntheticVocabulary.BOS_ID, SyntheticVocabulary.EOS_ID};
        for (int i = 0; i < special.length; i++) {
            j.append(i > 0 ? "," : "").append("\n    {\"id\": ").append(special[i]).append(", \"content\": ");
            JsonText.quote(j, tokens[special[i]]).append(", \"single_word\": false, \"lstrip\": false, \"rstrip\": false,"
                    + " \"normalized\": false, \"special\": true}");
        }
        j.append("\n  ],\n  \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": ["
                + "{\"type\": \"Prepend\", \"prepend\": \"\u2581\"}, "
                + "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\u2581\"}]},\n"
                + "  \"pre_tokenizer\": null,\n");
        j.append("  \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [");
        specialTemplate(j, bos, 0).append(", {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": [");
        specialTemplate(j, bos, 0).append(", {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, ");
        specialTemplate(j, bos, 1).append(", {\"Sequence\": {\"id\": \"B\", \"type_id\": 1}}], \"special_tokens\": {");
        JsonText.quote(j, bos).append(": {\"id\": ");
        JsonText.quote(j, bos).append(", \"ids\": [").append(SyntheticVocabulary.BOS_ID).append("], \"tokens\": [");
        JsonText.quote(j, bos).append("]}}},\n");
        j.append("  \"decoder\": {\"type\": \"Sequence\", \"decoders\": ["
                + "{\"type\": \"Replace\", \"pattern\": {\"String\": \"\u2581\"}, \"content\": \" \"}, "
                + "{\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, "
                + "{\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]},\n");
        j.append("  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": ");
        JsonText.quote(j, unk).append(",\n    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n"
                + "    \"fuse_unk\": true,\n    \"byte_fallback\": true,\n    \"ignore_merges\": false,\n    \"vocab\": {");
        for (int id = 0; id < tokens.length; id++) {
            j.append(id > 0 ? "," : "").append("\n      ");
            JsonText.quote(j, tokens[id]).append(": ").append(id);
        }
        j.append("\n    },\n    \"merges\": [");
        boolean first = true;
        for (int[] merge : merges(v)) {
            j.append(first ? "" : ",").append("\n      [");
            JsonText.quote(j, tokens[merge[0]]).append(", ");
            JsonText.quote(j, tokens[merge[1]]).append(']');
            first = false;
        }
        return j.append("\n    ]\n  }\n}\n").toString();
    }

    /** tokenizer_config.json of the vocabulary. */
    static String tokenizerConfigJson(SyntheticVocabulary v) {
        StringBuilder j = new StringBuilder("{\n  \"add_bos_token\": true,\n  \"add_eos_token\": false,\n  \"bos_token\": ");
        JsonText.quote(j, v.tokens()[SyntheticVocabulary.BOS_ID]).append(",\n  \"eos_token\": ");
        JsonText.quote(j, v.tokens()[SyntheticVocabulary.EOS_ID]).append(",\n  \"unk_token\": ");
        JsonText.quote(j, v.tokens()[SyntheticVocabulary.UNK_ID]).append(",\n  \"clean_up_tokenization_spaces\": false,\n"
                + "  \"tokenizer_class\": \"LlamaTokenizer\"\n}\n");
        return j.toString();
    }

    /**
     * Every split of an ordinary piece into two pieces, as pairs of ids: pieces in id (that is,
     * score) order, the splits of one piece by left id, then right id.
     */
    static List<int[]> merges(SyntheticVocabulary v) {
        String[] tokens = v.tokens();
        Map<String, Integer> ids = new HashMap<>(tokens.length * 2);
        for (int id = 0; id < tokens.length; id++) {
            ids.put(tokens[id], id);
        }
        List<int[]> merges = new ArrayList<>();
        List<int[]> local = new ArrayList<>();
        for (int id = SyntheticVocabulary.FIXED_TOKENS; id < tokens.length; id++) {
            String piece = tokens[id];
            local.clear();
            for (int k = piece.offsetByCodePoints(0, 1); k < piece.length(); k = piece.offsetByCodePoints(k, 1)) {
                Integer left = ids.get(piece.substring(0, k));
                Integer right = ids.get(piece.substring(k));
                if (left != null && right != null) {
                    local.add(new int[] {left, right});
                }
            }
            local.sort(Comparator.<int[]>comparingInt(m -> m[0]).thenComparingInt(m -> m[1]));
            merges.addAll(local);
        }
        return merges;
    }

    private static StringBuilder specialTemplate(StringBuilder j, String token, int typeId) {
        j.append("{\"SpecialToken\": {\"id\": ");
        return JsonText.quote(j, token).append(", \"type_id\": ").append(typeId).append("}}");
    }
}
