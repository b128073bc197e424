package dev.peregrine.onnx;

import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.EmbeddingOptions;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.Pooling;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** For 20 hand-written triples, every model puts the paraphrase closer to the anchor than the unrelated sentence. */
class SemanticSanityTest {

    @ParameterizedTest
    @EnumSource(TestModels.Jar.class)
    void paraphrasesAreCloserThanUnrelatedSentences(TestModels.Jar jar) {
        try (Model model = Model.load(jar.onnx(), ModelOptions.defaults().withThreads(2))) {
            EmbeddingOptions options = model.embeddingOptions().withPooling(jar == TestModels.Jar.BGE_Q ? Pooling.CLS : Pooling.MEAN);
            if (jar == TestModels.Jar.E5_Q) {
                options = options.withPrefixes("query: ", "passage: ").forQueries(); // e5 is trained with them
            }
            List<String> texts = new ArrayList<>();
            Sentences.triples().forEach(t -> texts.addAll(List.of(t)));
            List<float[]> v = model.embed(texts, options);
            List<String> wrong = new ArrayList<>();
            for (int i = 0; i < v.size(); i += 3) {
                double paraphrase = EmbeddingFidelityTest.cosine(v.get(i), v.get(i + 1));
                double unrelated = EmbeddingFidelityTest.cosine(v.get(i), v.get(i + 2));
                if (paraphrase <= unrelated) {
                    wrong.add(String.format("'%s': paraphrase %.3f, unrelated %.3f", texts.get(i), paraphrase, unrelated));
                }
            }
            assertThat(wrong).as(jar.name()).isEmpty();
        }
    }
}
