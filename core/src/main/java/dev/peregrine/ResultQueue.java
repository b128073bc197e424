package dev.peregrine;

import dev.peregrine.engine.Scheduler;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.function.Consumer;

/**
 * Carries one request's results from the scheduler thread to the thread that waits for them, so
 * a slow consumer never stalls the batch.
 */
final class ResultQueue implements Scheduler.Sink {
    private record Failure(RuntimeException error) {
    }

    private final LinkedBlockingQueue<Object> items = new LinkedBlockingQueue<>();
    private Scheduler.Request request;
    private Completion completion;
    private int delivered;

    void attach(Scheduler.Request request) {
        this.request = request;
    }

    @Override
    public void onToken(GeneratedToken token) {
        items.add(token);
    }

    @Override
    public void onComplete(Completion c) {
        items.add(c);
    }

    @Override
    public void onError(RuntimeException error) {
        items.add(new Failure(error));
    }

    /**
     * The next token, or null once the request has completed (then {@link #completion()} is set).
     * If the waiting thread is interrupted the request is cancelled and its end awaited, so that
     * a session's state is never used by two threads; the interrupt flag stays set.
     */
    GeneratedToken next() {
        if (completion != null) {
            return null;
        }
        boolean interrupted = false;
        try {
            while (true) {
                Object item;
                try {
                    item = items.take();
                } catch (InterruptedException e) {
                    interrupted = true;
                    request.cancel();
                    continue;
                }
                switch (item) {
                    case GeneratedToken t -> {
                        return t;
                    }
                    case Completion c -> {
                        completion = c;
                        return null;
                    }
                    case Failure f -> throw f.error();
                    default -> throw new IllegalStateException("unexpected " + item);
                }
            }
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** Passes every token to {@code onToken} and returns the completion. A throwing consumer cancels the request. */
    Completion drain(Consumer<GeneratedToken> onToken) {
        for (GeneratedToken t = next(); t != null; t = next()) {
            delivered++;
            try {
                onToken.accept(t);
            } catch (RuntimeException | Error e) {
                request.cancel();
                while (next() != null) {
                    // wait for the scheduler to let go of the request
                }
                throw e;
            }
        }
        return completion;
    }

    Completion completion() {
        return completion;
    }

    /** Tokens {@link #drain} has passed to its consumer (one that threw included). */
    int delivered() {
        return delivered;
    }

    void cancel() {
        request.cancel();
    }
}
