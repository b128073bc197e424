package dev.peregrine.spi;

/**
 * What an encoder is opened with.
 *
 * @param threads CPU threads for one run (0 = the runtime's default)
 * @param device  "auto" (an accelerator when one is usable, else the CPU), "cpu", or "cuda"
 */
public record EncoderConfig(int threads, String device) {
    public EncoderConfig {
        if (threads < 0) {
            throw new IllegalArgumentException("threads must be >= 0, got " + threads);
        }
        if (!device.equals("auto") && !device.equals("cpu") && !device.equals("cuda")) {
            throw new IllegalArgumentException("device must be auto, cpu or cuda, got '" + device + "'");
        }
    }
}
