package dev.peregrine.onnx;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.peregrine.ModelFormatException;
import dev.peregrine.PeregrineException;
import dev.peregrine.spi.Encoder;
import dev.peregrine.spi.EncoderBatch;
import dev.peregrine.spi.EncoderConfig;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.locks.ReadWriteLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An encoder run by ONNX Runtime. One session per model; inputs are bound by name and written into
 * off-heap buffers that ONNX Runtime reads in place, and the hidden states are written straight
 * into a reused output buffer (a pinned output). Threads run concurrently (a session is
 * thread-safe), each run borrowing a set of buffers from a pool that keeps one set per concurrent
 * run; small models on a few cores gain more from that than from one run's intra-op threads.
 */
final class OnnxEncoder implements Encoder {
    private static final Logger LOG = LoggerFactory.getLogger(OnnxEncoder.class);

    private final Path file;
    private final OrtEnvironment env;
    private final SessionFactory.Opened opened;
    private final EncoderGraph graph;
    private final int hiddenSize;
    private final int idBytes;
    /** Buffer sets not in use; as many exist as runs ever went on at once. */
    private final ConcurrentLinkedQueue<IoBuffers> idle = new ConcurrentLinkedQueue<>();
    /** Runs hold it shared; {@link #close} holds it exclusively, so it waits for them. */
    private final ReadWriteLock lifecycle = new ReentrantReadWriteLock();
    /** Whether a text's result depends on the rest of its batch (see {@link #maxBatchSize()}). */
    private final boolean batchDependent;
    private boolean closed;

    private OnnxEncoder(Path file, OrtEnvironment env, SessionFactory.Opened opened, EncoderGraph graph, int hiddenSize,
                        boolean batchDependent) {
        this.file = file;
        this.env = env;
        this.opened = opened;
        this.graph = graph;
        this.hiddenSize = hiddenSize;
        this.batchDependent = batchDependent;
        this.idBytes = graph.idType() == OnnxJavaType.INT64 ? Long.BYTES : Integer.BYTES;
    }

    /**
     * @throws ModelFormatException if the file is missing, is not a valid ONNX model, or is not an encoder
     */
    static OnnxEncoder open(Path file, EncoderConfig config) {
        if (!Files.isRegularFile(file)) {
            throw new ModelFormatException(file, -1, "no such file");
        }
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        SessionFactory.Opened opened = SessionFactory.open(env, file, config);
        try {
            EncoderGraph graph = EncoderGraph.inspect(file, opened.session());
            int hidden = graph.hiddenSize() > 0 ? graph.hiddenSize() : probeHiddenSize(env, opened.session(), graph);
            // DynamicQuantizeLinear picks one int8 scale for its whole input tensor: in a batch, for all
            // texts and their padding together, so each text would get a vector that depends on the others.
            boolean batchDependent = GraphOps.of(file).contains("DynamicQuantizeLinear");
            if (batchDependent) {
                LOG.debug("{} quantises its activations per batch (DynamicQuantizeLinear): texts run one at a time, "
                        + "so that each text's vector does not depend on the others", file.getFileName());
            }
            OnnxEncoder encoder = new OnnxEncoder(file, env, opened, graph, hidden, batchDependent);
            LOG.debug("opened {}", encoder.description());
            return encoder;
        } catch (OrtException e) {
            opened.close();
            throw new ModelFormatException(file, -1, "ONNX Runtime cannot run its graph: " + e.getMessage());
        } catch (RuntimeException e) {
            opened.close();
            throw e;
        }
    }

    /** The graph leaves the hidden size dynamic: one run of one short sequence tells it. */
    private static int probeHiddenSize(OrtEnvironment env, OrtSession session, EncoderGraph graph) throws OrtException {
        int length = Math.max(graph.fixedLength(), 1);
        long[] shape = {1, length};
        Map<String, OnnxTensor> in = new HashMap<>();
        try {
            in.put(EncoderGraph.INPUT_IDS, filled(env, graph, 0, length, shape));
            in.put(EncoderGraph.ATTENTION_MASK, filled(env, graph, 1, length, shape));
            if (graph.typeIds()) {
                in.put(EncoderGraph.TOKEN_TYPE_IDS, filled(env, graph, 0, length, shape));
            }
            try (OrtSession.Result r = session.run(in, Set.of(graph.output()))) {
                return Math.toIntExact(((OnnxTensor) r.get(0)).getInfo().getShape()[2]);
            }
        } finally {
            in.values().forEach(OnnxTensor::close);
        }
    }

    private static OnnxTensor filled(OrtEnvironment env, EncoderGraph graph, int value, int n, long[] shape) throws OrtException {
        int[] values = new int[n];
        Arrays.fill(values, value);
        return graph.idType() == OnnxJavaType.INT64
                ? OnnxTensor.createTensor(env, LongBuffer.wrap(Arrays.stream(values).asLongStream().toArray()), shape)
                : OnnxTensor.createTensor(env, IntBuffer.wrap(values), shape);
    }

    @Override
    public int hiddenSize() {
        return hiddenSize;
    }

    @Override
    public int fixedLength() {
        return graph.fixedLength();
    }

    @Override
    public int maxBatchSize() {
        return batchDependent || graph.fixedBatch() == 1 ? 1 : 0;
    }

    @Override
    public boolean usesTokenTypeIds() {
        return graph.typeIds();
    }

    @Override
    public String description() {
        return "ONNX Runtime " + env.getVersion() + " on " + opened.device() + (graph.typeIds() ? ", with token_type_ids" : "")
                + (batchDependent ? ", one text per run (activations quantised per batch)" : "");
    }

    @Override
    public void run(EncoderBatch batch, Consumer<FloatBuffer> output) {
        lifecycle.readLock().lock();
        try {
            if (closed) {
                throw new IllegalStateException("the encoder is closed");
            }
            IoBuffers buffers = idle.poll();
            if (buffers == null) {
                buffers = new IoBuffers(idBytes);
            }
            try {
                run(batch, buffers, output);
            } finally {
                idle.add(buffers);
            }
        } finally {
            lifecycle.readLock().unlock();
        }
    }

    private void run(EncoderBatch batch, IoBuffers buffers, Consumer<FloatBuffer> output) {
        int n = batch.size() * batch.length();
        long outputFloats = (long) n * hiddenSize;
        buffers.ensure(n, outputFloats);
        FloatBuffer out = buffers.output(Math.toIntExact(outputFloats));
        try (Tensors in = tensorsFor(batch, buffers);
             OnnxTensor pinned = OnnxTensor.createTensor(env, out, new long[] {batch.size(), batch.length(), hiddenSize})) {
            // A pinned output: ONNX Runtime writes the hidden states into our buffer; the result holds nothing else.
            opened.session().run(inputs(in), Set.of(), Map.of(graph.output(), pinned)).close();
            output.accept(out.asReadOnlyBuffer().position(0));
        } catch (OrtException e) {
            throw new PeregrineException("ONNX Runtime failed on a batch of " + batch.size() + " x " + batch.length()
                    + " tokens of " + file.getFileName() + ": " + e.getMessage(), e);
        }
    }

    /** The input tensors of one run, over its buffers. */
    private record Tensors(OnnxTensor ids, OnnxTensor mask, OnnxTensor types) implements AutoCloseable {
        @Override
        public void close() {
            ids.close();
            mask.close();
            if (types != null) {
                types.close();
            }
        }
    }

    private Tensors tensorsFor(EncoderBatch batch, IoBuffers buffers) throws OrtException {
        int n = batch.size() * batch.length();
        long[] shape = {batch.size(), batch.length()};
        OnnxTensor ids = null;
        OnnxTensor mask = null;
        try {
            ids = tensor(buffers, IoBuffers.Which.IDS, batch.inputIds(), n, shape);
            mask = tensor(buffers, IoBuffers.Which.MASK, batch.attentionMask(), n, shape);
            OnnxTensor types = graph.typeIds() ? tensor(buffers, IoBuffers.Which.TYPES, batch.tokenTypeIds(), n, shape) : null;
            return new Tensors(ids, mask, types);
        } catch (OrtException | RuntimeException e) {
            if (ids != null) {
                ids.close();
            }
            if (mask != null) {
                mask.close();
            }
            throw e;
        }
    }

    /** Copies int values into a buffer, widened to int64 when the graph wants it, and wraps it. */
    private OnnxTensor tensor(IoBuffers buffers, IoBuffers.Which which, int[] values, int n, long[] shape) throws OrtException {
        if (graph.idType() == OnnxJavaType.INT64) {
            LongBuffer b = buffers.longs(which, n);
            for (int i = 0; i < n; i++) {
                b.put(i, values[i]);
            }
            return OnnxTensor.createTensor(env, b, shape);
        }
        IntBuffer b = buffers.ints(which, n);
        b.put(0, values, 0, n);
        return OnnxTensor.createTensor(env, b, shape);
    }

    private static Map<String, OnnxTensor> inputs(Tensors t) {
        Map<String, OnnxTensor> m = new HashMap<>();
        m.put(EncoderGraph.INPUT_IDS, t.ids());
        m.put(EncoderGraph.ATTENTION_MASK, t.mask());
        if (t.types() != null) {
            m.put(EncoderGraph.TOKEN_TYPE_IDS, t.types());
        }
        return m;
    }

    @Override
    public void close() {
        lifecycle.writeLock().lock();
        try {
            if (closed) {
                return;
            }
            closed = true;
            opened.close();
            idle.forEach(IoBuffers::close);
            idle.clear();
        } finally {
            lifecycle.writeLock().unlock();
        }
    }
}
