// The fiber scheduler behind emu.h. Fibers switch stacks with a few instructions (below) rather
// than swapcontext, which makes a system call per switch: a warp shuffle is 64 switches.
#include "emu.h"

#include <cstdio>
#include <cstdlib>
#include <vector>

// emu_switch(&save, load): saves the callee-saved registers on the current stack, stores the stack
// pointer in *save, switches to the stack `load` and restores what a previous switch saved there.
extern "C" void emu_switch(void** save, void* load);
asm(R"(
    .text
    .globl emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
    .section .note.GNU-stack, "", @progbits
    .text
)");

namespace emu {
namespace {
constexpr size_t STACK_BYTES = 64 * 1024;
constexpr int WARP = 32;

struct Fiber {
    void* stack_pointer = nullptr;
    bool done = false;
};

struct Barrier {
    int arrived = 0;
    unsigned generation = 0;
};

void* scheduler = nullptr;
std::vector<Fiber> fibers;
std::vector<char> stacks;
std::vector<Barrier> warp_barriers;
std::vector<uint64_t> exchange_slots;
std::vector<int> warp_alive;
Barrier block_barrier;
int block_alive = 0;
unsigned long progress = 0; // arrivals and exits: a round without any is a deadlock
int current = 0;
Index grid_{1, 1, 1};
Index block_{0, 0, 0};
unsigned threads_ = 0;
const std::function<void()>* body_ = nullptr;
alignas(16) char shared_memory[256 * 1024];

void yield() { emu_switch(&fibers[current].stack_pointer, scheduler); }

// Waits until `alive` fibers have arrived at `b`; the last one to arrive releases the others.
void wait(Barrier& b, int alive) {
    progress++;
    unsigned generation = b.generation;
    if (++b.arrived == alive) {
        b.arrived = 0;
        b.generation++;
        return;
    }
    while (b.generation == generation) {
        yield();
    }
}

void finish_fiber() {
    progress++;
    fibers[current].done = true;
    int w = current / WARP;
    // A finished thread no longer counts at barriers (as on Volta and newer).
    if (--block_alive > 0 && block_barrier.arrived == block_alive) {
        block_barrier.arrived = 0;
        block_barrier.generation++;
    }
    if (--warp_alive[w] > 0 && warp_barriers[w].arrived == warp_alive[w]) {
        warp_barriers[w].arrived = 0;
        warp_barriers[w].generation++;
    }
}

[[noreturn]] void entry() {
    (*body_)();
    finish_fiber();
    emu_switch(&fibers[current].stack_pointer, scheduler);
    std::abort(); // a finished fiber is never resumed
}

// A new fiber's stack as emu_switch leaves one: six saved registers, then `entry` to return to,
// then a fake return address so that `entry` starts with the stack aligned as after a call.
void* initial_stack(char* base) {
    auto* top = reinterpret_cast<uintptr_t*>(reinterpret_cast<uintptr_t>(base + STACK_BYTES) & ~uintptr_t{15});
    *--top = 0;
    *--top = reinterpret_cast<uintptr_t>(&entry);
    for (int i = 0; i < 6; i++) {
        *--top = 0;
    }
    return top;
}
} // namespace

Index thread_index() { return Index{static_cast<unsigned>(current), 0, 0}; }
Index block_index() { return block_; }
Index block_dim() { return Index{threads_, 1, 1}; }
Index grid_dim() { return grid_; }
int lane() { return current % WARP; }
void* dynamic_shared() { return shared_memory; }

void sync_block() { wait(block_barrier, block_alive); }

uint64_t exchange(uint64_t bits, int source_lane) {
    int w = current / WARP;
    if (warp_alive[w] != WARP) {
        std::fprintf(stderr, "emu: a shuffle in a warp with exited threads\n");
        std::abort();
    }
    exchange_slots[current] = bits;
    wait(warp_barriers[w], WARP);
    uint64_t r = exchange_slots[w * WARP + source_lane];
    wait(warp_barriers[w], WARP); // nobody overwrites a slot before everyone has read
    return r;
}

void launch(Index grid, unsigned threads, const std::function<void()>& body) {
    if (threads == 0 || threads % WARP != 0 || threads > 1024) {
        std::fprintf(stderr, "emu: blocks of %u threads are not supported\n", threads);
        std::abort();
    }
    grid_ = grid;
    threads_ = threads;
    body_ = &body;
    fibers.assign(threads, Fiber{});
    stacks.resize(static_cast<size_t>(threads) * STACK_BYTES);
    for (unsigned z = 0; z < grid.z; z++) {
        for (unsigned y = 0; y < grid.y; y++) {
            for (unsigned x = 0; x < grid.x; x++) {
                block_ = Index{x, y, z};
                block_barrier = Barrier{};
                block_alive = static_cast<int>(threads);
                warp_barriers.assign(threads / WARP, Barrier{});
                warp_alive.assign(threads / WARP, WARP);
                exchange_slots.assign(threads, 0);
                for (unsigned t = 0; t < threads; t++) {
                    fibers[t].done = false;
                    fibers[t].stack_pointer = initial_stack(stacks.data() + static_cast<size_t>(t) * STACK_BYTES);
                }
                // Round-robin until every thread of the block has finished.
                for (int remaining = static_cast<int>(threads); remaining > 0;) {
                    unsigned long before = progress;
                    remaining = 0;
                    for (unsigned t = 0; t < threads; t++) {
                        if (!fibers[t].done) {
                            current = static_cast<int>(t);
                            emu_switch(&scheduler, fibers[t].stack_pointer);
                            remaining += fibers[t].done ? 0 : 1;
                        }
                    }
                    if (remaining > 0 && progress == before) {
                        std::fprintf(stderr, "emu: deadlock in block (%u, %u, %u): threads wait at barriers that "
                                     "the others never reach\n", x, y, z);
                        std::abort();
                    }
                }
            }
        }
    }
}
} // namespace emu
