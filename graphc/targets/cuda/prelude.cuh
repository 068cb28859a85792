// graphc's CUDA prelude: scalar semantics of graphc's primitives (numpy's) and the block
// reduction every reducing kernel uses.  It is pasted at the top of each generated .cu.
//
// - Integer add/sub/mul/neg wrap around like numpy's (computed unsigned: no C++ overflow).
// - maximum/minimum propagate NaN; argmax/argmin take the first NaN, else the first
//   extreme value.
// - A float -> integer cast truncates and saturates, NaN gives 0 (what the hardware's
//   cvt.rzi does; numpy leaves out-of-range casts unspecified).
// - Random numbers are graphc.ops.random's lowbias32 counter hash, bit for bit.
// - A checked index is clamped into its dimension and raises the kernel's error flag.

namespace gc {

// ---- integer arithmetic that wraps ------------------------------------------------------
__device__ __forceinline__ int add(int a, int b) { return (int)((unsigned)a + (unsigned)b); }
__device__ __forceinline__ int sub(int a, int b) { return (int)((unsigned)a - (unsigned)b); }
__device__ __forceinline__ int mul(int a, int b) { return (int)((unsigned)a * (unsigned)b); }
__device__ __forceinline__ int neg(int a) { return (int)(0u - (unsigned)a); }
__device__ __forceinline__ long long add(long long a, long long b) {
    return (long long)((unsigned long long)a + (unsigned long long)b);
}
__device__ __forceinline__ long long sub(long long a, long long b) {
    return (long long)((unsigned long long)a - (unsigned long long)b);
}
__device__ __forceinline__ long long mul(long long a, long long b) {
    return (long long)((unsigned long long)a * (unsigned long long)b);
}
__device__ __forceinline__ long long neg(long long a) {
    return (long long)(0ull - (unsigned long long)a);
}
__device__ __forceinline__ float add(float a, float b) { return a + b; }
__device__ __forceinline__ double add(double a, double b) { return a + b; }
__device__ __forceinline__ bool add(bool a, bool b) { return a || b; }
__device__ __forceinline__ float mul(float a, float b) { return a * b; }
__device__ __forceinline__ double mul(double a, double b) { return a * b; }
__device__ __forceinline__ bool mul(bool a, bool b) { return a && b; }

template <class T> __device__ __forceinline__ T iabs(T a) { return a < 0 ? neg(a) : a; }

// x ** e by squaring, wrapping; a negative exponent (numpy raises) gives the truncated
// quotient: 1 for x == 1, +-1 for x == -1, else 0.
template <class T> __device__ __forceinline__ T ipow(T x, T e) {
    if (e < 0) return x == 1 ? (T)1 : x == -1 ? ((e & 1) ? (T)-1 : (T)1) : (T)0;
    T result = 1;
    while (e) {
        if (e & 1) result = mul(result, x);
        x = mul(x, x);
        e >>= 1;
    }
    return result;
}

// ---- floored division and remainder: Python's and PyTorch's // and % -------------------
// Integers exactly; a divisor of -1 or 0 divides by 1 instead (no overflow, no trap) and
// the quotient is patched: x // -1 wraps, x // 0 and x % 0 are 0 (as numpy).  This is
// where a division-by-zero error would be raised.
template <class T> __device__ __forceinline__ T int_divisor(T b) {
    return (b == 0 || b == -1) ? (T)1 : b;
}
template <class T> __device__ __forceinline__ T floor_divide(T a, T b) {
    const T d = int_divisor(b), q = a / d, r = a % d;
    return b == -1 ? neg(a) : b == 0 ? (T)0 : (T)(q - (r != 0 && (r ^ b) < 0));
}
template <class T> __device__ __forceinline__ T remainder(T a, T b) {
    const T r = a % int_divisor(b);
    return (r != 0 && (r ^ b) < 0) ? (T)(r + b) : r;
}
// Floats as PyTorch: the remainder is fmod (exact) plus b when their signs differ (a zero
// keeps fmod's sign, x % inf is x for x >= 0 and inf below); the quotient is div_floor:
// (a - fmod) / b, one less when the signs differ, floored (rounded up past .5).
__device__ __forceinline__ float fmod_(float a, float b) { return fmodf(a, b); }
__device__ __forceinline__ double fmod_(double a, double b) { return fmod(a, b); }
__device__ __forceinline__ float floor_(float a) { return floorf(a); }
__device__ __forceinline__ double floor_(double a) { return floor(a); }
__device__ __forceinline__ float copysign_(float a, float b) { return copysignf(a, b); }
__device__ __forceinline__ double copysign_(double a, double b) { return copysign(a, b); }
template <class F> __device__ __forceinline__ bool signs_differ(F r, F b) {
    return r != 0 && ((b < 0) != (r < 0));
}
template <class F> __device__ __forceinline__ F float_remainder(F a, F b) {
    const F m = fmod_(a, b);
    return signs_differ(m, b) ? m + b : m;
}
template <class F> __device__ __forceinline__ F float_floor_divide(F a, F b) {
    if (b == 0) return a / b;
    const F m = fmod_(a, b);
    const F div = (a - m) / b - (signs_differ(m, b) ? (F)1 : (F)0);
    if (div == 0) return copysign_((F)0, a / b);
    const F fl = floor_(div);
    return div - fl > (F)0.5 ? fl + (F)1 : fl;
}
__device__ __forceinline__ float floor_divide(float a, float b) { return float_floor_divide(a, b); }
__device__ __forceinline__ double floor_divide(double a, double b) {
    return float_floor_divide(a, b);
}
__device__ __forceinline__ float remainder(float a, float b) { return float_remainder(a, b); }
__device__ __forceinline__ double remainder(double a, double b) { return float_remainder(a, b); }

// ---- maximum / minimum (NaN propagates), sign, sigmoid ----------------------------------
template <class T> __device__ __forceinline__ T maximum(T a, T b) {
    return (a != a || a > b) ? a : b;
}
template <class T> __device__ __forceinline__ T minimum(T a, T b) {
    return (a != a || a < b) ? a : b;
}
__device__ __forceinline__ bool maximum(bool a, bool b) { return a || b; }
__device__ __forceinline__ bool minimum(bool a, bool b) { return a && b; }

template <class T> __device__ __forceinline__ T sign(T x) {   // NaN stays NaN, -0 gives +0
    return x > 0 ? (T)1 : x < 0 ? (T)-1 : x + (T)0;
}
__device__ __forceinline__ int sign(int x) { return (x > 0) - (x < 0); }
__device__ __forceinline__ long long sign(long long x) { return (x > 0) - (x < 0); }

__device__ __forceinline__ float sigmoid(float x) {           // never overflows
    const float e = expf(-fabsf(x));
    return x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}
__device__ __forceinline__ double sigmoid(double x) {
    const double e = exp(-fabs(x));
    return x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

// ---- float -> integer casts: truncate, saturate, NaN -> 0 ------------------------------
template <class F> __device__ __forceinline__ int to_i32(F x) {
    return x != x ? 0 : x >= (F)2147483648.0 ? 2147483647
         : x <= (F)-2147483648.0 ? (-2147483647 - 1) : (int)x;
}
template <class F> __device__ __forceinline__ long long to_i64(F x) {
    return x != x ? 0 : x >= (F)9223372036854775808.0 ? 9223372036854775807LL
         : x <= (F)-9223372036854775808.0 ? (-9223372036854775807LL - 1) : (long long)x;
}

// ---- narrow dtypes: uint8/int8/int16 computed in int, float16/bfloat16 in float -----------
// Each op's result is wrapped or rounded back (narrow_*, round_*); buffers of float16 and
// bfloat16 hold the raw bits (unsigned short), converted on load and store with
// round-to-nearest-even, in plain integer code (no cuda_fp16.h: the CPU emulator runs it).
__device__ __forceinline__ int narrow_u8(int x) { return x & 0xFF; }
__device__ __forceinline__ int narrow_i8(int x) { return (int)(signed char)(unsigned char)(x & 0xFF); }
__device__ __forceinline__ int narrow_i16(int x) { return (int)(short)(unsigned short)(x & 0xFFFF); }
template <class F> __device__ __forceinline__ int to_u8(F x) { return narrow_u8(to_i32(x)); }
template <class F> __device__ __forceinline__ int to_i8(F x) { return narrow_i8(to_i32(x)); }
template <class F> __device__ __forceinline__ int to_i16(F x) { return narrow_i16(to_i32(x)); }
__device__ __forceinline__ unsigned float_bits(float x) { unsigned u; memcpy(&u, &x, 4); return u; }
__device__ __forceinline__ float bits_float(unsigned u) { float x; memcpy(&x, &u, 4); return x; }
__device__ __forceinline__ unsigned short float_to_f16(float x) {   // F. Giesen's fast3_rtne
    unsigned f = float_bits(x);
    const unsigned sign = f & 0x80000000u;
    f ^= sign;
    unsigned o;
    if (f >= 0x47800000u) o = f > 0x7F800000u ? 0x7E00u : 0x7C00u;
    else if (f < 0x38800000u) o = float_bits(bits_float(f) + bits_float(0x3F000000u)) - 0x3F000000u;
    else o = (f + ((unsigned)(15 - 127) << 23) + 0xFFFu + ((f >> 13) & 1u)) >> 13;
    return (unsigned short)(o | (sign >> 16));
}
__device__ __forceinline__ float f16_to_float(unsigned short h) {
    unsigned o = ((unsigned)h & 0x7FFFu) << 13;
    const unsigned exp = o & (0x7C00u << 13);
    o += (unsigned)(127 - 15) << 23;
    if (exp == (0x7C00u << 13)) o += (unsigned)(128 - 16) << 23;
    else if (exp == 0) o = float_bits(bits_float(o + (1u << 23)) - 6.103515625e-05f);
    return bits_float(o | (((unsigned)h & 0x8000u) << 16));
}
__device__ __forceinline__ unsigned short float_to_bf16(float x) {
    if (x != x) return 0x7FC0;
    const unsigned f = float_bits(x);
    return (unsigned short)((f + 0x7FFFu + ((f >> 16) & 1u)) >> 16);
}
__device__ __forceinline__ float bf16_to_float(unsigned short h) { return bits_float((unsigned)h << 16); }
__device__ __forceinline__ float round_f16(float x) { return f16_to_float(float_to_f16(x)); }
__device__ __forceinline__ float round_bf16(float x) { return bf16_to_float(float_to_bf16(x)); }

// ---- counter-based random numbers (graphc.ops.random) -----------------------------------
__device__ __forceinline__ unsigned hash32(unsigned x) {       // lowbias32
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    return x ^ (x >> 16);
}
__device__ __forceinline__ unsigned random_bits(long long seed, long long counter) {
    const unsigned long long s = (unsigned long long)seed;
    const unsigned key = hash32((unsigned)s ^ hash32((unsigned)(s >> 32)));
    return hash32((unsigned)counter ^ key);
}
__device__ __forceinline__ float uniform_f32(long long seed, long long counter) {
    return (float)(random_bits(seed, counter) >> 8) * 5.9604644775390625e-08f;   // 2**-24
}
__device__ __forceinline__ double uniform_f64(long long seed, long long counter) {
    return (double)(random_bits(seed, counter) >> 8) * 5.9604644775390625e-08;
}

// ---- indices from data ------------------------------------------------------------------
// Out of range: record {site, i} in the error record unless an earlier error is there.
__device__ __forceinline__ long long checked_index(long long i, long long size,
                                                   long long *error_flag, long long site) {
    if (i >= 0 && i < size) return i;
    if (atomicCAS((unsigned long long *)error_flag, 0ULL, (unsigned long long)site) == 0ULL)
        error_flag[1] = i;
    return i < 0 || size == 0 ? 0 : size - 1;
}
// An integer divisor: a zero records {site, 0} and becomes 1, so nothing traps.
template <class T>
__device__ __forceinline__ T nonzero(T divisor, long long *error_flag, long long site) {
    if (divisor != 0) return divisor;
    atomicCAS((unsigned long long *)error_flag, 0ULL, (unsigned long long)site);
    return 1;
}

// ---- reductions -------------------------------------------------------------------------
// An arg-reduction candidate: `at` is its position in the Reduce's flattened loops
// (-1: none yet), so ties go to the first occurrence.
template <class T> struct Arg {
    T value;
    long long at;
};

template <bool IsMax, class T> __device__ __forceinline__ bool better(T v, T best) {
    return (v != v && best == best) || (IsMax ? v > best : v < best);
}

// Fold the next candidate (at a larger position) into a thread's running best.
template <bool IsMax, class T> __device__ __forceinline__ Arg<T> arg_step(Arg<T> a, T v,
                                                                         long long at) {
    return (a.at < 0 || better<IsMax>(v, a.value)) ? Arg<T>{v, at} : a;
}

struct Sum {
    template <class T> __device__ T operator()(T a, T b) const { return add(a, b); }
};
struct Prod {
    template <class T> __device__ T operator()(T a, T b) const { return mul(a, b); }
};
struct Max {
    template <class T> __device__ T operator()(T a, T b) const { return maximum(a, b); }
};
struct Min {
    template <class T> __device__ T operator()(T a, T b) const { return minimum(a, b); }
};
template <bool IsMax> struct ArgBest {   // combines two partial results in any order
    template <class T> __device__ Arg<T> operator()(Arg<T> a, Arg<T> b) const {
        if (a.at < 0) return b;
        if (b.at < 0) return a;
        const bool first = a.at < b.at;
        const Arg<T> x = first ? a : b, y = first ? b : a;      // x came first
        return better<IsMax>(y.value, x.value) ? y : x;
    }
};

template <class T> __device__ __forceinline__ T shfl_down(T v, unsigned delta) {
    return __shfl_down_sync(0xffffffffu, v, delta);
}
__device__ __forceinline__ bool shfl_down(bool v, unsigned delta) {
    return __shfl_down_sync(0xffffffffu, (int)v, delta) != 0;
}
template <class T> __device__ __forceinline__ Arg<T> shfl_down(Arg<T> a, unsigned delta) {
    return Arg<T>{shfl_down(a.value, delta), shfl_down(a.at, delta)};
}

// Combine every thread's `v` (blockDim.x a multiple of 32, every thread calling): a tree
// of warp shuffles in each warp, the warps' results through `scratch` (__shared__,
// 33 slots), a last tree in warp 0, and the total broadcast through scratch[32].
template <class T, class Combine>
__device__ T block_reduce(T v, Combine combine, T identity, T *scratch) {
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const unsigned warps = (blockDim.x + 31) / 32;
    for (unsigned d = 16; d > 0; d /= 2) v = combine(v, shfl_down(v, d));
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? scratch[lane] : identity;
        for (unsigned d = 16; d > 0; d /= 2) v = combine(v, shfl_down(v, d));
        if (lane == 0) scratch[32] = v;
    }
    __syncthreads();
    return scratch[32];
}

}  // namespace gc
