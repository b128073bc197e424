/** ONNX Runtime encoders (sentence embedders) behind Peregrine's {@code Model} API. */
module dev.peregrine.onnx {
    requires dev.peregrine;
    requires org.slf4j;
    requires com.microsoft.onnxruntime;

    provides dev.peregrine.spi.EncoderProvider with dev.peregrine.onnx.OnnxEncoderProvider;
}
