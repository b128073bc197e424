package dev.peregrine.format.gguf;

import dev.peregrine.ModelFormatException;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/**
 * The key/value metadata of a GGUF file, in file order.
 *
 * <p>Values are held as: {@code Long} for every integer type (unsigned 64-bit values above
 * {@code Long.MAX_VALUE} wrap, as in Java's {@code long}), {@code Float} / {@code Double},
 * {@code Boolean}, {@code String}, and {@link GgufArray} for arrays.
 */
public final class GgufMetadata {
    private final Path file;
    private final Map<String, Object> values;
    private final Map<String, GgufValueType> types;

    GgufMetadata(Path file, LinkedHashMap<String, Object> values, LinkedHashMap<String, GgufValueType> types) {
        this.file = file;
        this.values = Collections.unmodifiableMap(values);
        this.types = Collections.unmodifiableMap(types);
    }

    /** Metadata made in memory (tests, writers); {@code file} is only used in error messages. */
    public static GgufMetadata of(Path file, Map<String, Object> values) {
        LinkedHashMap<String, GgufValueType> types = new LinkedHashMap<>();
        values.forEach((k, v) -> types.put(k, GgufValueType.of(v)));
        return new GgufMetadata(file, new LinkedHashMap<>(values), types);
    }

    public Map<String, Object> asMap() {
        return values;
    }

    public GgufValueType typeOf(String key) {
        return types.get(key);
    }

    public boolean contains(String key) {
        return values.containsKey(key);
    }

    public Optional<Object> get(String key) {
        return Optional.ofNullable(values.get(key));
    }

    public Optional<String> optString(String key) {
        return get(key).map(v -> cast(key, v, String.class));
    }

    public String getString(String key) {
        return cast(key, require(key), String.class);
    }

    public Optional<Long> optLong(String key) {
        return get(key).map(v -> cast(key, v, Long.class));
    }

    public long getLong(String key) {
        return cast(key, require(key), Long.class);
    }

    public Optional<Integer> optInt(String key) {
        return optLong(key).map(v -> toInt(key, v));
    }

    public int getInt(String key) {
        return toInt(key, getLong(key));
    }

    /** A float value; integer values are accepted too, since writers are not consistent. */
    public Optional<Float> optFloat(String key) {
        return get(key).map(v -> switch (v) {
            case Float f -> f;
            case Double d -> d.floatValue();
            case Long l -> (float) l;
            default -> throw wrongType(key, v, "a number");
        });
    }

    public float getFloat(String key) {
        return optFloat(key).orElseThrow(() -> missing(key));
    }

    public Optional<Boolean> optBoolean(String key) {
        return get(key).map(v -> cast(key, v, Boolean.class));
    }

    public Optional<GgufArray> optArray(String key) {
        return get(key).map(v -> cast(key, v, GgufArray.class));
    }

    public GgufArray getArray(String key) {
        return cast(key, require(key), GgufArray.class);
    }

    public Optional<String[]> optStringArray(String key) {
        return optArray(key).map(a -> a.asStrings(file, key));
    }

    public Optional<float[]> optFloatArray(String key) {
        return optArray(key).map(a -> a.asFloats(file, key));
    }

    public Optional<int[]> optIntArray(String key) {
        return optArray(key).map(a -> a.asInts(file, key));
    }

    private Object require(String key) {
        Object v = values.get(key);
        if (v == null) {
            throw missing(key);
        }
        return v;
    }

    private ModelFormatException missing(String key) {
        return new ModelFormatException(file, -1, "missing required metadata key '" + key + "'");
    }

    private <T> T cast(String key, Object v, Class<T> type) {
        if (!type.isInstance(v)) {
            throw wrongType(key, v, type.getSimpleName());
        }
        return type.cast(v);
    }

    private int toInt(String key, long v) {
        if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) {
            throw new ModelFormatException(file, -1, "metadata '" + key + "' = " + v + " does not fit in an int");
        }
        return (int) v;
    }

    private ModelFormatException wrongType(String key, Object v, String expected) {
        return new ModelFormatException(file, -1,
                "metadata '" + key + "' should be " + expected + " but is " + GgufValueType.of(v));
    }
}
