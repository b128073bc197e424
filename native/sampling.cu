// Sampling on the device, so a step copies back a few bytes per sequence instead of its logits:
// the greedy choice, and the top k candidates (the host applies temperature, top-p and the draw
// to those). The ranking is the host's (dev.peregrine.sampling.TopK): larger first, ties to the
// lower token id, NaN as -infinity (and reported as -infinity).
#include "common.cuh"

#include <limits.h>

constexpr int SAMPLE_THREADS = 1024;

// (value, index) pairs: larger value first, then lower index.
__device__ __forceinline__ bool ranks_before(float v, int i, float other_v, int other_i) {
    return v > other_v || (v == other_v && i < other_i);
}

// The value a logit ranks by: NaN counts as -infinity, and -0 as +0 (they are equal, so they tie
// by index, which the radix keys below would not do for different bit patterns).
__device__ __forceinline__ float rank_value(float x) {
    return isnan(x) ? -INFINITY : (x == 0.0f ? 0.0f : x);
}

// Row r (at r * row_stride) of `logits`, first `vocab` entries: values[r] and indices[r] = the
// largest logit and its index. One block of SAMPLE_THREADS per row.
extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS)
pg_argmax(float* __restrict__ values, int* __restrict__ indices, const float* __restrict__ logits, int row_stride,
          int vocab) {
    __shared__ float best_s[WARP_SIZE];
    __shared__ int index_s[WARP_SIZE];
    const float* x = logits + static_cast<size_t>(blockIdx.x) * row_stride;
    float best = -INFINITY;
    int index = INT_MAX;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float v = rank_value(x[i]);
        if (ranks_before(v, i, best, index)) {
            best = v;
            index = i;
        }
    }
    for (int round = 0; round < 2; round++) { // within warps, then across the warps' winners
#pragma unroll
        for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
            const float other = __shfl_xor_sync(FULL_MASK, best, offset);
            const int other_index = __shfl_xor_sync(FULL_MASK, index, offset);
            if (ranks_before(other, other_index, best, index)) {
                best = other;
                index = other_index;
            }
        }
        if (round == 0) {
            if (threadIdx.x % WARP_SIZE == 0) {
                best_s[threadIdx.x / WARP_SIZE] = best;
                index_s[threadIdx.x / WARP_SIZE] = index;
            }
            __syncthreads();
            const bool has = threadIdx.x < blockDim.x / WARP_SIZE;
            best = has ? best_s[threadIdx.x] : -INFINITY;
            index = has ? index_s[threadIdx.x] : INT_MAX;
        }
    }
    if (threadIdx.x == 0) {
        values[blockIdx.x] = best;
        indices[blockIdx.x] = index; // all -inf (or NaN): the lowest index, 0, like the host argmax
    }
}

// Orders floats as unsigned integers: a larger float has a larger key.
__device__ __forceinline__ uint32_t order_key(float f) {
    const uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) != 0 ? ~u : (u | 0x80000000u);
}

// Exclusive prefix sum over the block, in thread order. `scratch` needs 32 ints.
__device__ int block_exclusive_scan(int v, int* scratch) {
    const int lane = threadIdx.x % WARP_SIZE;
    const int warp = threadIdx.x / WARP_SIZE;
    int inclusive = v;
#pragma unroll
    for (int offset = 1; offset < WARP_SIZE; offset *= 2) {
        const int up = __shfl_up_sync(FULL_MASK, inclusive, offset);
        if (lane >= offset) {
            inclusive += up;
        }
    }
    __syncthreads(); // scratch may still be read by an earlier scan
    if (lane == WARP_SIZE - 1) {
        scratch[warp] = inclusive;
    }
    __syncthreads();
    int before = 0;
    for (int w = 0; w < warp; w++) {
        before += scratch[w];
    }
    return before + inclusive - v;
}

// The k largest of the first `vocab` logits of each row (row r at r * row_stride; k <= SAMPLE_THREADS),
// ranked: values[r * k + j], indices[r * k + j]. One block of SAMPLE_THREADS per row: a radix select
// finds the k-th largest key 8 bits at a time (four passes over the row), one pass collects the
// candidates in index order, and a bitonic sort in shared memory ranks them.
extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS)
pg_top_k(float* __restrict__ values, int* __restrict__ indices, const float* __restrict__ logits, int row_stride, int vocab,
         int k) {
    __shared__ unsigned histogram[256];
    __shared__ uint32_t prefix_s;
    __shared__ int wanted_s;
    __shared__ int scan_scratch[WARP_SIZE];
    __shared__ float candidate_v[SAMPLE_THREADS];
    __shared__ int candidate_i[SAMPLE_THREADS];
    const float* x = logits + static_cast<size_t>(blockIdx.x) * row_stride;
    const int tid = threadIdx.x;

    // 1. The key of the k-th largest value: after the last pass `prefix` is that key and `wanted`
    // says how many of the values equal to it belong to the top k.
    uint32_t prefix = 0;
    uint32_t mask = 0;
    int wanted = k;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = tid; b < 256; b += blockDim.x) {
            histogram[b] = 0;
        }
        __syncthreads();
        for (int i = tid; i < vocab; i += blockDim.x) {
            const uint32_t key = order_key(rank_value(x[i]));
            if ((key & mask) == prefix) {
                atomicAdd(&histogram[(key >> shift) & 0xffu], 1u);
            }
        }
        __syncthreads();
        if (tid == 0) {
            int above = 0;
            for (int b = 255; b >= 0; b--) {
                const int count = static_cast<int>(histogram[b]);
                if (above + count >= wanted) {
                    prefix_s = prefix | (static_cast<uint32_t>(b) << shift);
                    wanted_s = wanted - above;
                    break;
                }
                above += count;
            }
        }
        __syncthreads();
        prefix = prefix_s;
        wanted = wanted_s;
        mask |= 0xffu << shift;
    }

    // 2. Collect every value above the threshold and the first `wanted` equal to it, in index order:
    // each thread scans a contiguous range, and prefix sums place its finds.
    const int per_thread = (vocab + blockDim.x - 1) / blockDim.x;
    const int from = min(vocab, tid * per_thread);
    const int to = min(vocab, from + per_thread);
    int above = 0;
    int equal = 0;
    for (int i = from; i < to; i++) {
        const uint32_t key = order_key(rank_value(x[i]));
        above += key > prefix;
        equal += key == prefix;
    }
    int above_at = block_exclusive_scan(above, scan_scratch);
    int equal_rank = block_exclusive_scan(equal, scan_scratch);
    const int above_total = k - wanted;
    for (int i = from; i < to; i++) {
        const float v = rank_value(x[i]);
        const uint32_t key = order_key(v);
        if (key > prefix) {
            candidate_v[above_at] = v;
            candidate_i[above_at++] = i;
        } else if (key == prefix && equal_rank < wanted) {
            candidate_v[above_total + equal_rank] = v;
            candidate_i[above_total + equal_rank++] = i;
        } else if (key == prefix) {
            equal_rank++;
        }
    }
    int n = 1;
    while (n < k) {
        n *= 2;
    }
    for (int i = k + tid; i < n; i += blockDim.x) {
        candidate_v[i] = -INFINITY;
        candidate_i[i] = INT_MAX;
    }
    __syncthreads();

    // 3. Bitonic sort of the n (a power of two) candidates into rank order.
    for (int size = 2; size <= n; size *= 2) {
        for (int stride = size / 2; stride > 0; stride /= 2) {
            for (int i = tid; i < n; i += blockDim.x) {
                const int j = i ^ stride;
                if (j > i) {
                    const bool forward = (i & size) == 0;
                    const bool swap = forward ? ranks_before(candidate_v[j], candidate_i[j], candidate_v[i], candidate_i[i])
                                              : ranks_before(candidate_v[i], candidate_i[i], candidate_v[j], candidate_i[j]);
                    if (swap) {
                        const float v = candidate_v[i];
                        const int idx = candidate_i[i];
                        candidate_v[i] = candidate_v[j];
                        candidate_i[i] = candidate_i[j];
                        candidate_v[j] = v;
                        candidate_i[j] = idx;
                    }
                }
            }
            __syncthreads();
        }
    }
    for (int j = tid; j < k; j += blockDim.x) {
        values[static_cast<size_t>(blockIdx.x) * k + j] = candidate_v[j];
        indices[static_cast<size_t>(blockIdx.x) * k + j] = candidate_i[j];
    }
}
