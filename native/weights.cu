// Weight handling besides products: splitting ggml's quantised blocks into the device layout at
// upload, embedding lookup, and dequantisation to f16 for the cuBLAS path (see weights.cuh).
#include "weights.cuh"

// Splits `blocks` ggml blocks of `block_bytes` (an f16 scale, then the quants) into contiguous
// quants and a separate scale array. Runs once per weight at upload.
extern "C" __global__ void pg_split_blocks(const uint8_t* __restrict__ src, uint8_t* __restrict__ quants,
                                           __half* __restrict__ scales, long long blocks, int block_bytes) {
    const int quant_bytes = block_bytes - 2;
    const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
    for (long long b = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks; b += step) {
        const uint8_t* s = src + b * block_bytes;
        scales[b] = *reinterpret_cast<const __half*>(s); // blocks are an even number of bytes: 2-byte aligned
        uint8_t* q = quants + b * quant_bytes;
        for (int i = 0; i < quant_bytes; i++) {
            q[i] = s[2 + i];
        }
    }
}

// One block per output row: out[i * out_stride + c] = w[row][c] with row = rows[i], or i when
// `rows` is null (whole-matrix dequantisation).
template <class T, class Out>
__device__ void gather_rows(Out* __restrict__ out, const int* __restrict__ rows, WeightRef w, long long out_stride) {
    const int i = blockIdx.x;
    const int row = rows != nullptr ? rows[i] : i;
    const int chunks = (w.columns + T::VALUES - 1) / T::VALUES; // a partial last chunk reads row padding
    Out* dst = out + i * out_stride;
    for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
        float v[T::VALUES];
        decode_chunk<T>(w, row, c, v);
#pragma unroll
        for (int k = 0; k < T::VALUES; k++) {
            const int column = c * T::VALUES + k;
            if (column < w.columns) {
                dst[column] = from_float<Out>(v[k]);
            }
        }
    }
}

// Embedding lookup: row r of `out` (floats, `columns` wide) is table row tokens[r]. Grid: one block per token.
#define PG_EMBED(T, suffix)                                                                                  \
    extern "C" __global__ void pg_embed_##suffix(float* out, const int* tokens, const uint8_t* data,        \
                                                 const __half* scales, int row_stride, int columns) {        \
        gather_rows<T, float>(out, tokens, WeightRef{data, scales, row_stride, columns}, columns);          \
    }
PG_FOR_EACH_WEIGHT_TYPE(PG_EMBED)

// A quantised matrix as f16 (rows x columns, dense), the A operand of a cuBLAS GEMM. Grid: one block per row.
#define PG_DEQUANT_F16(T, suffix)                                                                            \
    extern "C" __global__ void pg_dequant_f16_##suffix(__half* out, const uint8_t* data, const __half* scales, \
                                                       int row_stride, int columns) {                        \
        gather_rows<T, __half>(out, nullptr, WeightRef{data, scales, row_stride, columns}, columns);        \
    }
PG_DEQUANT_F16(Q8_0, q8_0)
PG_DEQUANT_F16(Q4_0, q4_0)
