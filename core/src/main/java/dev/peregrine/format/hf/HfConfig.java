package dev.peregrine.format.hf;

import dev.peregrine.ModelFormatException;
import dev.peregrine.format.json.Json;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A JSON object of a Hugging Face model directory ({@code config.json}, or an object inside it
 * such as {@code rope_scaling}) with typed getters, as {@code GgufMetadata} is for GGUF: a missing
 * or mistyped key is a {@link ModelFormatException} naming the key and the file. A key whose value
 * is JSON null counts as absent, as transformers reads it.
 */
public final class HfConfig {
    private final Path file;
    private final String prefix;
    private final Map<?, ?> values;

    private HfConfig(Path file, String prefix, Map<?, ?> values) {
        this.file = file;
        this.prefix = prefix;
        this.values = values;
    }

    /**
     * Reads a JSON file that holds one object.
     *
     * @throws ModelFormatException if the file is missing, not JSON, or not an object
     */
    public static HfConfig read(Path file) {
        if (!(Json.read(file) instanceof Map<?, ?> m)) {
            throw new ModelFormatException(file, -1, "is not a JSON object");
        }
        return new HfConfig(file, "", m);
    }

    public Path file() {
        return file;
    }

    /** Whether the key is there with a value other than null. */
    public boolean has(String key) {
        return values.get(key) != null;
    }

    /**
     * Whether the file states the key at all, null included: where transformers' default differs
     * from None (Gemma 2's soft-caps), an explicit null is not the same as an absent key.
     */
    public boolean states(String key) {
        return values.containsKey(key);
    }

    public Optional<Integer> optInt(String key) {
        Object v = values.get(key);
        if (v == null) {
            return Optional.empty();
        }
        if (!(v instanceof Long x) || x < Integer.MIN_VALUE || x > Integer.MAX_VALUE) {
            throw wrong(key, "an integer", v);
        }
        return Optional.of((int) (long) x);
    }

    public int getInt(String key) {
        return optInt(key).orElseThrow(() -> missing(key));
    }

    /** A number, integer or not ("rope_theta": 500000 and 500000.0 are both found in real files). */
    public Optional<Double> optDouble(String key) {
        Object v = values.get(key);
        if (v == null) {
            return Optional.empty();
        }
        if (!(v instanceof Number x)) {
            throw wrong(key, "a number", v);
        }
        return Optional.of(x.doubleValue());
    }

    public double getDouble(String key) {
        return optDouble(key).orElseThrow(() -> missing(key));
    }

    public Optional<Boolean> optBoolean(String key) {
        Object v = values.get(key);
        if (v == null) {
            return Optional.empty();
        }
        if (!(v instanceof Boolean b)) {
            throw wrong(key, "true or false", v);
        }
        return Optional.of(b);
    }

    public Optional<String> optString(String key) {
        Object v = values.get(key);
        if (v == null) {
            return Optional.empty();
        }
        if (!(v instanceof String s)) {
            throw wrong(key, "a string", v);
        }
        return Optional.of(s);
    }

    public String getString(String key) {
        return optString(key).orElseThrow(() -> missing(key));
    }

    /** A list of strings, or one string as a list of one. */
    public List<String> getStrings(String key) {
        Object v = values.get(key);
        if (v == null) {
            throw missing(key);
        }
        if (v instanceof String s) {
            return List.of(s);
        }
        List<String> out = new ArrayList<>();
        if (v instanceof List<?> list) {
            for (Object o : list) {
                if (!(o instanceof String s)) {
                    throw wrong(key, "a list of strings", v);
                }
                out.add(s);
            }
            return out;
        }
        throw wrong(key, "a list of strings", v);
    }

    /** A list of integers, or one integer as a list of one (eos_token_id is either). */
    public List<Integer> optInts(String key) {
        Object v = values.get(key);
        if (v == null) {
            return List.of();
        }
        List<Integer> out = new ArrayList<>();
        for (Object o : v instanceof List<?> list ? list : List.of(v)) {
            if (!(o instanceof Long x) || x < 0 || x > Integer.MAX_VALUE) {
                throw wrong(key, "a token id or a list of token ids", v);
            }
            out.add((int) (long) x);
        }
        return out;
    }

    /** A nested object, named in errors as "outer.inner". */
    public Optional<HfConfig> optObject(String key) {
        Object v = values.get(key);
        if (v == null) {
            return Optional.empty();
        }
        if (!(v instanceof Map<?, ?> m)) {
            throw wrong(key, "an object", v);
        }
        return Optional.of(new HfConfig(file, prefix + key + ".", m));
    }

    /** An error about this object's key, naming the file and the key. */
    public ModelFormatException error(String key, String reason) {
        return new ModelFormatException(file, -1, "\"" + prefix + key + "\" " + reason);
    }

    private ModelFormatException missing(String key) {
        return error(key, "is missing");
    }

    private ModelFormatException wrong(String key, String expected, Object got) {
        return error(key, "must be " + expected + ", got " + (got instanceof String s ? "\"" + s + "\"" : got));
    }
}
