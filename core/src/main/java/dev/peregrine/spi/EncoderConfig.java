package dev.peregrine.spi;

/**
 * What an encoder is opened with.
 *
 * @param threads     CPU threads for one run (0 = the runtime's default)
 * @param device      "auto" (an accelerator when one is usable, else the CPU), "cpu", or "cuda"
 * @param deviceIndex which accelerator an accelerated run uses (0 = the first)
 */
public record EncoderConfig(int threads, String device, int deviceIndex) {
    public EncoderConfig {
        if (threads < 0) {
            throw new IllegalArgumentException("threads must be >= 0, got " + threads);
        }
        if (deviceIndex < 0) {
            throw new IllegalArgumentException("deviceIndex must be >= 0, got " + deviceIndex);
        }
        if (!device.equals("auto") && !device.equals("cpu") && !device.equals("cuda")) {
            throw new IllegalArgumentException("device must be auto, cpu or cuda, got '" + device + "'");
        }
    }
}
