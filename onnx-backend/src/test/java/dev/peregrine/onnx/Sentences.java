package dev.peregrine.onnx;

import java.util.ArrayList;
import java.util.List;

/** Test sentences, written for these tests. */
final class Sentences {
    private Sentences() {
    }

    /** 50 varied texts: short and long, punctuation, numbers, code, accents, other scripts, odd spacing, and 4 long ones. */
    static List<String> varied() {
        List<String> s = new ArrayList<>(List.of(
                "Hello world",
                "The quick brown fox jumps over the lazy dog.",
                "A",
                "",
                "Embeddings map sentences to vectors, so that similar meanings end up close together.",
                "What is the capital of France?",
                "Paris is the capital and most populous city of France.",
                "I can't believe it's not butter!",
                "The meeting was moved from 3:30pm to 4:15pm on 2024-03-07.",
                "Invoice #4821: total due $1,299.99 (incl. 20% VAT).",
                "for (int i = 0; i < n; i++) { sum += a[i] * b[i]; }",
                "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
                "Café, naïve, façade, résumé and jalapeño all carry accents.",
                "Ünïcödé tëxt wïth diacritics everywhere: àéîõü ÀÉÎÕÜ.",
                "東京は日本の首都です。",
                "Москва — столица России.",
                "Emoji are not in the vocabulary 🙂🚀 but the text around them is.",
                "   leading and trailing spaces   ",
                "tabs\tand\nnew\nlines\r\nmixed in",
                "ALL CAPS SHOUTING ABOUT THE WEATHER",
                "Don't split contractions wrongly: isn't, won't, shouldn't've.",
                "e-mail, co-operate, state-of-the-art, well-known",
                "Call +1 (555) 010-9999 or write to someone@example.com.",
                "https://example.org/path/to/page?query=1&other=two#anchor",
                "The mitochondria is the powerhouse of the cell.",
                "Photosynthesis converts light energy into chemical energy stored in glucose.",
                "My laptop battery drains quickly when the screen is bright.",
                "How do I reset my password if I no longer have access to my email?",
                "The court ruled that the contract was void because it lacked consideration.",
                "She scored twice in the second half and the home side won 3-1.",
                "Preheat the oven to 200°C and bake the bread for 35 minutes.",
                "Interest rates rose by a quarter of a percentage point yesterday.",
                "The patient reported mild headaches and occasional dizziness.",
                "Rain is expected tomorrow afternoon, clearing by the evening.",
                "a b c d e f g h i j k l m n o p q r s t u v w x y z",
                "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
                "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
                "!!!???...,,,;;;:::",
                "[CLS] and [SEP] written in the text are read as special tokens.",
                "Quantum computers use qubits, which can be in superpositions of states.",
                "The library closes at 8pm on weekdays and at noon on Saturdays.",
                "Git rebase rewrites history; merge preserves it.",
                "The Treaty of Westphalia was signed in 1648, ending the Thirty Years' War.",
                "Cats sleep for about sixteen hours a day.",
                "Please find attached the quarterly report for Q3 2023."));
        s.add(repeat(MEDIUM, 2));   // ~150 tokens: longer than MiniLM's 128 as LangChain4j's jar has it
        s.add(repeat(MEDIUM, 4));   // ~300 tokens
        s.add(repeat(LONG, 3));     // ~600 tokens: longer than 512
        s.add(repeat(LONG, 6));     // ~1200 tokens
        s.add(repeat(MEDIUM, 8) + " " + repeat(LONG, 2));
        return s;
    }

    private static final String MEDIUM = "Search engines split documents into passages, embed each passage as a vector, "
            + "and at query time embed the question the same way, returning the passages whose vectors lie closest. "
            + "The quality of the answers depends on how well the embedding model captures meaning rather than "
            + "surface wording.";

    private static final String LONG = "The river rose through the night, and by morning the lower streets of the town "
            + "were under water. Volunteers carried sandbags to the bakery, the school and the old church, while the "
            + "ferry kept running between the two banks as long as the current allowed. Nobody could remember a flood "
            + "like it; the marks on the bridge from earlier years were all below the waterline now. In the afternoon "
            + "the rain eased, the wind turned to the north, and the level began, very slowly, to fall. People came out "
            + "onto their balconies to watch, counting the steps of the stairs as they reappeared one by one, and the "
            + "children raced paper boats along the edge of the receding water.";

    private static String repeat(String text, int times) {
        return String.join(" ", java.util.Collections.nCopies(times, text));
    }

    /** Anchor, paraphrase, unrelated: the paraphrase should always be closer to the anchor. */
    static List<String[]> triples() {
        return List.of(
                new String[] {"How do I reset my password?", "What are the steps to change my login password?", "The museum opens at nine on Sundays."},
                new String[] {"The cat is sleeping on the sofa.", "A cat naps on the couch.", "Stock markets fell sharply in early trading."},
                new String[] {"It is raining heavily today.", "There is a lot of rain falling today.", "She plays the violin in an orchestra."},
                new String[] {"The car would not start this morning.", "My vehicle failed to start today.", "Penguins live mostly in the southern hemisphere."},
                new String[] {"He bought a new laptop for work.", "He purchased a new computer for his job.", "The soup needs more salt."},
                new String[] {"The flight was delayed by two hours.", "Our plane took off two hours late.", "Tomatoes grow best in full sun."},
                new String[] {"Where is the nearest train station?", "How do I get to the closest railway station?", "Photosynthesis happens in the leaves."},
                new String[] {"The company reported record profits.", "The firm announced its highest earnings ever.", "The hikers reached the summit at dawn."},
                new String[] {"I am allergic to peanuts.", "Peanuts give me an allergic reaction.", "The printer is out of paper."},
                new String[] {"The concert was cancelled because of the storm.", "Bad weather forced the show to be called off.", "He learned to code in Python."},
                new String[] {"Drink plenty of water when it is hot.", "Stay hydrated in hot weather.", "The invoice is due at the end of the month."},
                new String[] {"The baby started crying at midnight.", "At twelve at night the infant began to cry.", "Interest rates are expected to rise."},
                new String[] {"This restaurant serves excellent pasta.", "The pasta at this place is delicious.", "The satellite orbits the earth every ninety minutes."},
                new String[] {"The package will arrive on Tuesday.", "Your parcel is scheduled for delivery on Tuesday.", "Volcanoes can be found on every continent."},
                new String[] {"She is learning to speak Spanish.", "She is studying the Spanish language.", "The bridge was closed for repairs."},
                new String[] {"The server crashed after the update.", "The update caused the server to go down.", "Bees communicate by dancing."},
                new String[] {"Please turn off the lights when you leave.", "Switch the lights off on your way out.", "The election results were announced late."},
                new String[] {"The doctor prescribed antibiotics for the infection.", "The physician gave me antibiotics to treat the infection.", "The team won the championship last year."},
                new String[] {"Our meeting is postponed until next week.", "We moved the meeting to next week.", "Whales are the largest animals on earth."},
                new String[] {"The price of gasoline went up again.", "Fuel prices have risen once more.", "The novel is set in nineteenth-century Russia."});
    }
}
