package dev.peregrine.onnx;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashSet;
import java.util.Set;

/**
 * The operator types of an ONNX model's main graph, read straight from its protobuf (ModelProto
 * field 7 graph, GraphProto field 1 node, NodeProto field 4 op_type); weights and everything else
 * are skipped by length, so this reads a few kilobytes of a large file. ONNX Runtime's Java API
 * does not list a session's operators, and one of them changes how the model may be batched.
 */
final class GraphOps {
    private GraphOps() {
    }

    /**
     * The operator types, or an empty set when the file cannot be walked (ONNX Runtime has already
     * accepted it, so this only loses information, never fails a load).
     */
    static Set<String> of(Path file) {
        try (Arena arena = Arena.ofConfined(); FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            MemorySegment m = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
            Set<String> ops = new HashSet<>();
            new Reader(m, 0, m.byteSize()).fields((field, r) -> {
                if (field == 7) {
                    r.fields((f2, node) -> {
                        if (f2 == 1) {
                            node.fields((f3, v) -> {
                                if (f3 == 4) {
                                    ops.add(v.string());
                                }
                            });
                        }
                    });
                }
            });
            return ops;
        } catch (IOException | RuntimeException e) {
            return Set.of();
        }
    }

    /** Receives each length-delimited field of a message. */
    private interface FieldVisitor {
        void field(int number, Reader value);
    }

    /** A bounded view of protobuf bytes. */
    private record Reader(MemorySegment m, long start, long end) {
        void fields(FieldVisitor visitor) {
            long[] pos = {start};
            while (pos[0] < end) {
                long key = varint(pos);
                int wire = (int) (key & 7);
                int number = (int) (key >>> 3);
                switch (wire) {
                    case 0 -> varint(pos);
                    case 1 -> pos[0] += 8;
                    case 5 -> pos[0] += 4;
                    case 2 -> {
                        long length = varint(pos);
                        if (length < 0 || length > end - pos[0]) {
                            throw new IllegalStateException("field runs past its message");
                        }
                        visitor.field(number, new Reader(m, pos[0], pos[0] + length));
                        pos[0] += length;
                    }
                    default -> throw new IllegalStateException("wire type " + wire);
                }
            }
        }

        String string() {
            return new String(m.asSlice(start, end - start).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
        }

        private long varint(long[] pos) {
            long v = 0;
            for (int shift = 0; shift < 64; shift += 7) {
                if (pos[0] >= end) {
                    throw new IllegalStateException("varint runs past its message");
                }
                byte b = m.get(ValueLayout.JAVA_BYTE, pos[0]++);
                v |= (long) (b & 0x7F) << shift;
                if (b >= 0) {
                    return v;
                }
            }
            throw new IllegalStateException("varint too long");
        }
    }
}
