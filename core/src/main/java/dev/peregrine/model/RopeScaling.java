package dev.peregrine.model;

/**
 * How a model stretches its rotary embedding beyond the context it was pretrained on: a change of
 * the per-pair inverse frequencies {@code theta^(-2i/d)}, fixed per model, and for YaRN a factor on
 * cos and sin. The formulas are those of transformers' {@code modeling_rope_utils} (and of
 * llama.cpp, which stores the llama3 factors in a {@code rope_freqs.weight} tensor of divisors).
 */
public sealed interface RopeScaling {
    /** Plain rope. */
    None NONE = new None();

    /**
     * The inverse frequencies of the {@code ropeDims / 2} rotated pairs, scaled. Computed in double;
     * the graph rounds them to float once.
     */
    double[] frequencies(double theta, int ropeDims);

    /**
     * What transformers multiplies cos and sin by (1 except for YaRN); with every element of the
     * head rotated this multiplies each attention score by its square.
     */
    default double attentionFactor() {
        return 1;
    }

    /** The unscaled inverse frequency of pair {@code i}: {@code theta^(-2i/d)}. */
    static double baseFrequency(double theta, int i, int ropeDims) {
        return Math.pow(theta, -2.0 * i / ropeDims);
    }

    /**
     * The frequencies the graph uses: {@code scaling}'s, each divided by {@code divisors[i]} when
     * a GGUF file carries rope_freqs.weight (ggml's freq_factors; null when it does not).
     */
    static float[] frequencies(double theta, int ropeDims, RopeScaling scaling, float[] divisors) {
        double[] f = scaling.frequencies(theta, ropeDims);
        if (divisors != null && divisors.length != f.length) {
            throw new IllegalArgumentException(divisors.length + " rope frequency divisors for " + f.length + " pairs");
        }
        float[] out = new float[f.length];
        for (int i = 0; i < f.length; i++) {
            out[i] = (float) (divisors == null ? f[i] : f[i] / divisors[i]);
        }
        return out;
    }

    /** No scaling. */
    record None() implements RopeScaling {
        @Override
        public double[] frequencies(double theta, int ropeDims) {
            double[] f = new double[ropeDims / 2];
            for (int i = 0; i < f.length; i++) {
                f[i] = baseFrequency(theta, i, ropeDims);
            }
            return f;
        }
    }

    /** Position interpolation: every frequency divided by {@code factor} (transformers' "linear"). */
    record Linear(double factor) implements RopeScaling {
        public Linear {
            check(factor > 0 && Double.isFinite(factor), "linear rope scaling factor must be positive, got " + factor);
        }

        @Override
        public double[] frequencies(double theta, int ropeDims) {
            double[] f = NONE.frequencies(theta, ropeDims);
            for (int i = 0; i < f.length; i++) {
                f[i] /= factor;
            }
            return f;
        }
    }

    /**
     * Llama 3.1's scaling: wavelengths shorter than {@code originalContext / highFreqFactor} are
     * kept, those longer than {@code originalContext / lowFreqFactor} divided by {@code factor}, and
     * those between blended smoothly.
     */
    record Llama3(double factor, double lowFreqFactor, double highFreqFactor, int originalContext) implements RopeScaling {
        public Llama3 {
            check(factor > 0 && Double.isFinite(factor), "llama3 rope scaling factor must be positive, got " + factor);
            check(lowFreqFactor > 0 && highFreqFactor > lowFreqFactor && Double.isFinite(highFreqFactor),
                    "llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor, got " + lowFreqFactor + " and " + highFreqFactor);
            check(originalContext > 0, "llama3 rope scaling original context must be positive, got " + originalContext);
        }

        /**
         * What each frequency is divided by, as float32 values: exactly what llama.cpp's converter
         * writes into rope_freqs.weight, so that a GGUF file and a Hugging Face directory of the
         * same model compute the very same frequencies.
         */
        public float[] divisors(double theta, int ropeDims) {
            double lowWavelength = originalContext / lowFreqFactor;
            double highWavelength = originalContext / highFreqFactor;
            float[] d = new float[ropeDims / 2];
            for (int i = 0; i < d.length; i++) {
                double wavelength = 2 * Math.PI / baseFrequency(theta, i, ropeDims);
                if (wavelength < highWavelength) {
                    d[i] = 1;
                } else if (wavelength > lowWavelength) {
                    d[i] = (float) factor;
                } else {
                    double smooth = (originalContext / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                    d[i] = (float) (1 / ((1 - smooth) / factor + smooth));
                }
            }
            return d;
        }

        @Override
        public double[] frequencies(double theta, int ropeDims) {
            double[] f = NONE.frequencies(theta, ropeDims);
            float[] d = divisors(theta, ropeDims);
            for (int i = 0; i < f.length; i++) {
                f[i] /= d[i];
            }
            return f;
        }
    }

    /**
     * YaRN (NTK-by-parts): pairs that turn more than {@code betaFast} times over the original
     * context keep their frequency, those that turn fewer than {@code betaSlow} times are divided by
     * {@code factor}, with a linear ramp over the pair index between; cos and sin are multiplied by
     * {@code attentionFactor}.
     *
     * @param truncate whether the ramp's ends are rounded to whole pairs (transformers' default)
     */
    record Yarn(double factor, int originalContext, double betaFast, double betaSlow, double attentionFactor,
                boolean truncate) implements RopeScaling {
        public Yarn {
            check(factor > 0 && Double.isFinite(factor), "yarn rope scaling factor must be positive, got " + factor);
            check(originalContext > 0, "yarn original context must be positive, got " + originalContext);
            check(betaFast > 0 && betaSlow > 0 && Double.isFinite(betaFast) && Double.isFinite(betaSlow),
                    "yarn beta_fast and beta_slow must be positive, got " + betaFast + " and " + betaSlow);
            check(attentionFactor > 0 && Double.isFinite(attentionFactor),
                    "yarn attention factor must be positive, got " + attentionFactor);
        }

        /** The paper's attention factor: {@code 0.1 ln(factor) + 1}, 1 for factors up to 1. */
        public static double defaultAttentionFactor(double factor) {
            return mscale(factor, 1);
        }

        /** DeepSeek's form, {@code mscale(factor, mscale) / mscale(factor, mscaleAllDim)}. */
        public static double attentionFactor(double factor, double mscale, double mscaleAllDim) {
            return mscale(factor, mscale) / mscale(factor, mscaleAllDim);
        }

        private static double mscale(double factor, double m) {
            return factor <= 1 ? 1 : 0.1 * m * Math.log(factor) + 1;
        }

        /** The (fractional) pair index at which a pair turns {@code rotations} times over the original context. */
        private double correctionDim(double rotations, double theta, int ropeDims) {
            return ropeDims * Math.log(originalContext / (rotations * 2 * Math.PI)) / (2 * Math.log(theta));
        }

        @Override
        public double[] frequencies(double theta, int ropeDims) {
            double low = correctionDim(betaFast, theta, ropeDims);
            double high = correctionDim(betaSlow, theta, ropeDims);
            if (truncate) {
                low = Math.floor(low);
                high = Math.ceil(high);
            }
            low = Math.max(low, 0);
            high = Math.min(high, ropeDims - 1);
            if (low == high) {
                high += 0.001; // as transformers, against a division by zero
            }
            double[] f = NONE.frequencies(theta, ropeDims);
            for (int i = 0; i < f.length; i++) {
                // 0: keep the frequency (extrapolate), 1: divide it by the factor (interpolate)
                double ramp = Math.clamp((i - low) / (high - low), 0.0, 1.0);
                f[i] = f[i] / factor * ramp + f[i] * (1 - ramp);
            }
            return f;
        }
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }
}
