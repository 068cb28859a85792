/* shim.h: compile graphc's generated CUDA C as C++ for the CPU (the emulation harness).

   The generated .cu file is compiled unchanged with `g++ -include shim.h`: this header
   gives the CUDA keywords, built-in variables and intrinsics it uses a CPU meaning, and
   emulates a launch as the hardware runs it, so shared memory, barriers and warp
   shuffles go through the same code path as on a GPU:

   - blocks run one after another; `__shared__` variables are function statics, so one
     instance serves the block that is running;
   - every CUDA thread of a block is a fiber (ucontext) with its own stack: automatic
     variables are per thread;
   - `__syncthreads()` is a real barrier: a thread that reaches it yields until every
     thread of the block has reached it.  The scheduler always resumes the first
     runnable thread in priority order, so the first warps run as far ahead as the
     barriers let them, and it reverses the order each time the block passes a
     `__syncthreads`: a missing barrier shows up as a wrong result (a read before the
     write it needed, or a write before an earlier read) rather than hiding behind one
     fixed interleaving;
   - `__shfl_down_sync` writes the value to the warp's exchange buffer, waits at a warp
     barrier, reads the source lane's slot and waits again before the buffer is reused;
   - a block whose threads wait at barriers that can never complete (a divergent
     `__syncthreads`) is a deadlock: the launch stops and reports it.

   Fibers switch only at barriers, so atomics are plain read-modify-writes. */
#pragma once

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

/* The libm functions generated code calls (declared here: <math.h> in C++ costs more
   compile time than the program itself). */
#define GRAPHC_LIBM(name) extern "C" float name##f(float); extern "C" double name(double);
GRAPHC_LIBM(exp) GRAPHC_LIBM(log) GRAPHC_LIBM(sqrt) GRAPHC_LIBM(sin) GRAPHC_LIBM(cos)
GRAPHC_LIBM(tanh) GRAPHC_LIBM(erf) GRAPHC_LIBM(floor) GRAPHC_LIBM(fabs) GRAPHC_LIBM(log1p)
GRAPHC_LIBM(expm1)
#undef GRAPHC_LIBM
extern "C" float powf(float, float);
extern "C" double pow(double, double);
extern "C" float atan2f(float, float);
extern "C" double atan2(double, double);
extern "C" float fmodf(float, float);
extern "C" double fmod(double, double);
extern "C" float copysignf(float, float);
extern "C" double copysign(double, double);

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
        : x(x_), y(y_), z(z_) {}
};

// The vector types of vectorised loads and stores (CUDA aligns them to their size; the
// runtime's buffers are aligned so, the emulator's inputs need not be).
#define GRAPHC_VEC2(name, T) struct name { T x, y; };
#define GRAPHC_VEC4(name, T) struct name { T x, y, z, w; };
GRAPHC_VEC2(float2, float) GRAPHC_VEC4(float4, float) GRAPHC_VEC2(int2, int)
GRAPHC_VEC4(int4, int) GRAPHC_VEC2(double2, double) GRAPHC_VEC2(longlong2, long long)
GRAPHC_VEC2(uchar2, unsigned char) GRAPHC_VEC4(uchar4, unsigned char)
#undef GRAPHC_VEC2
#undef GRAPHC_VEC4

namespace graphc_emu {

constexpr unsigned kWarp = 32;
constexpr size_t kStackBytes = 256 << 10;      // mapped lazily, returned after each launch

struct Barrier {
    unsigned expected, arrived, generation;
};

struct Thread {
    ucontext_t context;
    uint3 index;
    unsigned linear;
    bool done;
    const Barrier *waiting;                    // and the generation it waits to end
    unsigned generation;
};

inline Thread *threads = nullptr;
inline char *stacks = nullptr;
inline Barrier block_barrier;
inline Barrier *warp_barriers = nullptr;
inline uint64_t (*exchange)[2] = nullptr;      // 16 bytes per thread for shuffles
inline Thread *current = nullptr;
inline ucontext_t scheduler;
inline uint3 block_index;
inline uint3 block_dim;
inline uint3 grid_dim;
inline bool forward = true;                    // the scheduler's priority order
inline void (*body)(void *) = nullptr;
inline void *body_args = nullptr;

inline void yield() { swapcontext(&current->context, &scheduler); }

/* Wait until `expected` threads have arrived; the last one to arrive goes on at once. */
inline void wait(Barrier &b) {
    if (++b.arrived == b.expected) {
        b.arrived = 0;
        ++b.generation;
        if (&b == &block_barrier) forward = !forward;
        return;
    }
    current->waiting = &b;
    current->generation = b.generation;
    yield();                                   // resumed once the generation has ended
    current->waiting = nullptr;
}

inline bool runnable(const Thread &t) {
    return !t.done && (!t.waiting || t.waiting->generation != t.generation);
}

inline void thread_main() {
    body(body_args);
    current->done = true;
}

/* Give back what `reserve` took (a process may load hundreds of these libraries). */
inline void release(unsigned n) {
    if (stacks) munmap(stacks, (size_t)n * kStackBytes);
    free(threads);
    free(warp_barriers);
    free(exchange);
    stacks = nullptr;
    threads = nullptr;
    warp_barriers = nullptr;
    exchange = nullptr;
}

/* Room for `n` threads: stacks, barriers and exchange slots. */
inline bool reserve(unsigned n) {
    void *mapped = mmap(nullptr, (size_t)n * kStackBytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    stacks = mapped == MAP_FAILED ? nullptr : (char *)mapped;
    threads = (Thread *)calloc(n, sizeof(Thread));
    warp_barriers = (Barrier *)calloc((n + kWarp - 1) / kWarp, sizeof(Barrier));
    exchange = (uint64_t (*)[2])calloc(n, sizeof(uint64_t[2]));
    return stacks && threads && warp_barriers && exchange;
}

/* Run every thread of the current block to its end; false on a deadlock. */
inline bool run_block(unsigned n) {
    block_barrier = Barrier{n, 0, 0};
    for (unsigned w = 0; w * kWarp < n; ++w) {
        const unsigned members = n - w * kWarp < kWarp ? n - w * kWarp : kWarp;
        warp_barriers[w] = Barrier{members, 0, 0};
    }
    for (unsigned t = 0; t < n; ++t) {
        Thread &th = threads[t];
        th.linear = t;
        th.index = uint3{t % block_dim.x, t / block_dim.x % block_dim.y,
                         t / (block_dim.x * block_dim.y)};
        th.done = false;
        th.waiting = nullptr;
        getcontext(&th.context);
        th.context.uc_stack.ss_sp = stacks + (size_t)t * kStackBytes;
        th.context.uc_stack.ss_size = kStackBytes;
        th.context.uc_link = &scheduler;
        makecontext(&th.context, thread_main, 0);
    }
    forward = true;
    for (unsigned remaining = n; remaining;) {
        Thread *next = nullptr;
        for (unsigned k = 0; k < n && !next; ++k) {
            Thread &th = threads[forward ? k : n - 1 - k];
            if (runnable(th)) next = &th;
        }
        if (!next) return false;               // everyone left waits: a deadlock
        current = next;
        swapcontext(&scheduler, &next->context);
        if (next->done) --remaining;
    }
    return true;
}

/* Launch `kernel(args)` on a grid of blocks; 0 when done, 1 on a deadlock, 2 when the
   threads' stacks cannot be allocated. */
inline int launch(dim3 grid, dim3 block, void (*kernel)(void *), void *args) {
    const unsigned n = block.x * block.y * block.z;
    if (n == 0 || grid.x * grid.y * grid.z == 0) return 0;
    int status = reserve(n) ? 0 : 2;
    body = kernel;
    body_args = args;
    grid_dim = uint3{grid.x, grid.y, grid.z};
    block_dim = uint3{block.x, block.y, block.z};
    for (unsigned z = 0; z < grid.z && !status; ++z)
        for (unsigned y = 0; y < grid.y && !status; ++y)
            for (unsigned x = 0; x < grid.x && !status; ++x) {
                block_index = uint3{x, y, z};
                if (!run_block(n)) status = 1;
            }
    release(n);
    return status;
}

}  // namespace graphc_emu

#define threadIdx (graphc_emu::current->index)
#define blockIdx (graphc_emu::block_index)
#define blockDim (graphc_emu::block_dim)
#define gridDim (graphc_emu::grid_dim)
#define warpSize 32

inline void __syncthreads() { graphc_emu::wait(graphc_emu::block_barrier); }

template <class T>
inline T __shfl_down_sync(unsigned /*mask*/, T value, unsigned delta, int width = 32) {
    static_assert(sizeof(T) <= 16, "a shuffled value fits an exchange slot");
    using namespace graphc_emu;
    const unsigned me = current->linear, lane = me % kWarp, warp = me / kWarp;
    memcpy(exchange[me], &value, sizeof(T));
    wait(warp_barriers[warp]);
    T out = value;
    const unsigned source = lane + delta;
    if (lane % (unsigned)width + delta < (unsigned)width &&
        source < warp_barriers[warp].expected)
        memcpy(&out, exchange[warp * kWarp + source], sizeof(T));
    wait(warp_barriers[warp]);
    return out;
}

template <class T>
inline T atomicCAS(T *address, T compare, T value) {
    const T old = *address;
    if (old == compare) *address = value;
    return old;
}

template <class T>
inline T atomicAdd(T *address, T value) {
    const T old = *address;
    *address = old + value;
    return old;
}
