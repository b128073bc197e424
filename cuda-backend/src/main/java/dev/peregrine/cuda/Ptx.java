package dev.peregrine.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The PTX shipped as resources (built from native/*.cu by native/build-ptx.sh): reading it, the
 * source hash recorded on its first line, and the parameter lists of its entry points.
 */
final class Ptx {
    /** Architectures PTX is shipped for; a device uses the newest one not above its own. */
    static final int[] ARCHITECTURES = {80, 90};
    static final String HASH_PREFIX = "// peregrine-source-sha256 ";

    private static final Pattern ENTRY = Pattern.compile("\\.entry\\s+(\\w+)\\s*\\(([^)]*)\\)");
    private static final Pattern PARAM = Pattern.compile("\\.param\\s+\\.(\\w+)");

    private Ptx() {
    }

    /** Resource path of a module's PTX, relative to this package. */
    static String resource(String module, int architecture) {
        return "ptx/" + module + ".sm_" + architecture + ".ptx";
    }

    /** The PTX architecture for a device of compute capability {@code capability} (major * 10 + minor), or -1. */
    static int architectureFor(int capability) {
        int best = -1;
        for (int a : ARCHITECTURES) {
            if (a <= capability) {
                best = a;
            }
        }
        return best;
    }

    static String read(String module, int architecture) {
        String name = resource(module, architecture);
        try (InputStream in = Ptx.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new IllegalStateException("missing resource dev/peregrine/cuda/" + name + ": run native/build-ptx.sh");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + name, e);
        }
    }

    /** The source hash on the first line, or null when there is none. */
    static String sourceHash(String ptx) {
        int end = ptx.indexOf('\n');
        String first = end < 0 ? ptx : ptx.substring(0, end);
        return first.startsWith(HASH_PREFIX) ? first.substring(HASH_PREFIX.length()).strip() : null;
    }

    /** Entry point name to its parameters in {@link Kernel#ptxSignature()} form. */
    static Map<String, String> entries(String ptx) {
        Map<String, String> entries = new LinkedHashMap<>();
        Matcher entry = ENTRY.matcher(ptx);
        while (entry.find()) {
            StringBuilder signature = new StringBuilder();
            Matcher param = PARAM.matcher(entry.group(2));
            while (param.find()) {
                signature.append(switch (param.group(1)) {
                    case "u64", "s64", "b64" -> '8';
                    case "u32", "s32", "b32" -> '4';
                    case "f32" -> 'F';
                    default -> '?';
                });
            }
            entries.put(entry.group(1), signature.toString());
        }
        return entries;
    }
}
