// Causal grouped-query attention over the paged KV cache, for decode and prefill alike.
//
// A block takes one tile: up to ATT_VECTORS query vectors that share a sequence and a KV head,
// namely some consecutive token rows of one sequence (the host splits the batch into such tiles)
// times some of the query heads of one KV head. Decode tiles are one row times the heads of a
// group, so the group reads each key and value once; prefill tiles hold several rows, so each
// cached position is read once for up to ATT_VECTORS queries (flash-attention style: keys and
// values go through shared memory ATT_KV positions at a time with an online softmax, and no score
// matrix is ever stored).
//
// A row at position P sees positions 0..P, or with a sliding window (window > 0) only
// P - window + 1..P. A tile reads the union of its rows' ranges, from the earliest window start to
// the latest position, and masks per row (each row of a prompt tile has its own window start; the
// rows are consecutive positions, so the union is under window + ATT_VECTORS long). Positions
// before every window are never read, so a cache may have dropped them. With softcap > 0 a score s
// becomes softcap * tanh(s / softcap) before the softmax.
//
// Long sequences with few tiles can be split over gridDim.z blocks (flash-decoding): each split
// covers a share of the tile's range and leaves (max, sum, unnormalised output) in `partials`;
// pg_attention_combine merges them. With one split the block writes `out` directly. Each split
// computes its range from the positions on the device, so a launch shape does not depend on them.
//
// Position p of sequence s is slot block_tables[block_table_start[s] + p / block_size] * block_size
// + p % block_size; a slot holds kv_heads * head_dim floats, or halves with kv_half. head_dim is even.
#include "common.cuh"

constexpr int ATT_WARPS = 4;
constexpr int ATT_THREADS = ATT_WARPS * WARP_SIZE;
constexpr int ATT_VECTORS = 16;
constexpr int ATT_VECTORS_PER_WARP = ATT_VECTORS / ATT_WARPS;
constexpr int ATT_KV = WARP_SIZE; // positions per shared tile: one per lane when scoring
constexpr int ATT_KV_PER_WARP = ATT_KV / ATT_WARPS; // positions each warp loads into a shared tile
constexpr int ATT_MAX_HEAD_DIM = 256;
constexpr int ATT_DIMS_PER_LANE = ATT_MAX_HEAD_DIM / WARP_SIZE;
constexpr int ATT_MAX_SPLITS = 64;       // CudaBackend.MAX_SPLITS
constexpr int ATT_COMBINE_THREADS = 128; // a thread per split, at least
static_assert(ATT_COMBINE_THREADS >= ATT_MAX_SPLITS, "pg_attention_combine reads a split per thread");

__device__ __forceinline__ float2 to_float2(float2 v) { return v; }
__device__ __forceinline__ float2 to_float2(__half2 v) { return __half22float2(v); }

// Copies the keys and values of a shared tile's positions (slot_s; -1 past the end, read as zeros:
// masked weights are 0, and 0 * garbage could be NaN) into k_s and v_s. Pair is float2 or __half2
// (the cache's values, two at a time: D is even). Each warp reads ATT_KV_PER_WARP positions, its
// lanes along the head (coalesced rows), and issues every load of a pass before it converts or
// stores any: a thread keeps 2 * ATT_KV_PER_WARP loads in flight, where one at a time left the
// kernel bound by memory latency.
template <class Pair>
__device__ __forceinline__ void load_kv_tile(float* k_s, float* v_s, const int* slot_s, const void* key_cache,
                                             const void* value_cache, int kv_width, int head_offset, int D, int warp,
                                             int lane) {
    const Pair* keys = static_cast<const Pair*>(key_cache);
    const Pair* values = static_cast<const Pair*>(value_cache);
    for (int d0 = 0; d0 < D; d0 += 2 * WARP_SIZE) {
        const int d = d0 + 2 * lane;
        Pair key[ATT_KV_PER_WARP];
        Pair value[ATT_KV_PER_WARP];
#pragma unroll
        for (int r = 0; r < ATT_KV_PER_WARP; r++) {
            const int slot = slot_s[warp * ATT_KV_PER_WARP + r];
            key[r] = Pair{};
            value[r] = Pair{};
            if (slot >= 0 && d < D) {
                const size_t at = (static_cast<size_t>(slot) * kv_width + head_offset + d) / 2;
                key[r] = keys[at];
                value[r] = values[at];
            }
        }
        if (d < D) {
#pragma unroll
            for (int r = 0; r < ATT_KV_PER_WARP; r++) {
                const int j = warp * ATT_KV_PER_WARP + r;
                const float2 k = to_float2(key[r]);
                const float2 v = to_float2(value[r]);
                k_s[j * (D + 1) + d] = k.x;
                k_s[j * (D + 1) + d + 1] = k.y;
                v_s[j * D + d] = v.x;
                v_s[j * D + d + 1] = v.y;
            }
        }
    }
}

// tiles[i] = (first row, rows, sequence, unused); rows * heads_per_tile <= ATT_VECTORS.
// Dynamic shared memory: (ATT_VECTORS * D + ATT_KV * (D + 1) + ATT_KV * D) floats + ATT_KV ints.
// The minimum of 4 blocks an SM (at most 128 registers a thread) keeps ptxas from capping sm_90
// at 96 registers and spilling.
extern "C" __global__ void __launch_bounds__(ATT_THREADS, 4)
pg_attention(float* __restrict__ out, float* __restrict__ partials, const float* __restrict__ q,
             const void* __restrict__ key_cache, const void* __restrict__ value_cache,
             const int* __restrict__ positions, const int* __restrict__ block_tables,
             const int* __restrict__ block_table_start, const int4* __restrict__ tiles, int block_size, int heads,
             int kv_heads, int head_dim, float scale, int window, float softcap, int heads_per_tile,
             int splits, int kv_half) {
    extern __shared__ float smem[];
    const int D = head_dim;
    float* q_s = smem;                   // [ATT_VECTORS][D], pre-scaled
    float* k_s = q_s + ATT_VECTORS * D;  // [ATT_KV][D + 1]: the padding puts each lane's key row on other banks
    float* v_s = k_s + ATT_KV * (D + 1); // [ATT_KV][D]
    int* slot_s = reinterpret_cast<int*>(v_s + ATT_KV * D);

    const int lane = threadIdx.x % WARP_SIZE;
    const int warp = threadIdx.x / WARP_SIZE;
    const int4 tile = tiles[blockIdx.x];
    const int first_row = tile.x;
    const int rows = tile.y;
    const int group = heads / kv_heads;
    const int head_chunks = (group + heads_per_tile - 1) / heads_per_tile;
    const int kv_head = blockIdx.y / head_chunks;
    const int first_head = kv_head * group + (blockIdx.y % head_chunks) * heads_per_tile;
    const int tile_heads = min(heads_per_tile, (kv_head + 1) * group - first_head);
    const int vectors = rows * tile_heads;
    const int kv_width = kv_heads * D;
    const int* table = block_tables + block_table_start[tile.z];

    for (int i = threadIdx.x; i < vectors * D; i += ATT_THREADS) {
        const int vec = i / D;
        const int row = first_row + vec / tile_heads;
        const int head = first_head + vec % tile_heads;
        q_s[i] = q[(static_cast<size_t>(row) * heads + head) * D + i % D] * scale;
    }
    // Positions a row sees lie less than `span` before its own; INT_MAX when there is no window
    // (last - INT_MAX + 1 cannot overflow, as last >= 0).
    const int span = window > 0 ? window : INT_MAX;
    int start = INT_MAX;
    int length = 0;
    for (int r = 0; r < rows; r++) {
        const int last = positions[first_row + r];
        start = min(start, max(0, last - span + 1));
        length = max(length, last + 1);
    }
    const int per_split = ((length - start + splits - 1) / splits + ATT_KV - 1) / ATT_KV * ATT_KV;
    const int begin = start + blockIdx.z * per_split;
    const int end = min(length, begin + per_split);

    float m[ATT_VECTORS_PER_WARP];
    float l[ATT_VECTORS_PER_WARP];
    float acc[ATT_VECTORS_PER_WARP][ATT_DIMS_PER_LANE];
    int last[ATT_VECTORS_PER_WARP]; // the last position each vector may see
#pragma unroll
    for (int i = 0; i < ATT_VECTORS_PER_WARP; i++) {
        const int vec = warp + i * ATT_WARPS;
        m[i] = -INFINITY;
        l[i] = 0.0f;
        last[i] = vec < vectors ? positions[first_row + vec / tile_heads] : -1;
#pragma unroll
        for (int k = 0; k < ATT_DIMS_PER_LANE; k++) {
            acc[i][k] = 0.0f;
        }
    }

    for (int p0 = begin; p0 < end; p0 += ATT_KV) {
        __syncthreads(); // the previous tile is consumed (and q_s is written, on the first pass)
        if (threadIdx.x < ATT_KV) {
            const int p = p0 + threadIdx.x;
            slot_s[threadIdx.x] = p < end ? table[p / block_size] * block_size + p % block_size : -1;
        }
        __syncthreads();
        if (kv_half) {
            load_kv_tile<__half2>(k_s, v_s, slot_s, key_cache, value_cache, kv_width, kv_head * D, D, warp, lane);
        } else {
            load_kv_tile<float2>(k_s, v_s, slot_s, key_cache, value_cache, kv_width, kv_head * D, D, warp, lane);
        }
        __syncthreads();

        const int p = p0 + lane;
#pragma unroll
        for (int i = 0; i < ATT_VECTORS_PER_WARP; i++) {
            const int vec = warp + i * ATT_WARPS;
            if (vec >= vectors) {
                continue; // the same for the whole warp
            }
            float s = -INFINITY;
            if (p < end && p <= last[i] && last[i] - p < span) {
                const float* qv = q_s + vec * D;
                const float* kv = k_s + lane * (D + 1);
                float dot = 0.0f;
#pragma unroll 8
                for (int d = 0; d < D; d++) {
                    dot += qv[d] * kv[d];
                }
                s = softcap > 0.0f ? softcap * tanhf(dot / softcap) : dot;
            }
            const float tile_max = warp_max(s);
            if (tile_max == -INFINITY) {
                continue; // nothing in this tile is visible to this vector
            }
            const float new_m = fmaxf(m[i], tile_max);
            const float correction = expf(m[i] - new_m); // 0 on the first visible tile
            const float weight = expf(s - new_m);        // 0 for masked positions
            l[i] = l[i] * correction + warp_sum(weight);
            m[i] = new_m;
#pragma unroll
            for (int k = 0; k < ATT_DIMS_PER_LANE; k++) {
                acc[i][k] *= correction;
            }
            for (int j = 0; j < ATT_KV; j++) {
                const float wj = __shfl_sync(FULL_MASK, weight, j);
#pragma unroll
                for (int k = 0; k < ATT_DIMS_PER_LANE; k++) {
                    const int d = k * WARP_SIZE + lane;
                    if (d < D) {
                        acc[i][k] += wj * v_s[j * D + d];
                    }
                }
            }
        }
    }

#pragma unroll
    for (int i = 0; i < ATT_VECTORS_PER_WARP; i++) {
        const int vec = warp + i * ATT_WARPS;
        if (vec >= vectors) {
            continue;
        }
        const size_t item = static_cast<size_t>(first_row + vec / tile_heads) * heads + first_head + vec % tile_heads;
        if (splits == 1) {
#pragma unroll
            for (int k = 0; k < ATT_DIMS_PER_LANE; k++) {
                const int d = k * WARP_SIZE + lane;
                if (d < D) {
                    out[item * D + d] = acc[i][k] / l[i];
                }
            }
        } else {
            float* part = partials + (item * splits + blockIdx.z) * (D + 2);
            if (lane == 0) {
                part[0] = m[i];
                part[1] = l[i];
            }
#pragma unroll
            for (int k = 0; k < ATT_DIMS_PER_LANE; k++) {
                const int d = k * WARP_SIZE + lane;
                if (d < D) {
                    part[2 + d] = acc[i][k];
                }
            }
        }
    }
}

// Merges the splits of pg_attention: one block of ATT_COMBINE_THREADS per (row, head) item.
// Some split holds the row's own position, which it always sees, so the overall max is finite;
// splits where the row sees nothing (empty, or before its window) weigh exp(-inf) = 0. Thread s
// reads split s's max and sum (the block reduces them), then each value sums the splits with
// their weights from shared memory, several loads in flight. (One thread walking the splits'
// maxes, sums and values one load at a time cost ~12 of a 29 us layer for one sequence at 1024
// positions on an H200.)
extern "C" __global__ void __launch_bounds__(ATT_COMBINE_THREADS)
pg_attention_combine(float* __restrict__ out, const float* __restrict__ partials, int head_dim, int splits) {
    __shared__ float weight_s[ATT_MAX_SPLITS];
    __shared__ float max_scratch[WARP_SIZE];
    __shared__ float sum_scratch[WARP_SIZE];
    const size_t item = blockIdx.x;
    const int stride = head_dim + 2;
    const float* part = partials + item * splits * stride;
    const int s = threadIdx.x;
    const float m_s = s < splits ? part[s * stride] : -INFINITY;
    const float l_s = s < splits ? part[s * stride + 1] : 0.0f;
    const float m = block_max(m_s, max_scratch);
    const float e = s < splits ? expf(m_s - m) : 0.0f;
    const float l = block_sum(l_s * e, sum_scratch);
    if (s < splits) {
        weight_s[s] = e / l;
    }
    __syncthreads();
    for (int d = threadIdx.x; d < head_dim; d += ATT_COMBINE_THREADS) {
        float o = 0.0f;
#pragma unroll 8
        for (int t = 0; t < splits; t++) {
            o += part[t * stride + 2 + d] * weight_s[t];
        }
        out[item * head_dim + d] = o;
    }
}
