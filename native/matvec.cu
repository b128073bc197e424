// Matrix-vector products for decode: out[t][row] = W[row] . x[t] for up to MAX_TOKENS token rows,
// reading each weight once for all of them. Memory-bound: every lane streams 16-byte chunks of its
// row (dequantised in registers) and the block keeps many independent loads in flight.
//
// Work split: `warps_per_row` warps share one row (columns interleaved by chunk) so that short
// matrices (K/V projections) still fill the GPU; the host picks it from the row count. A block of
// blockDim.x / 32 warps covers blockDim.x / 32 / warps_per_row rows.
#include "weights.cuh"

constexpr int MAX_TOKENS = 8;
constexpr int MAX_WARPS = 32;

// Dot product of decoded values with x[0 .. V); x is 16-byte aligned when `aligned`.
template <int V>
__device__ __forceinline__ float dot(const float (&v)[V], const float* __restrict__ x, bool aligned) {
    float s = 0.0f;
    if (aligned) {
#pragma unroll
        for (int i = 0; i < V; i += 4) {
            const float4 xv = __ldg(reinterpret_cast<const float4*>(x + i));
            s += v[i] * xv.x + v[i + 1] * xv.y + v[i + 2] * xv.z + v[i + 3] * xv.w;
        }
    } else {
#pragma unroll
        for (int i = 0; i < V; i++) {
            s += v[i] * __ldg(x + i);
        }
    }
    return s;
}

template <class T>
__device__ void matvec(WeightRef w, int rows, const float* __restrict__ x, float* __restrict__ out, int tokens,
                       int warps_per_row) {
    constexpr int V = T::VALUES;
    __shared__ float partial[MAX_WARPS][MAX_TOKENS];
    const int lane = threadIdx.x % WARP_SIZE;
    const int warp = threadIdx.x / WARP_SIZE;
    const int rows_per_block = blockDim.x / WARP_SIZE / warps_per_row;
    const int row = blockIdx.x * rows_per_block + warp / warps_per_row;
    const int part = warp % warps_per_row;
    // x rows start on 16 bytes only when their length is a multiple of 4 (the buffer itself is aligned).
    const bool aligned = (w.columns % 4) == 0;

    float acc[MAX_TOKENS];
#pragma unroll
    for (int t = 0; t < MAX_TOKENS; t++) {
        acc[t] = 0.0f;
    }
    if (row < rows) {
        const int full = w.columns / V;
#pragma unroll 4
        for (int c = part * WARP_SIZE + lane; c < full; c += WARP_SIZE * warps_per_row) {
            float v[V];
            decode_chunk<T>(w, row, c, v);
#pragma unroll
            for (int t = 0; t < MAX_TOKENS; t++) {
                if (t < tokens) {
                    acc[t] += dot<V>(v, x + static_cast<size_t>(t) * w.columns + c * V, aligned);
                }
            }
        }
        // Plain types whose row length is not a multiple of V: one lane takes the partial chunk
        // (its load stays inside the row's zero padding).
        const int rest = w.columns - full * V;
        if (rest > 0 && part == 0 && lane == 0) {
            float v[V];
            decode_chunk<T>(w, row, full, v);
            for (int t = 0; t < tokens; t++) {
                const float* xt = x + static_cast<size_t>(t) * w.columns + full * V;
                for (int i = 0; i < rest; i++) {
                    acc[t] += v[i] * xt[i];
                }
            }
        }
    }
#pragma unroll
    for (int t = 0; t < MAX_TOKENS; t++) {
        acc[t] = warp_sum(acc[t]);
    }
    if (lane == 0) {
#pragma unroll
        for (int t = 0; t < MAX_TOKENS; t++) {
            partial[warp][t] = acc[t];
        }
    }
    __syncthreads();
    if (row < rows && part == 0 && lane < tokens) {
        float s = 0.0f;
        for (int p = 0; p < warps_per_row; p++) {
            s += partial[warp + p][lane];
        }
        out[static_cast<size_t>(lane) * rows + row] = s;
    }
}

#define PG_MATVEC(T, suffix)                                                                                   \
    extern "C" __global__ void pg_matvec_##suffix(float* out, const float* x, const uint8_t* data,            \
                                                  const __half* scales, int row_stride, int columns, int rows, \
                                                  int tokens, int warps_per_row) {                            \
        matvec<T>(WeightRef{data, scales, row_stride, columns}, rows, x, out, tokens, warps_per_row);         \
    }
PG_FOR_EACH_WEIGHT_TYPE(PG_MATVEC)
