package dev.peregrine.format.hf;

import dev.peregrine.ModelFormatException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.IntStream;

/** What a Hugging Face model directory's {@code generation_config.json} and config.json say about generating. */
public final class HfGenerationConfig {
    public static final String FILE = "generation_config.json";

    private HfGenerationConfig() {
    }

    /**
     * The ids that end a generation by the model's own files: {@code eos_token_id} of config.json
     * and of generation_config.json (if there is one), each an id or a list of ids (Llama 3.1
     * Instruct lists &lt;|end_of_text|&gt;, &lt;|eom_id|&gt; and &lt;|eot_id|&gt;). transformers'
     * {@code generate} stops on generation_config.json's, which it takes from config.json when there
     * is no such file; both are taken here, each id once, in the order the files give them.
     *
     * @param config the directory's config.json
     * @throws ModelFormatException if generation_config.json is not a JSON object, or a value is
     *                              not an id or a list of ids; the message names the file and key
     */
    public static int[] endOfGenerationIds(HfConfig config, Path dir) {
        Path file = dir.resolve(FILE);
        IntStream ids = config.optInts("eos_token_id").stream().mapToInt(Integer::intValue);
        if (Files.isRegularFile(file)) {
            ids = IntStream.concat(ids, HfConfig.read(file).optInts("eos_token_id").stream().mapToInt(Integer::intValue));
        }
        return ids.distinct().toArray();
    }
}
