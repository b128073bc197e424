package dev.peregrine.jmh;

import static java.nio.charset.StandardCharsets.UTF_8;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.Stream;

/**
 * English text for tokenizer benchmarks, cut into documents of a few kilobytes at paragraph
 * boundaries (a prompt's size, so that per-call costs count as they do in use).
 *
 * <ul>
 *   <li>{@link #generated}: prose generated from a seed, the same on every machine and JDK: the
 *       most frequent English words drawn with Zipf's law (so the mix of short, frequent and
 *       longer, rarer words is English's), inflected forms, names, numbers, contractions,
 *       hyphenated words, dialogue in quotes, commas, parentheses and paragraphs;
 *   <li>{@link #jdkLegal}: the licence texts under the running JDK's legal/ folder (each text
 *       once), real English that every JDK ships (about 0.4 MB; the exact text depends on the JDK
 *       build).
 * </ul>
 */
final class EnglishText {
    /** Frequent English words, most frequent first (roughly: the order only shapes the Zipf draw). */
    private static final String[] WORDS = ("""
            the of and to a in is it you that he was for on are with as I his they be at one have this
            from or had by not word but what some we can out other were all there when up use your how
            said an each she which do their time if will way about many then them write would like so
            these her long make thing see him two has look more day could go come did number sound no
            most people my over know water than call first who may down side been now find any new work
            part take get place made live where after back little only round man year came show every
            good me give our under name very through just form sentence great think say help low line
            differ turn cause much mean before move right boy old too same tell does set three want air
            well also play small end put home read hand port large spell add even land here must big
            high such follow act why ask men change went light kind off need house picture try us again
            animal point mother world near build self earth father head stand own page should country
            found answer school grow study still learn plant cover food sun four between state keep eye
            never last let thought city tree cross farm hard start might story saw far sea draw left late
            run don't while press close night real life few north open seem together next white children
            begin got walk example ease paper group always music those both mark often letter until mile
            river car feet care second book carry took science eat room friend began idea fish mountain
            stop once base hear horse cut sure watch color face wood main enough plain girl usual young
            ready above ever red list though feel talk bird soon body dog family direct pose leave song
            measure door product black short numeral class wind question happen complete ship area half
            rock order fire south problem piece told knew pass since top whole king space heard best hour
            better true during hundred five remember step early hold west ground interest reach fast verb
            sing listen six table travel less morning ten simple several vowel toward war lay against
            pattern slow center love person money serve appear road map rain rule govern pull cold notice
            voice unit power town fine certain fly fall lead cry dark machine note wait plan figure star
            box noun field rest correct able pound done beauty drive stood contain front teach week final
            gave green oh quick develop ocean warm free minute strong special mind behind clear tail
            produce fact street inch multiply nothing course stay wheel full force blue object decide
            surface deep moon island foot system busy test record boat common gold possible plane stead
            dry wonder laugh thousand ago ran check game shape equate hot miss brought heat snow tire
            bring yes distant fill east paint language among it's I'm can't won't we're they'd she'll
            government development information university experience environment relationship
            particularly understanding responsibility communication approximately significantly
            """).strip().split("\\s+");
    private static final String[] NAMES = ("Alice Robert Maria James Chen Fatima Oliver Priya Lucas Emma "
            + "Tokyo London Nairobi Lisbon Monday October Wednesday Atlantic Mississippi Europe").split(" ");
    private static final String[] SUFFIXES = {"s", "ed", "ing", "ly", "er", "est", "ness", "ment"};
    private static final String[] VERBS_OF_SPEECH = {"said", "asked", "replied", "whispered", "answered"};

    private EnglishText() {
    }

    /** About {@code bytes} bytes (UTF-8) of generated English prose, from {@code seed}. */
    static String generate(int bytes, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        double[] cumulative = new double[WORDS.length];
        double sum = 0;
        for (int rank = 0; rank < WORDS.length; rank++) {
            sum += 1.0 / (rank + 2.7); // Zipf-Mandelbrot: flatter at the top, like running text
            cumulative[rank] = sum;
        }
        StringBuilder text = new StringBuilder(bytes + 1024);
        while (text.length() < bytes) {
            int sentences = 2 + random.nextInt(7);
            for (int s = 0; s < sentences; s++) {
                if (s > 0) {
                    text.append(' ');
                }
                sentence(random, cumulative, text);
            }
            text.append("\n\n");
        }
        return text.toString();
    }

    private static void sentence(SplittableRandom random, double[] cumulative, StringBuilder text) {
        boolean quoted = random.nextInt(10) == 0;
        if (quoted) {
            text.append('"');
        }
        int words = 4 + random.nextInt(22);
        boolean open = false;
        for (int w = 0; w < words; w++) {
            if (w > 0) {
                text.append(' ');
            }
            if (!open && w > 1 && w < words - 3 && random.nextInt(40) == 0) {
                text.append('(');
                open = true;
            }
            String word = word(random, cumulative);
            text.append(w == 0 ? Character.toUpperCase(word.charAt(0)) + word.substring(1) : word);
            if (open && random.nextInt(3) == 0) {
                text.append(')');
                open = false;
            }
            if (w < words - 1 && random.nextInt(12) == 0) {
                text.append(random.nextInt(8) == 0 ? ";" : ",");
            }
        }
        if (open) {
            text.append(')');
        }
        int end = random.nextInt(20);
        text.append(end < 16 ? "." : end < 18 ? "?" : end < 19 ? "!" : "...");
        if (quoted) {
            text.append("\" ").append(VERBS_OF_SPEECH[random.nextInt(VERBS_OF_SPEECH.length)]).append(' ')
                    .append(NAMES[random.nextInt(10)]).append('.');
        }
    }

    private static String word(SplittableRandom random, double[] cumulative) {
        int kind = random.nextInt(100);
        if (kind < 3) {
            return NAMES[random.nextInt(NAMES.length)];
        }
        if (kind < 5) {
            return switch (random.nextInt(4)) {
                case 0 -> String.valueOf(1800 + random.nextInt(226));
                case 1 -> String.valueOf(random.nextInt(100));
                case 2 -> random.nextInt(1000) + "," + String.format("%03d", random.nextInt(1000));
                default -> random.nextInt(10) + "." + random.nextInt(100) + "%";
            };
        }
        String word = zipf(random, cumulative);
        if (kind < 6) {
            return word + "-" + zipf(random, cumulative);
        }
        if (kind < 16 && word.length() > 3 && Character.isLetter(word.charAt(word.length() - 1))) {
            return word + SUFFIXES[random.nextInt(SUFFIXES.length)];
        }
        return word;
    }

    private static String zipf(SplittableRandom random, double[] cumulative) {
        double u = random.nextDouble() * cumulative[cumulative.length - 1];
        int lo = 0;
        int hi = cumulative.length - 1;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (cumulative[mid] < u) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return WORDS[lo];
    }

    /** The licence texts under the running JDK's legal/ folder, each distinct text once. */
    static String jdkLegal() {
        Path legal = Path.of(System.getProperty("java.home"), "legal");
        Set<String> texts = new LinkedHashSet<>(); // modules share licence files: each text once
        try (Stream<Path> files = Files.walk(legal)) {
            for (Path file : files.filter(Files::isRegularFile).sorted().toList()) {
                texts.add(Files.readString(file, UTF_8));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the JDK's legal texts in " + legal, e);
        }
        return String.join("\n", texts);
    }

    /** The text cut after the paragraph break that follows every {@code size} characters. */
    static List<String> documents(String text, int size) {
        List<String> documents = new ArrayList<>();
        int start = 0;
        while (start < text.length()) {
            int end = text.indexOf("\n\n", Math.min(text.length(), start + size));
            end = end < 0 ? text.length() : end + 2;
            documents.add(text.substring(start, end));
            start = end;
        }
        return documents;
    }
}
