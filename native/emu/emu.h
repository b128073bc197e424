// A tiny CUDA emulator for testing the kernels' logic on a machine without a GPU (see run.sh).
// Every CUDA thread of a block is a fiber (ucontext) on one OS thread; __syncthreads and the warp
// shuffles are real barriers between those fibers, so a kernel that races, indexes out of its
// shared memory layout or mixes up lanes gives wrong answers here as on a GPU. Blocks run one
// after another, so block-local `__shared__` variables can be plain statics.
//
// Force-included (g++ -include emu.h) before a kernel source whose `extern __shared__ T name[];`
// run.sh has rewritten to `T* name = (T*) emu::dynamic_shared();`. Not a general emulator: it has
// what Peregrine's kernels use, and one-dimensional blocks.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>

#undef __global__
#undef __device__
#undef __forceinline__
#undef __shared__
#undef __launch_bounds__
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

namespace emu {
struct Index {
    unsigned x, y, z;
};

Index thread_index();
Index block_index();
Index block_dim();
Index grid_dim();
void sync_block();
int lane();
uint64_t exchange(uint64_t bits, int source_lane);
void* dynamic_shared();

// Runs `body` as every thread of every block of a grid; blockDim.x = threads, a multiple of 32.
void launch(Index grid, unsigned threads, const std::function<void()>& body);

template <class T>
T shuffle(T v, int source_lane) {
    static_assert(sizeof(T) <= 8, "shuffled values are at most 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    bits = exchange(bits, source_lane);
    T r;
    std::memcpy(&r, &bits, sizeof(T));
    return r;
}
} // namespace emu

#define threadIdx (emu::thread_index())
#define blockIdx (emu::block_index())
#define blockDim (emu::block_dim())
#define gridDim (emu::grid_dim())

inline void __syncthreads() { emu::sync_block(); }

template <class T>
T __shfl_xor_sync(unsigned, T v, int mask) { return emu::shuffle(v, emu::lane() ^ mask); }
template <class T>
T __shfl_sync(unsigned, T v, int source) { return emu::shuffle(v, source); }
template <class T>
T __shfl_up_sync(unsigned, T v, unsigned delta) {
    int l = emu::lane();
    return emu::shuffle(v, l >= static_cast<int>(delta) ? l - static_cast<int>(delta) : l);
}

template <class T>
T __ldg(const T* p) { return *p; }

inline unsigned atomicAdd(unsigned* p, unsigned v) { // fibers never interleave inside a call
    unsigned old = *p;
    *p = old + v;
    return old;
}

inline float __uint_as_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
// Byte i of the result is byte (s >> 4i) & 7 of the 8 bytes y:x (the sign-replicating mode is not emulated).
inline uint32_t __byte_perm(uint32_t x, uint32_t y, uint32_t s) {
    const uint64_t bytes = static_cast<uint64_t>(y) << 32 | x;
    uint32_t r = 0;
    for (int i = 0; i < 4; i++) {
        r |= static_cast<uint32_t>((bytes >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
    }
    return r;
}
inline uint32_t __float_as_uint(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
using std::isnan; // CUDA's math functions are in the global namespace
