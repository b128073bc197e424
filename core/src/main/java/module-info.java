/**
 * Peregrine core: the public API ({@code dev.peregrine}), file formats, the model graph, the KV
 * cache, the engine, sampling and tokenizers. Only {@code dev.peregrine} is exported to users;
 * the internal packages are exported to Peregrine's own backend modules and tools only.
 */
module dev.peregrine {
    requires org.slf4j;

    exports dev.peregrine;

    exports dev.peregrine.spi to dev.peregrine.cpu, dev.peregrine.cuda, dev.peregrine.onnx, dev.peregrine.examples;
    exports dev.peregrine.tensor to dev.peregrine.cpu, dev.peregrine.cuda, dev.peregrine.examples;
    exports dev.peregrine.format.gguf to dev.peregrine.cpu, dev.peregrine.examples;
    exports dev.peregrine.model to dev.peregrine.examples;
    exports dev.peregrine.tokenizer to dev.peregrine.examples;
    exports dev.peregrine.format.hf to dev.peregrine.examples;
    exports dev.peregrine.synth to dev.peregrine.examples;
    exports dev.peregrine.embedding to dev.peregrine.examples;

    uses dev.peregrine.spi.BackendProvider;
    uses dev.peregrine.spi.EncoderProvider;
}
