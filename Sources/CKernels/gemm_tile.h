// Shared by conv_gemm.c and its bf16 twin conv_gemm_bf16.c: the CPU checks, and how a register tile
// of rows x 32 float accumulators starts (from the residual or partial sums, or zero) and leaves
// (bias, ReLU, masked stores). `rows` is a constant at every call, so the loops unroll and, once
// inlined, the accumulator arrays live in registers.
#ifndef SIGNTRANSFER_GEMM_TILE_H
#define SIGNTRANSFER_GEMM_TILE_H

#include <stdatomic.h>

// Our x86 kernels are built on x86-64 only, and can be left out there too (`swift build -Xcc
// -DSIGNTRANSFER_NO_X86_KERNELS`) to check the build and the tests of a CPU without them: OpenBLAS
// for the convolutions, the portable fixed-order product for the head.
#if defined(__x86_64__) && !defined(SIGNTRANSFER_NO_X86_KERNELS)
#define ST_X86 1
#else
#define ST_X86 0
#endif

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

#include <stddef.h>

// Rows m0 ..< m0 + rows, columns k0 ..< k0 + kc of op(A) copied into strip[i * stride + r], where
// op(A)[r][i] is a[r * lda + i], or a[i * lda + r] when `transposed`: the general product's strip,
// in the order its tiles read it (for a transposed A the reads run along A's rows).
static inline void st_copy_strip(const float *a, size_t lda, int transposed, int m0, int k0, int rows, int kc, int stride, float *strip) {
    if (transposed) {
        for (int i = 0; i < kc; i++) {
            const float *line = a + (size_t)(k0 + i) * lda + m0;
            for (int r = 0; r < rows; r++) strip[i * stride + r] = line[r];
        }
    } else {
        for (int r = 0; r < rows; r++) {
            const float *line = a + (size_t)(m0 + r) * lda + k0;
            for (int i = 0; i < kc; i++) strip[i * stride + r] = line[i];
        }
    }
}

// Packs B[k x n], B[i][j] = b[i * rowStride + j * columnStride], in panels `panel` columns wide:
// panel p holds columns p*panel ..< (p+1)*panel as k rows of `panel` contiguous floats (the last
// panel zero-padded), so a tile reads its sliver of B as one run.
static inline void st_pack_panels(int panel, const float *b, size_t rowStride, size_t columnStride, int k, int n, float *packed) {
    for (int column = 0; column < n; column += panel) {
        float *out = packed + (size_t)column * k;
        int width = n - column < panel ? n - column : panel;
        if (columnStride == 1) {
            for (int i = 0; i < k; i++) {
                const float *source = b + (size_t)i * rowStride + column;
                int j = 0;
                for (; j < width; j++) out[i * panel + j] = source[j];
                for (; j < panel; j++) out[i * panel + j] = 0;
            }
        } else {
            // B given transposed: each of its columns is a run in memory, read in one pass.
            for (int j = 0; j < panel; j++) {
                const float *source = b + (size_t)(column + j) * columnStride;
                for (int i = 0; i < k; i++) out[i * panel + j] = j < width ? source[(size_t)i * rowStride] : 0;
            }
        }
    }
}

#if ST_X86
#include <cpuid.h>
#include <immintrin.h>
#include "activation.h"
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

// Whether the CPU and the OS run AVX2 with FMA: OSXSAVE, AVX and FMA, XMM and YMM state saved, then AVX2.
static int st_detect_avx2_fma(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27)) || !(c & (1u << 28)) || !(c & (1u << 12))) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0x6) != 0x6) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 5) & 1;
}

// Before a tile runs: the next strip's `rows` rows of C from `m0`, `lines` cache lines each from
// `column`, and of its starting sums where they are not C itself (the residual, on the first
// inner-dimension block, when it is not computed in place), fetched while the tile computes: its
// first FMAs wait on them otherwise (1.05x over ResNet50's GEMMs on AVX2; 1.08x on conv2's
// expansions on AVX-512). Not for short inner dimensions (MobileNetV2's 16-32), where the prefetches
// cost more than the tile waits (1.05x without).
static inline void st_prefetch_strip(int kc, const float *c, const float *residual, int first, int m0, int rows, size_t ldc,
                                     int column, int lines) {
    if (kc < 64) return;
    const float *sums = first && residual != c ? residual : 0;
    for (int r = 0; r < rows; r++) {
        size_t at = (size_t)(m0 + r) * ldc + (size_t)column;
        for (int line = 0; line < lines; line++) {
            _mm_prefetch((const char *)(c + at + 16 * line), _MM_HINT_T0);
            if (sums) _mm_prefetch((const char *)(sums + at + 16 * line), _MM_HINT_T0);
        }
    }
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
    if (relu == ST_ACT_RELU) {
        __m512 zero = _mm512_setzero_ps();
        _Pragma("clang loop unroll(full)") for (int r = 0; r < rows; r++) {
            x0[r] = _mm512_max_ps(x0[r], zero);
            x1[r] = _mm512_max_ps(x1[r], zero);
        }
    } else if (relu) {
        // The mobile backbones' activations (ReLU6, swish), as the depthwise kernel applies them.
        _Pragma("clang loop unroll(full)") for (int r = 0; r < rows; r++) {
            x0[r] = st_activate16(x0[r], relu);
            x1[r] = st_activate16(x1[r], relu);
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

// The AVX2 twin's tile: rows x 16 float accumulators in two ymm registers a row. A tile narrower
// than 16 columns loads and stores through lane masks (AVX2 has no mask registers: a lane is on
// when its 32-bit mask word is negative); a full one uses plain loads and stores, since masked
// stores are slow on some of the CPUs this kernel is for (Zen 2 and 3).
#define ST_TILE2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

// Lanes 0 ..< `width` on (width from 0 to 8).
ST_TILE2_INLINE __m256i st_lanes(int width) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(width), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

ST_TILE2_INLINE void st_tile2_begin(const int rows, __m256 *x0, __m256 *x1, const float *source, size_t ldc, int width) {
    if (!source) {
        _Pragma("clang loop unroll(full)") for (int r = 0; r < rows; r++) x0[r] = x1[r] = _mm256_setzero_ps();
    } else if (width >= 16) {
        _Pragma("clang loop unroll(full)") for (int r = 0; r < rows; r++) {
            x0[r] = _mm256_loadu_ps(source + r * ldc);
            x1[r] = _mm256_loadu_ps(source + r * ldc + 8);
        }
    } else {
        __m256i left = st_lanes(width), right = st_lanes(width - 8);
        _Pragma("clang loop unroll(full)") for (int r = 0; r < rows; r++) {
            x0[r] = _mm256_maskload_ps(source + r * ldc, left);
            x1[r] = _mm256_maskload_ps(source + r * ldc + 8, right);
        }
    }
}

ST_TILE2_INLINE void st_tile2_end(const int rows, __m256 *x0, __m256 *x1, float *c, size_t ldc, int width, const float *bias, int relu) {
    __m256i left = st_lanes(width), right = st_lanes(width - 8);
    if (bias) {
        __m256 bias0 = _mm256_maskload_ps(bias, left), bias1 = _mm256_maskload_ps(bias + 8, right);
        _Pragma("clang loop unroll(full)") for (int r = 0; r < rows; r++) {
            x0[r] = _mm256_add_ps(x0[r], bias0);
            x1[r] = _mm256_add_ps(x1[r], bias1);
        }
    }
    if (relu == ST_ACT_RELU) {
        // max(x, 0) with x first, as _mm512_max_ps in the AVX-512 tile: the same value for every input.
        __m256 zero = _mm256_setzero_ps();
        _Pragma("clang loop unroll(full)") for (int r = 0; r < rows; r++) {
            x0[r] = _mm256_max_ps(x0[r], zero);
            x1[r] = _mm256_max_ps(x1[r], zero);
        }
    } else if (relu) {
        _Pragma("clang loop unroll(full)") for (int r = 0; r < rows; r++) {
            x0[r] = st_activate8(x0[r], relu);
            x1[r] = st_activate8(x1[r], relu);
        }
    }
    if (width >= 16) {
        _Pragma("clang loop unroll(full)") for (int r = 0; r < rows; r++) {
            _mm256_storeu_ps(c + r * ldc, x0[r]);
            _mm256_storeu_ps(c + r * ldc + 8, x1[r]);
        }
    } else {
        _Pragma("clang loop unroll(full)") for (int r = 0; r < rows; r++) {
            _mm256_maskstore_ps(c + r * ldc, left, x0[r]);
            _mm256_maskstore_ps(c + r * ldc + 8, right, x1[r]);
        }
    }
}
#endif

#endif
