// Matrix-vector products for decode and small batches: out[t][row] = W[row] . x[t] for up to
// MAX_TOKENS token rows, reading each weight once for all of them. Memory-bound: every lane streams
// 16-byte chunks of its rows (dequantised in registers), several loads in flight per lane.
//
// Work split: a warp handles ROWS rows (so a slice of x loaded for one row serves the others), and
// `warps_per_row` warps share those rows, columns interleaved by chunk, so that short matrices (K/V
// projections) still fill the GPU; the host picks it from the row count. A block of
// blockDim.x / 32 warps covers blockDim.x / 32 / warps_per_row * ROWS rows.
//
// One launch computes up to MAX_PRODUCTS products of the same x with matrices of one type and
// width (a layer's q/k/v, or gate/up): their row groups are numbered one matrix after another, so
// small matrices share one grid instead of each leaving the GPU half idle for a launch of its own.
//
// Two entry points per type: pg_matvec_<type> for one token row (decode; lean, so that many warps
// fit on an SM) and pg_matvec_batch_<type> for 2 to MAX_TOKENS rows, which picks TOKENS and ROWS
// from the token count (matvec_rows_per_warp below; the host mirrors it).
#include "weights.cuh"

constexpr int MAX_TOKENS = 8;
constexpr int MAX_ROWS = 4; // MAX_ROWS * MAX_TOKENS sums fit in one warp's lanes
constexpr int MAX_WARPS = 32;
constexpr int MAX_PRODUCTS = 3;

// Entry i of a parameter array, by selects rather than an indexed load (which would put the array in local memory).
template <class V>
__device__ __forceinline__ V pick(const V (&a)[3], int i) {
    return i == 0 ? a[0] : i == 1 ? a[1] : a[2];
}

// The matrices of one launch: same type, width and row stride; rows[i] == 0 for unused entries.
struct Products {
    float* out[MAX_PRODUCTS];
    const uint8_t* data[MAX_PRODUCTS];
    const __half* scales[MAX_PRODUCTS];
    int rows[MAX_PRODUCTS];
};

__device__ __forceinline__ float4 load_x(const float* __restrict__ x, bool aligned) {
    if (aligned) {
        return __ldg(reinterpret_cast<const float4*>(x));
    }
    return make_float4(__ldg(x), __ldg(x + 1), __ldg(x + 2), __ldg(x + 3));
}

__device__ __forceinline__ float dot4(const float4& a, const float4& b) {
    return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
}

// TOKENS: token rows the registers hold (the call's `tokens` may be fewer); ROWS: weight rows per warp.
template <class T, int TOKENS, int ROWS>
__device__ void matvec(const Products& p, int row_stride, int columns, const float* __restrict__ x, int tokens,
                       int warps_per_row) {
    constexpr int V = T::VALUES;
    // Chunks in flight per lane: ROWS * UNROLL loads. Batches keep their slices in a loop: unrolled,
    // the compiler hoists every slice's x loads and runs out of registers.
    [[maybe_unused]] constexpr int UNROLL = ROWS == 1 ? 4 : 1;
    [[maybe_unused]] constexpr int SLICE_UNROLL = TOKENS == 1 ? T::SLICES : 1;
    __shared__ float partial[MAX_WARPS][MAX_ROWS * MAX_TOKENS];
    const int lane = threadIdx.x % WARP_SIZE;
    const int warp = threadIdx.x / WARP_SIZE;
    const int groups_per_block = blockDim.x / WARP_SIZE / warps_per_row;
    const int part = warp % warps_per_row;
    // This warp's row group, numbered across the products; a group past the last one does no work
    // but still meets the block's barrier.
    int group = blockIdx.x * groups_per_block + warp / warps_per_row;
    int product = 0;
    while (product < MAX_PRODUCTS - 1 && group >= (pick(p.rows, product) + ROWS - 1) / ROWS) {
        group -= (pick(p.rows, product) + ROWS - 1) / ROWS;
        product++;
    }
    const int rows = pick(p.rows, product);
    const int first_row = group * ROWS; // >= rows past the last group
    const WeightRef w{pick(p.data, product), pick(p.scales, product), row_stride, columns};
    float* __restrict__ out = pick(p.out, product);
    // x rows start on 16 bytes only when their length is a multiple of 4 (the buffer itself is aligned).
    const bool aligned = (w.columns % 4) == 0;
    const size_t x_stride = w.columns;

    // Rows past the end of the matrix read the last row again (their sums are never stored).
    int row[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        row[r] = max(0, min(first_row + r, rows - 1));
    }
    float acc[ROWS][TOKENS];
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
#pragma unroll
        for (int t = 0; t < TOKENS; t++) {
            acc[r][t] = 0.0f;
        }
    }

    if (first_row < rows) {
        const int full = w.columns / V;
#pragma unroll UNROLL
        for (int c = part * WARP_SIZE + lane; c < full; c += WARP_SIZE * warps_per_row) {
            uint4 raw[ROWS];
            float scale[ROWS];
#pragma unroll
            for (int r = 0; r < ROWS; r++) {
                raw[r] = load_chunk(w, row[r], c);
                scale[r] = chunk_scale<T>(w, row[r], c);
            }
#pragma unroll SLICE_UNROLL
            for (int s = 0; s < T::SLICES; s++) {
                float4 xs[TOKENS];
#pragma unroll
                for (int t = 0; t < TOKENS; t++) {
                    xs[t] = t < tokens ? load_x(x + t * x_stride + c * V + 4 * s, aligned) : make_float4(0, 0, 0, 0);
                }
#pragma unroll
                for (int r = 0; r < ROWS; r++) {
                    const float4 v = scaled_slice<T>(raw[r], s, scale[r]);
#pragma unroll
                    for (int t = 0; t < TOKENS; t++) {
                        acc[r][t] += dot4(v, xs[t]);
                    }
                }
            }
        }
        // Plain types whose row length is not a multiple of V: one lane takes the partial chunk
        // (its load stays inside the row's zero padding).
        const int rest = w.columns - full * V;
        if (rest > 0 && part == 0 && lane == 0) {
#pragma unroll
            for (int r = 0; r < ROWS; r++) {
                float v[V];
                decode_chunk<T>(w, row[r], full, v);
                for (int t = 0; t < tokens; t++) {
                    const float* xt = x + t * x_stride + full * V;
                    for (int i = 0; i < rest; i++) {
                        acc[r][t] += v[i] * xt[i];
                    }
                }
            }
        }
    }

    // Every lane ends with every sum; lane r * TOKENS + t stores (row r, token t).
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
#pragma unroll
        for (int t = 0; t < TOKENS; t++) {
            acc[r][t] = warp_sum(acc[r][t]);
        }
    }
    float mine = 0.0f;
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
#pragma unroll
        for (int t = 0; t < TOKENS; t++) {
            if (lane == r * TOKENS + t) {
                mine = acc[r][t];
            }
        }
    }
    const int r = lane / TOKENS;
    const int t = lane % TOKENS;
    const bool stores = lane < ROWS * TOKENS && first_row + r < rows && t < tokens;
    if (warps_per_row == 1) {
        if (stores) {
            out[static_cast<size_t>(t) * rows + first_row + r] = mine;
        }
        return;
    }
    partial[warp][lane] = mine;
    __syncthreads();
    if (part == 0 && stores) {
        float s = 0.0f;
        for (int p = 0; p < warps_per_row; p++) {
            s += partial[warp + p][lane];
        }
        out[static_cast<size_t>(t) * rows + first_row + r] = s;
    }
}

// Weight rows per warp for a batch of `tokens` token rows (the host's CudaBackend.matvecRowsPerWarp).
__host__ __device__ constexpr int matvec_rows_per_warp(int tokens) {
    return tokens <= 1 ? 1 : tokens <= 2 ? 2 : MAX_ROWS;
}

#define PG_MATVEC_PARAMS                                                                                 \
    float *out0, float *out1, float *out2, const float *x, const uint8_t *data0, const uint8_t *data1,       \
        const uint8_t *data2, const __half *scales0, const __half *scales1, const __half *scales2,          \
        int row_stride, int columns, int rows0, int rows1, int rows2, int tokens, int warps_per_row
#define PG_PRODUCTS Products{{out0, out1, out2}, {data0, data1, data2}, {scales0, scales1, scales2}, {rows0, rows1, rows2}}

#define PG_MATVEC(T, suffix)                                                                                     \
    extern "C" __global__ void pg_matvec_##suffix(PG_MATVEC_PARAMS) {                                           \
        matvec<T, 1, 1>(PG_PRODUCTS, row_stride, columns, x, 1, warps_per_row);                                 \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(256, 2) pg_matvec_batch_##suffix(PG_MATVEC_PARAMS) {           \
        const Products p = PG_PRODUCTS;                                                                         \
        if (tokens <= 2) {                                                                                      \
            matvec<T, 2, matvec_rows_per_warp(2)>(p, row_stride, columns, x, tokens, warps_per_row);            \
        } else if (tokens <= 4) {                                                                               \
            matvec<T, 4, matvec_rows_per_warp(4)>(p, row_stride, columns, x, tokens, warps_per_row);            \
        } else {                                                                                                \
            matvec<T, MAX_TOKENS, matvec_rows_per_warp(MAX_TOKENS)>(p, row_stride, columns, x, tokens,           \
                                                                    warps_per_row);                             \
        }                                                                                                       \
    }
PG_FOR_EACH_WEIGHT_TYPE(PG_MATVEC)
