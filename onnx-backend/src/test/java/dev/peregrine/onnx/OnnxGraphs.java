package dev.peregrine.onnx;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Writes tiny ONNX models (protobuf, by hand) for tests: graphs that are not encoders, and a toy
 * encoder whose output is predictable. Field numbers are those of onnx.proto.
 */
final class OnnxGraphs {
    static final int FLOAT = 1;
    static final int INT32 = 6;
    static final int INT64 = 7;

    private OnnxGraphs() {
    }

    /** A graph input or output: name, element type and dimensions (a number, or a name for a dynamic axis). */
    record Value(String name, int elemType, Object... dims) {
    }

    /** One operator: type, inputs, outputs and encoded attributes. */
    record Node(String opType, List<String> inputs, List<String> outputs, byte[]... attributes) {
    }

    static Path write(Path file, int opset, List<Node> nodes, List<Value> inputs, List<Value> outputs) throws IOException {
        Proto graph = new Proto();
        for (Node n : nodes) {
            Proto node = new Proto();
            n.inputs().forEach(i -> node.string(1, i));
            n.outputs().forEach(o -> node.string(2, o));
            node.string(4, n.opType());
            for (byte[] a : n.attributes()) {
                node.bytes(5, a);
            }
            graph.bytes(1, node.toBytes());
        }
        graph.string(2, "test");
        inputs.forEach(v -> graph.bytes(11, valueInfo(v)));
        outputs.forEach(v -> graph.bytes(12, valueInfo(v)));
        Proto opsetId = new Proto().string(1, "").varint(2, opset);
        Proto model = new Proto().varint(1, 7).bytes(7, graph.toBytes()).bytes(8, opsetId.toBytes());
        return Files.write(file, model.toBytes());
    }

    /** An INT attribute. */
    static byte[] intAttribute(String name, long value) {
        return new Proto().string(1, name).varint(3, value).varint(20, 2).toBytes();
    }

    /** An INTS attribute. */
    static byte[] intsAttribute(String name, long... values) {
        Proto p = new Proto().string(1, name);
        for (long v : values) {
            p.varint(8, v);
        }
        return p.varint(20, 7).toBytes();
    }

    private static byte[] valueInfo(Value v) {
        Proto shape = new Proto();
        for (Object d : v.dims()) {
            Proto dim = d instanceof String s ? new Proto().string(2, s) : new Proto().varint(1, ((Number) d).longValue());
            shape.bytes(1, dim.toBytes());
        }
        Proto tensor = new Proto().varint(1, v.elemType()).bytes(2, shape.toBytes());
        Proto type = new Proto().bytes(1, tensor.toBytes());
        return new Proto().string(1, v.name()).bytes(2, type.toBytes()).toBytes();
    }

    /** A protobuf message being written: varint and length-delimited fields. */
    private static final class Proto {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        Proto varint(int field, long value) {
            raw((long) field << 3);
            raw(value);
            return this;
        }

        Proto bytes(int field, byte[] value) {
            raw((long) field << 3 | 2);
            raw(value.length);
            out.writeBytes(value);
            return this;
        }

        Proto string(int field, String value) {
            return bytes(field, value.getBytes(StandardCharsets.UTF_8));
        }

        private void raw(long v) {
            while ((v & ~0x7FL) != 0) {
                out.write((int) (v & 0x7F) | 0x80);
                v >>>= 7;
            }
            out.write((int) v);
        }

        byte[] toBytes() {
            return out.toByteArray();
        }
    }
}
