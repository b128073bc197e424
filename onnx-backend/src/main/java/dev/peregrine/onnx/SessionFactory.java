package dev.peregrine.onnx;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtProvider;
import ai.onnxruntime.OrtSession;
import dev.peregrine.ModelFormatException;
import dev.peregrine.PeregrineException;
import dev.peregrine.spi.EncoderConfig;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Creates the ONNX Runtime session of a model on the device the configuration asks for. CUDA is
 * used when the ONNX Runtime on the class path has its provider (the onnxruntime_gpu artifact) and
 * it starts here; with "auto" a failure falls back to the CPU with one log line.
 */
final class SessionFactory {
    private static final Logger LOG = LoggerFactory.getLogger(SessionFactory.class);

    /** A session and the options it was made with (closed together), and where it runs. */
    record Opened(OrtSession session, OrtSession.SessionOptions options, String device) {
        void close() {
            try {
                session.close();
            } catch (OrtException e) {
                LOG.warn("closing the ONNX Runtime session failed: {}", e.getMessage());
            } finally {
                options.close();
            }
        }
    }

    private SessionFactory() {
    }

    static Opened open(OrtEnvironment env, Path file, EncoderConfig config) {
        if (!config.device().equals("cpu")) {
            String why = cudaUnavailableReason();
            if (why == null) {
                try {
                    return create(env, file, config, true);
                } catch (OrtException e) {
                    why = "its CUDA provider did not start: " + e.getMessage();
                }
            }
            if (config.device().equals("cuda")) {
                throw new PeregrineException("the CUDA device was asked for " + file.getFileName()
                        + ", but ONNX Runtime cannot use it: " + why);
            }
            if (OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA)) {
                LOG.info("ONNX Runtime: running {} on the CPU because {}", file.getFileName(), why);
            }
        }
        try {
            return create(env, file, config, false);
        } catch (OrtException e) {
            // ONNX Runtime reports unreadable, truncated and invalid files all this way.
            throw new ModelFormatException(file, -1, "ONNX Runtime cannot load it: " + e.getMessage());
        }
    }

    /** Why the CUDA provider cannot be used, or null when it may be. */
    private static String cudaUnavailableReason() {
        if (!OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA)) {
            return "the ONNX Runtime on the class path has no CUDA provider (use com.microsoft.onnxruntime:onnxruntime_gpu)";
        }
        return null;
    }

    private static Opened create(OrtEnvironment env, Path file, EncoderConfig config, boolean cuda) throws OrtException {
        OrtSession.SessionOptions options = new OrtSession.SessionOptions();
        try {
            options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
            if (config.threads() > 0) {
                options.setIntraOpNumThreads(config.threads());
            }
            // Operators run in order, each spread over the intra-op threads.
            options.setInterOpNumThreads(1);
            // No spin-waiting between operators: a library shares its cores with the host application.
            // On a busy 2-core machine, 2 spinning threads ran MiniLM at 50 sentences/s, 2 waiting ones at 128.
            options.addConfigEntry("session.intra_op.allow_spinning", "0");
            // A failed run reaches the caller as an exception with ONNX Runtime's message; without
            // this the runtime also printed it to stderr, which a library must not do.
            options.setSessionLogLevel(ai.onnxruntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL);
            if (cuda) {
                options.addCUDA(config.deviceIndex());
            }
            OrtSession session = env.createSession(file.toString(), options);
            return new Opened(session, options, cuda ? "CUDA" : "CPU");
        } catch (OrtException | RuntimeException e) {
            options.close();
            throw e;
        }
    }
}
