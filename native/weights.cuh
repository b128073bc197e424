// How weight matrices are laid out on the device, and how 16 bytes of each type become floats.
//
// Row r of a matrix starts at data + r * row_stride, and row_stride is a multiple of 16 so every
// 16-byte chunk of a row can be loaded with one vector load. Plain types (F32, F16, BF16) keep
// ggml's element encoding, rows padded with zeros up to the stride. Quantised types (Q8_0, Q4_0)
// are split at upload: the quants of a row are contiguous (32 bytes per Q8_0 block, 16 per Q4_0
// block, so rows stay 16-byte aligned) and the f16 block scales sit in their own array,
// scales[r * columns / 32 + block]. ggml's 34- and 18-byte blocks are only 2-byte aligned.
#pragma once

#include "common.cuh"

struct WeightRef {
    const uint8_t* data;
    const __half* scales; // quantised types only
    int row_stride;       // bytes
    int columns;          // values per row
};

// Each type below decodes one 16-byte chunk into VALUES floats, in the order of the row.
// CHUNKS_PER_BLOCK says how many chunks share one scale (0: the type has no scales).

struct F32 {
    static constexpr int VALUES = 4;
    static constexpr int CHUNKS_PER_BLOCK = 0;
    __device__ __forceinline__ static void decode(uint4 raw, float, float (&v)[VALUES]) {
        v[0] = __uint_as_float(raw.x);
        v[1] = __uint_as_float(raw.y);
        v[2] = __uint_as_float(raw.z);
        v[3] = __uint_as_float(raw.w);
    }
};

struct F16 {
    static constexpr int VALUES = 8;
    static constexpr int CHUNKS_PER_BLOCK = 0;
    __device__ __forceinline__ static void decode(uint4 raw, float, float (&v)[VALUES]) {
        const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[2 * i] = __half2float(__ushort_as_half(static_cast<unsigned short>(words[i] & 0xffffu)));
            v[2 * i + 1] = __half2float(__ushort_as_half(static_cast<unsigned short>(words[i] >> 16)));
        }
    }
};

struct BF16 {
    static constexpr int VALUES = 8;
    static constexpr int CHUNKS_PER_BLOCK = 0;
    // A bf16 is the top half of a float: shifting is the whole conversion.
    __device__ __forceinline__ static void decode(uint4 raw, float, float (&v)[VALUES]) {
        const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[2 * i] = __uint_as_float(words[i] << 16);
            v[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
        }
    }
};

// Q8_0: value = d * q, q a signed byte; a 32-value block is two chunks.
struct Q8_0 {
    static constexpr int VALUES = 16;
    static constexpr int CHUNKS_PER_BLOCK = 2;
    __device__ __forceinline__ static void decode(uint4 raw, float d, float (&v)[VALUES]) {
        const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
#pragma unroll
            for (int b = 0; b < 4; b++) {
                v[4 * i + b] = d * static_cast<float>(static_cast<int8_t>(words[i] >> (8 * b)));
            }
        }
    }
};

// Q4_0: value = d * (nibble - 8); byte j of a block holds value j (low nibble) and value j + 16
// (high nibble), so one chunk is one whole block.
struct Q4_0 {
    static constexpr int VALUES = 32;
    static constexpr int CHUNKS_PER_BLOCK = 1;
    __device__ __forceinline__ static void decode(uint4 raw, float d, float (&v)[VALUES]) {
        const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
#pragma unroll
            for (int b = 0; b < 4; b++) {
                const uint32_t byte = (words[i] >> (8 * b)) & 0xffu;
                v[4 * i + b] = d * static_cast<float>(static_cast<int>(byte & 0xfu) - 8);
                v[4 * i + b + 16] = d * static_cast<float>(static_cast<int>(byte >> 4) - 8);
            }
        }
    }
};

// The 16 bytes of chunk `chunk` of row `row`, through the read-only data cache.
__device__ __forceinline__ uint4 load_chunk(const WeightRef& w, int row, int chunk) {
    return __ldg(reinterpret_cast<const uint4*>(w.data + static_cast<size_t>(row) * w.row_stride) + chunk);
}

template <class T>
__device__ __forceinline__ float chunk_scale(const WeightRef& w, int row, int chunk) {
    if constexpr (T::CHUNKS_PER_BLOCK == 0) {
        return 1.0f;
    } else {
        const size_t block = static_cast<size_t>(row) * (w.columns / 32) + chunk / T::CHUNKS_PER_BLOCK;
        return __half2float(w.scales[block]);
    }
}

template <class T>
__device__ __forceinline__ void decode_chunk(const WeightRef& w, int row, int chunk, float (&v)[T::VALUES]) {
    T::decode(load_chunk(w, row, chunk), chunk_scale<T>(w, row, chunk), v);
}

// Instantiates `macro(Type, suffix)` once per weight type, for the extern "C" entry points.
#define PG_FOR_EACH_WEIGHT_TYPE(macro) \
    macro(F32, f32)                    \
    macro(F16, f16)                    \
    macro(BF16, bf16)                  \
    macro(Q8_0, q8_0)                  \
    macro(Q4_0, q4_0)
