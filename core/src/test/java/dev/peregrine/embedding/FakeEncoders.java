package dev.peregrine.embedding;

import dev.peregrine.spi.Encoder;
import dev.peregrine.spi.EncoderBatch;
import dev.peregrine.tokenizer.Tokenizer;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/** A tokenizer and an encoder simple enough to predict by hand. */
final class FakeEncoders {
    static final int CLS = 1;
    static final int SEP = 2;

    private FakeEncoders() {
    }

    /** One token per character (its code point + 10), [CLS] text [SEP] with special tokens. */
    static final class CharTokenizer implements Tokenizer {
        @Override
        public int[] encode(String text, boolean addSpecial, boolean parseSpecial) {
            List<Integer> ids = new ArrayList<>();
            if (addSpecial) {
                ids.add(CLS);
            }
            text.codePoints().forEach(c -> ids.add(c + 10));
            if (addSpecial) {
                ids.add(SEP);
            }
            return ids.stream().mapToInt(Integer::intValue).toArray();
        }

        @Override
        public byte[] tokenBytes(int id) {
            return new byte[0];
        }

        @Override
        public String piece(int id) {
            return "";
        }

        @Override
        public String decode(int[] ids) {
            return "";
        }

        @Override
        public int vocabularySize() {
            return 0x110000 + 10;
        }

        @Override
        public int bosId() {
            return CLS;
        }

        @Override
        public int eosId() {
            return -1;
        }

        @Override
        public boolean isEndOfGeneration(int id) {
            return false;
        }
    }

    /**
     * Hidden state of a token: (id, position, 1 if masked in, sum of ids of the real tokens in its row).
     * The last value makes padding leaks visible: it depends only on the real tokens.
     */
    static class RecordingEncoder implements Encoder {
        final List<EncoderBatch> batches = new ArrayList<>();
        private final int fixedLength;
        private final int maxBatchSize;

        RecordingEncoder(int fixedLength) {
            this(fixedLength, 0);
        }

        RecordingEncoder(int fixedLength, int maxBatchSize) {
            this.fixedLength = fixedLength;
            this.maxBatchSize = maxBatchSize;
        }

        @Override
        public int maxBatchSize() {
            return maxBatchSize;
        }

        @Override
        public int hiddenSize() {
            return 4;
        }

        @Override
        public int fixedLength() {
            return fixedLength;
        }

        @Override
        public boolean usesTokenTypeIds() {
            return true;
        }

        @Override
        public String description() {
            return "fake";
        }

        @Override
        public void run(EncoderBatch batch, Consumer<FloatBuffer> output) {
            batches.add(batch);
            float[] out = new float[batch.size() * batch.length() * 4];
            for (int r = 0; r < batch.size(); r++) {
                long sum = 0;
                for (int p = 0; p < batch.length(); p++) {
                    int i = r * batch.length() + p;
                    sum += batch.attentionMask()[i] == 1 ? batch.inputIds()[i] : 0;
                }
                for (int p = 0; p < batch.length(); p++) {
                    int i = r * batch.length() + p;
                    out[i * 4] = batch.inputIds()[i];
                    out[i * 4 + 1] = p;
                    out[i * 4 + 2] = batch.attentionMask()[i];
                    out[i * 4 + 3] = sum;
                }
            }
            output.accept(FloatBuffer.wrap(out).asReadOnlyBuffer());
        }

        @Override
        public void close() {
        }
    }
}
