package dev.peregrine.engine;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The sequences of open sessions, whose cached keys and values the scheduler may drop when the KV
 * cache runs out while their sessions are idle (between calls), least recently used first: the
 * tokens stay, and the session's next call evaluates them again, as a preempted request is
 * recomputed. A session holds its entry's lock during each of its calls (a generation
 * included), and the scheduler only takes a lock that is free, so it never touches a sequence
 * in use and never waits for one.
 */
public final class IdleSequences {
    /** One session's sequence, the lock its calls hold, and when it was last used. */
    public static final class Entry {
        private final SequenceState sequence;
        private final ReentrantLock lock = new ReentrantLock();
        private volatile long lastUsedNanos = System.nanoTime();

        private Entry(SequenceState sequence) {
            this.sequence = sequence;
        }

        /** Held by the session for each call; on release the entry counts as just used. */
        public void lock() {
            lock.lock();
        }

        public void unlock() {
            lastUsedNanos = System.nanoTime();
            lock.unlock();
        }
    }

    private final Set<Entry> entries = ConcurrentHashMap.newKeySet();

    /** Registers an open session's sequence. */
    public Entry register(SequenceState sequence) {
        Entry e = new Entry(sequence);
        entries.add(e);
        return e;
    }

    /** Forgets a closed session's sequence. */
    public void unregister(Entry e) {
        entries.remove(e);
    }

    /**
     * Drops the cached keys and values of the least recently used idle sequence that holds any
     * KV blocks; returns whether there was one. (Blocks it shares with others stay theirs.)
     */
    boolean evictOne() {
        if (entries.isEmpty()) {
            return false; // no session open: nothing to copy and sort each time the cache is full
        }
        List<Entry> byAge = new ArrayList<>(entries);
        byAge.sort(Comparator.comparingLong(e -> e.lastUsedNanos));
        for (Entry e : byAge) {
            if (e.lock.tryLock()) {
                try {
                    if (e.sequence.kv().blockCount() > 0) {
                        e.sequence.evict();
                        return true;
                    }
                } finally {
                    e.lock.unlock();
                }
            }
        }
        return false;
    }
}
