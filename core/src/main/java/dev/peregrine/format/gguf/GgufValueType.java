package dev.peregrine.format.gguf;

/** GGUF metadata value types, with the ids the format uses. */
public enum GgufValueType {
    UINT8(0, 1), INT8(1, 1), UINT16(2, 2), INT16(3, 2), UINT32(4, 4), INT32(5, 4), FLOAT32(6, 4),
    BOOL(7, 1), STRING(8, -1), ARRAY(9, -1), UINT64(10, 8), INT64(11, 8), FLOAT64(12, 8);

    final int id;
    /** Encoded size in bytes, or -1 for variable-size types. */
    final int size;

    GgufValueType(int id, int size) {
        this.id = id;
        this.size = size;
    }

    public int id() {
        return id;
    }

    static GgufValueType fromId(int id) {
        for (GgufValueType t : values()) {
            if (t.id == id) {
                return t;
            }
        }
        return null;
    }

    boolean isInteger() {
        return switch (this) {
            case UINT8, INT8, UINT16, INT16, UINT32, INT32, UINT64, INT64 -> true;
            default -> false;
        };
    }

    /** The type used to write a Java value (integers as INT64 unless stored in an array). */
    static GgufValueType of(Object v) {
        return switch (v) {
            case Long l -> INT64;
            case Integer i -> INT32;
            case Float f -> FLOAT32;
            case Double d -> FLOAT64;
            case Boolean b -> BOOL;
            case String s -> STRING;
            case GgufArray a -> ARRAY;
            default -> throw new IllegalArgumentException("not a GGUF value: " + v.getClass());
        };
    }
}
