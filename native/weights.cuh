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

// Each type below decodes one 16-byte chunk, in slices of 4 values: slice s holds the chunk's
// values 4s .. 4s+3 in the order of the row, unscaled (quantised types give their integers).
// VALUES per chunk, SLICES = VALUES / 4; CHUNKS_PER_BLOCK says how many chunks share one scale
// (0: the type has no scales). Slices let a product load 4 values of x once for several rows.
//
// Integers become floats without an int-to-float conversion, a quarter-rate instruction that
// limited the quantised products: a byte b placed in the low mantissa bits of 2^23 gives the float
// 2^23 + b exactly, and one subtraction removes 2^23 and the type's offset.
__device__ __forceinline__ float byte_as_float(uint32_t word, int byte, float offset) {
    return __uint_as_float(__byte_perm(word, 0x4B000000u, 0x7540u | static_cast<uint32_t>(byte))) - offset;
}

__device__ __forceinline__ uint32_t word_of(const uint4& raw, int i) {
    return i == 0 ? raw.x : i == 1 ? raw.y : i == 2 ? raw.z : raw.w;
}

struct F32 {
    static constexpr int VALUES = 4;
    static constexpr int SLICES = 1;
    static constexpr int CHUNKS_PER_BLOCK = 0;
    __device__ __forceinline__ static float4 slice(const uint4& raw, int) {
        return make_float4(__uint_as_float(raw.x), __uint_as_float(raw.y), __uint_as_float(raw.z), __uint_as_float(raw.w));
    }
};

struct F16 {
    static constexpr int VALUES = 8;
    static constexpr int SLICES = 2;
    static constexpr int CHUNKS_PER_BLOCK = 0;
    __device__ __forceinline__ static float4 slice(const uint4& raw, int s) {
        const uint32_t words[2] = {s == 0 ? raw.x : raw.z, s == 0 ? raw.y : raw.w};
        const float2 a = __half22float2(reinterpret_cast<const __half2*>(words)[0]);
        const float2 b = __half22float2(reinterpret_cast<const __half2*>(words)[1]);
        return make_float4(a.x, a.y, b.x, b.y);
    }
};

struct BF16 {
    static constexpr int VALUES = 8;
    static constexpr int SLICES = 2;
    static constexpr int CHUNKS_PER_BLOCK = 0;
    // A bf16 is the top half of a float: shifting is the whole conversion.
    __device__ __forceinline__ static float4 slice(const uint4& raw, int s) {
        const uint32_t a = s == 0 ? raw.x : raw.z;
        const uint32_t b = s == 0 ? raw.y : raw.w;
        return make_float4(__uint_as_float(a << 16), __uint_as_float(a & 0xffff0000u), __uint_as_float(b << 16),
                           __uint_as_float(b & 0xffff0000u));
    }
};

// Q8_0: value = d * q, q a signed byte; a 32-value block is two chunks.
struct Q8_0 {
    static constexpr int VALUES = 16;
    static constexpr int SLICES = 4;
    static constexpr int CHUNKS_PER_BLOCK = 2;
    __device__ __forceinline__ static float4 slice(const uint4& raw, int s) {
        const uint32_t w = word_of(raw, s) ^ 0x80808080u; // signed bytes to 0..255, offset 128
        constexpr float offset = 8388608.0f + 128.0f;
        return make_float4(byte_as_float(w, 0, offset), byte_as_float(w, 1, offset), byte_as_float(w, 2, offset),
                           byte_as_float(w, 3, offset));
    }
};

// Q4_0: value = d * (nibble - 8); byte j of a block holds value j (low nibble) and value j + 16
// (high nibble), so one chunk is one whole block: slices 0-3 are the low nibbles of words 0-3,
// slices 4-7 their high nibbles.
struct Q4_0 {
    static constexpr int VALUES = 32;
    static constexpr int SLICES = 8;
    static constexpr int CHUNKS_PER_BLOCK = 1;
    __device__ __forceinline__ static float4 slice(const uint4& raw, int s) {
        const uint32_t w = ((word_of(raw, s % 4) >> (s / 4 * 4)) & 0x0f0f0f0fu);
        constexpr float offset = 8388608.0f + 8.0f;
        return make_float4(byte_as_float(w, 0, offset), byte_as_float(w, 1, offset), byte_as_float(w, 2, offset),
                           byte_as_float(w, 3, offset));
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

// Slice s of a chunk, scaled.
template <class T>
__device__ __forceinline__ float4 scaled_slice(const uint4& raw, int s, float scale) {
    float4 v = T::slice(raw, s);
    if constexpr (T::CHUNKS_PER_BLOCK != 0) {
        v.x *= scale;
        v.y *= scale;
        v.z *= scale;
        v.w *= scale;
    }
    return v;
}

// The VALUES values of chunk `chunk` of row `row`, scaled.
template <class T>
__device__ __forceinline__ void decode_chunk(const WeightRef& w, int row, int chunk, float (&v)[T::VALUES]) {
    const uint4 raw = load_chunk(w, row, chunk);
    const float scale = chunk_scale<T>(w, row, chunk);
#pragma unroll
    for (int s = 0; s < T::SLICES; s++) {
        const float4 q = scaled_slice<T>(raw, s, scale);
        v[4 * s] = q.x;
        v[4 * s + 1] = q.y;
        v[4 * s + 2] = q.z;
        v[4 * s + 3] = q.w;
    }
}

// Instantiates `macro(Type, suffix)` once per weight type, for the extern "C" entry points.
#define PG_FOR_EACH_WEIGHT_TYPE(macro) \
    macro(F32, f32)                    \
    macro(F16, f16)                    \
    macro(BF16, bf16)                  \
    macro(Q8_0, q8_0)                  \
    macro(Q4_0, q4_0)
