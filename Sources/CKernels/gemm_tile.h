// Shared by conv_gemm.c and its bf16 twin conv_gemm_bf16.c: the CPU checks, and how a register tile
// of rows x 32 float accumulators starts (from the residual or partial sums, or zero) and leaves
// (bias, ReLU, masked stores). `rows` is a constant at every call, so the loops unroll and, once
// inlined, the accumulator arrays live in registers.
#ifndef SIGNTRANSFER_GEMM_TILE_H
#define SIGNTRANSFER_GEMM_TILE_H

#include <stdatomic.h>

// A CPU check asked from many threads at once: the first callers compute it (all the same value)
// and it is remembered; an atomic, so that their race is not a data race.
static inline int st_remember(_Atomic int *state, int (*detect)(void)) {
    int known = atomic_load_explicit(state, memory_order_relaxed);
    if (known < 0) {
        known = detect();
        atomic_store_explicit(state, known, memory_order_relaxed);
    }
    return known;
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <stddef.h>

// Whether the CPU and the OS run AVX-512F: OSXSAVE, then XMM, YMM, opmask and all of ZMM saved, then AVX512F.
static int st_detect_avx512f(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6) != 0xE6) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 16) & 1;
}

#define ST_TILE_INLINE __attribute__((target("avx512f"), always_inline)) static inline

ST_TILE_INLINE void st_tile_begin(const int rows, __m512 *x0, __m512 *x1, const float *source, size_t ldc, __mmask16 left, __mmask16 right) {
    _Pragma("clang loop unroll(full)") for (int r = 0; r < rows; r++) {
        if (source) {
            x0[r] = _mm512_maskz_loadu_ps(left, source + r * ldc);
            x1[r] = _mm512_maskz_loadu_ps(right, source + r * ldc + 16);
        } else {
            x0[r] = _mm512_setzero_ps();
            x1[r] = _mm512_setzero_ps();
        }
    }
}

ST_TILE_INLINE void st_tile_end(const int rows, __m512 *x0, __m512 *x1, float *c, size_t ldc, __mmask16 left, __mmask16 right,
                                const float *bias, int relu) {
    if (bias) {
        __m512 bias0 = _mm512_maskz_loadu_ps(left, bias), bias1 = _mm512_maskz_loadu_ps(right, bias + 16);
        _Pragma("clang loop unroll(full)") for (int r = 0; r < rows; r++) {
            x0[r] = _mm512_add_ps(x0[r], bias0);
            x1[r] = _mm512_add_ps(x1[r], bias1);
        }
    }
    if (relu) {
        __m512 zero = _mm512_setzero_ps();
        _Pragma("clang loop unroll(full)") for (int r = 0; r < rows; r++) {
            x0[r] = _mm512_max_ps(x0[r], zero);
            x1[r] = _mm512_max_ps(x1[r], zero);
        }
    }
    _Pragma("clang loop unroll(full)") for (int r = 0; r < rows; r++) {
        _mm512_mask_storeu_ps(c + r * ldc, left, x0[r]);
        _mm512_mask_storeu_ps(c + r * ldc + 16, right, x1[r]);
    }
}

// The column masks of a tile `width` columns wide (at most 32 used).
#define ST_TILE_MASKS(width, left, right) \
    __mmask16 left = (width) >= 16 ? 0xFFFF : (__mmask16)((1u << (width)) - 1); \
    __mmask16 right = (width) >= 32 ? 0xFFFF : (width) <= 16 ? 0 : (__mmask16)((1u << ((width) - 16)) - 1);
#endif

#endif
