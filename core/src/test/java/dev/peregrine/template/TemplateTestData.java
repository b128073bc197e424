package dev.peregrine.template;

import dev.peregrine.format.json.Json;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/** Reads the test data of this package (see src/test/resources/dev/peregrine/template/README.md). */
final class TemplateTestData {
    /** Starts the line that names each case; the newline before it belongs to the separator. */
    private static final String SEPARATOR = "~~~~ ";
    /** Expected outputs that start with this are jinja2's error for the case: "!error Type: message". */
    static final String ERROR = "!error ";

    private TemplateTestData() {
    }

    static Path resource(String name) {
        URL url = TemplateTestData.class.getResource(name);
        if (url == null) {
            throw new IllegalStateException("missing test resource " + name);
        }
        try {
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Named sections, exact to the character: "~~~~ name\n" + body + "\n" for each. */
    static Map<String, String> sections(String resourceName) {
        String text;
        try {
            text = Files.readString(resource(resourceName));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        if (!text.startsWith(SEPARATOR) || !text.endsWith("\n")) {
            throw new IllegalStateException(resourceName + " is not in the sections format");
        }
        Map<String, String> out = new LinkedHashMap<>();
        String rest = text.substring(SEPARATOR.length(), text.length() - 1);
        while (true) {
            int end = rest.indexOf("\n" + SEPARATOR);
            String chunk = end < 0 ? rest : rest.substring(0, end);
            int nl = chunk.indexOf('\n');
            out.put(chunk.substring(0, nl), chunk.substring(nl + 1));
            if (end < 0) {
                return out;
            }
            rest = rest.substring(end + 1 + SEPARATOR.length());
        }
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> json(Path file) {
        return (Map<String, Object>) Json.read(file);
    }

    /** The shared directory with the real model files: set by the build, else ../shared. */
    static Path sharedDir() {
        return Path.of(System.getProperty("peregrine.shared.dir", "../shared"));
    }
}
