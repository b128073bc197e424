package dev.peregrine.it;

import dev.peregrine.Model;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/** Tests on the real stories260K model, loaded once per test class. */
abstract class Stories260KTest {
    static Model model;

    @BeforeAll
    static void loadStories260K() {
        model = Model.load(SharedModels.stories260K());
    }

    @AfterAll
    static void closeStories260K() {
        model.close();
    }
}
