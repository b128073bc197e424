package dev.peregrine.onnx;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import dev.peregrine.ModelFormatException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

/**
 * What an ONNX graph must look like to be run as an encoder, checked once at load: int
 * {@code [batch, sequence]} inputs named input_ids and attention_mask (token_type_ids optional, no
 * others), and a float {@code [batch, sequence, hidden]} output (last_hidden_state, or the first
 * 3-D float output).
 *
 * @param idType     INT64 or INT32: the element type of the id inputs
 * @param typeIds    whether the graph takes token_type_ids
 * @param output     name of the hidden-state output
 * @param hiddenSize width of a hidden state, or -1 when the graph leaves it dynamic
 * @param fixedLength the sequence length the inputs are fixed to, or 0 when dynamic
 * @param fixedBatch  1 when the inputs are fixed to one sequence, 0 when the batch is dynamic
 */
record EncoderGraph(OnnxJavaType idType, boolean typeIds, String output, int hiddenSize, int fixedLength, int fixedBatch) {
    static final String INPUT_IDS = "input_ids";
    static final String ATTENTION_MASK = "attention_mask";
    static final String TOKEN_TYPE_IDS = "token_type_ids";

    static EncoderGraph inspect(Path file, OrtSession session) throws OrtException {
        Map<String, NodeInfo> inputs = session.getInputInfo();
        Map<String, NodeInfo> outputs = session.getOutputInfo();
        for (String name : inputs.keySet()) {
            if (!name.equals(INPUT_IDS) && !name.equals(ATTENTION_MASK) && !name.equals(TOKEN_TYPE_IDS)) {
                throw notEncoder(file, "it takes an input '" + name + "' (an encoder takes " + INPUT_IDS + ", "
                        + ATTENTION_MASK + " and optionally " + TOKEN_TYPE_IDS + "; inputs: " + inputs.keySet() + ")");
            }
        }
        TensorInfo ids = idInput(file, inputs, INPUT_IDS);
        TensorInfo mask = idInput(file, inputs, ATTENTION_MASK);
        TensorInfo types = inputs.containsKey(TOKEN_TYPE_IDS) ? idInput(file, inputs, TOKEN_TYPE_IDS) : null;
        if (mask.type != ids.type || (types != null && types.type != ids.type)) {
            throw notEncoder(file, "its id inputs have different element types");
        }
        String output = hiddenStateOutput(file, outputs);
        long[] shape = ((TensorInfo) outputs.get(output).getInfo()).getShape();
        int hidden = shape[2] > 0 ? Math.toIntExact(shape[2]) : -1;
        long batch = ids.getShape()[0];
        if (batch > 1) {
            throw new ModelFormatException(file, -1, "its inputs are fixed to batches of " + batch
                    + " sequences; only a dynamic batch size or a batch of 1 is supported");
        }
        int fixedLength = ids.getShape()[1] > 0 ? Math.toIntExact(ids.getShape()[1]) : 0;
        return new EncoderGraph(ids.type, types != null, output, hidden, fixedLength, batch == 1 ? 1 : 0);
    }

    private static TensorInfo idInput(Path file, Map<String, NodeInfo> inputs, String name) {
        NodeInfo node = inputs.get(name);
        if (node == null) {
            throw notEncoder(file, "it has no '" + name + "' input (inputs: " + inputs.keySet() + ")");
        }
        if (!(node.getInfo() instanceof TensorInfo t) || t.getShape().length != 2
                || (t.type != OnnxJavaType.INT64 && t.type != OnnxJavaType.INT32)) {
            throw notEncoder(file, "input '" + name + "' is " + node.getInfo() + ", not an int64 or int32 [batch, sequence] tensor");
        }
        return t;
    }

    /** last_hidden_state when the graph has it, else the first 3-D float output. */
    private static String hiddenStateOutput(Path file, Map<String, NodeInfo> outputs) {
        NodeInfo named = outputs.get("last_hidden_state");
        if (named != null) {
            if (!isHiddenState(named)) {
                throw notEncoder(file, "its output 'last_hidden_state' is " + named.getInfo() + ", not a float [batch, sequence, hidden] tensor");
            }
            return named.getName();
        }
        return outputs.values().stream().filter(EncoderGraph::isHiddenState).map(NodeInfo::getName).findFirst()
                .orElseThrow(() -> notEncoder(file, "it has no float [batch, sequence, hidden] output (outputs: "
                        + Arrays.toString(outputs.values().stream().map(n -> n.getName() + " " + n.getInfo()).toArray()) + ")"));
    }

    private static boolean isHiddenState(NodeInfo node) {
        return node.getInfo() instanceof TensorInfo t && t.type == OnnxJavaType.FLOAT && t.getShape().length == 3;
    }

    private static ModelFormatException notEncoder(Path file, String why) {
        return new ModelFormatException(file, -1, "not an encoder model: " + why);
    }
}
