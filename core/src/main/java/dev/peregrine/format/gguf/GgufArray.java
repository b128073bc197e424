package dev.peregrine.format.gguf;

import dev.peregrine.ModelFormatException;
import java.nio.file.Path;

/**
 * A GGUF metadata array. {@code values} is a primitive array matching the element type:
 * {@code long[]} for every integer type, {@code float[]} for FLOAT32, {@code double[]} for
 * FLOAT64, {@code boolean[]} for BOOL, {@code String[]} for STRING and {@code GgufArray[]} for
 * nested arrays.
 */
public record GgufArray(GgufValueType elementType, Object values) {

    public int length() {
        return switch (values) {
            case long[] a -> a.length;
            case float[] a -> a.length;
            case double[] a -> a.length;
            case boolean[] a -> a.length;
            case String[] a -> a.length;
            case GgufArray[] a -> a.length;
            default -> throw new IllegalStateException("unexpected array storage " + values.getClass());
        };
    }

    public String[] asStrings(Path file, String key) {
        if (values instanceof String[] s) {
            return s;
        }
        throw wrong(file, key, "an array of strings");
    }

    public float[] asFloats(Path file, String key) {
        return switch (values) {
            case float[] f -> f;
            case double[] d -> {
                float[] f = new float[d.length];
                for (int i = 0; i < d.length; i++) {
                    f[i] = (float) d[i];
                }
                yield f;
            }
            default -> throw wrong(file, key, "an array of floats");
        };
    }

    public int[] asInts(Path file, String key) {
        if (values instanceof long[] l) {
            int[] r = new int[l.length];
            for (int i = 0; i < l.length; i++) {
                if (l[i] < Integer.MIN_VALUE || l[i] > Integer.MAX_VALUE) {
                    throw new ModelFormatException(file, -1, "metadata '" + key + "'[" + i + "] = " + l[i] + " does not fit in an int");
                }
                r[i] = (int) l[i];
            }
            return r;
        }
        throw wrong(file, key, "an array of integers");
    }

    private ModelFormatException wrong(Path file, String key, String expected) {
        return new ModelFormatException(file, -1, "metadata '" + key + "' should be " + expected + " but holds " + elementType);
    }
}
