// A single-precision GEMM for convolutions on AVX-512: C = A * B (+ bias, + C, ReLU), where B (the
// weights) is packed once at load and A (the activations) is read where it lies. Compared with a
// general BLAS call this skips packing the activations (re-done at every layer of every batch), the
// separate pass that zeroes or scales C, and the passes that add the bias, the residual and apply ReLU.
//
// Blocking: for each block of NC columns (its packed B stays in L2) and each block of KC of the inner
// dimension, strips of MR rows of A (MR x KC floats, kept in L1) meet each 32-column panel of B in a
// register tile of MR x 32 accumulators (MR * 2 zmm registers).

#include "conv_gemm.h"

#include <stdint.h>
#include <stdlib.h>

#include "gemm_tile.h"

enum { NR = 32, MR = 14, KC = 256, NC = 512, MC = MR * 8 };

#if ST_X86

static int detect(void) { return st_detect_avx512f(); }

#else
// Other CPUs: no kernel here, OpenBLAS does the work (st_gemm_available says so).
static int detect(void) { return 0; }
#endif

int st_gemm_available(void) {
    static _Atomic int state = -1;
    return st_remember(&state, detect);
}

size_t st_gemm_packed_count(int k, int n) { return (size_t)((n + NR - 1) / NR) * NR * (size_t)k; }

void st_gemm_pack(const float *b, int ldb, int k, int n, float *packed) { st_pack_panels(NR, b, (size_t)ldb, 1, k, n, packed); }

void st_gemm_pack_transposed(const float *bt, int ldbt, int k, int n, float *packed) {
    st_pack_panels(NR, bt, 1, (size_t)ldbt, k, n, packed);
}

#if ST_X86
#define AVX512 __attribute__((target("avx512f")))

// One MR x 32 (or rows x 32) tile: c = (source or 0) + a[rows x kc] * b[kc x 32], then + bias and
// ReLU when given. `rows` is a constant at every call, so the loops unroll and the accumulators live
// in registers.
AVX512 static inline __attribute__((always_inline)) void tile(const int rows, const int packedA, int kc, const float *a, size_t lda,
                                                              const float *b, const float *source, float *c, size_t ldc,
                                                              __mmask16 left, __mmask16 right, const float *bias, int relu) {
    __m512 x0[MR], x1[MR];
    st_tile_begin(rows, x0, x1, source, ldc, left, right);
    for (int i = 0; i < kc; i++) {
        __m512 b0 = _mm512_loadu_ps(b + i * NR), b1 = _mm512_loadu_ps(b + i * NR + 16);
        _Pragma("clang loop unroll(full)") for (int r = 0; r < rows; r++) {
            __m512 v = _mm512_set1_ps(packedA ? a[i * MR + r] : a[r * lda + i]);
            x0[r] = _mm512_fmadd_ps(v, b0, x0[r]);
            x1[r] = _mm512_fmadd_ps(v, b1, x1[r]);
        }
    }
    st_tile_end(rows, x0, x1, c, ldc, left, right, bias, relu);
}

#define TILE(R) \
    case R: if (packedA) tile(R, 1, kc, a, lda, b, source, c, ldc, left, right, bias, relu); \
            else tile(R, 0, kc, a, lda, b, source, c, ldc, left, right, bias, relu); break;

AVX512 static void tileRows(int rows, int packedA, int kc, const float *a, size_t lda, const float *b, const float *source,
                            float *c, size_t ldc, __mmask16 left, __mmask16 right, const float *bias, int relu) {
    switch (rows) {
        TILE(14) TILE(13) TILE(12) TILE(11) TILE(10) TILE(9) TILE(8)
        TILE(7) TILE(6) TILE(5) TILE(4) TILE(3) TILE(2) TILE(1)
        default: break;
    }
}

AVX512 static void gemm(int m, int n, int k, const float *a, size_t lda, int transposeA, const float *packed, const float *bias,
                        const float *residual, float *c, size_t ldc, int relu) {
    // Inner-dimension blocks of equal size, at most KC each.
    int blocks = (k + KC - 1) / KC;
    int kc0 = (k + blocks - 1) / blocks;
    float packedStrip[MR * KC] __attribute__((aligned(64)));
    // Rows of A a multiple of 4 KB apart share L1 sets: with several inner-dimension blocks, the MR
    // rows of a strip would evict each other, so the strip is copied, interleaved, first; so is a
    // transposed A (the general product), whatever its layout.
    int packA = transposeA || (k > KC && lda % 1024 == 0);
    for (int n0 = 0; n0 < n; n0 += NC) {
        int n1 = n0 + NC < n ? n0 + NC : n;
        for (int g0 = 0; g0 < m; g0 += MC) {
            int g1 = g0 + MC < m ? g0 + MC : m;
            for (int k0 = 0; k0 < k; k0 += kc0) {
                int kc = k - k0 < kc0 ? k - k0 : kc0;
                int first = k0 == 0, last = k0 + kc >= k;
                for (int m0 = g0; m0 < g1; m0 += MR) {
                    int rows = g1 - m0 < MR ? g1 - m0 : MR;
                    if (packA) st_copy_strip(a, lda, transposeA, m0, k0, rows, kc, MR, packedStrip);
                    const float *strip = packA ? packedStrip : a + m0 * lda + k0;
                    for (int column = n0; column < n1; column += NR) {
                        int width = n1 - column;
                        ST_TILE_MASKS(width, left, right)
                        // The first block starts from the residual (or zero), the others from the partial sums.
                        const float *source = !first ? c + m0 * ldc + column : residual ? residual + m0 * ldc + column : 0;
                        if (m0 + MR < g1)
                            st_prefetch_strip(kc, c, residual, first, m0 + MR, g1 - m0 - MR < MR ? g1 - m0 - MR : MR, ldc, column, 2);
                        tileRows(rows, packA, kc, strip, lda, packed + (size_t)column * k + (size_t)k0 * NR, source,
                                 c + m0 * ldc + column, ldc, left, right, last && bias ? bias + column : 0, last ? relu : 0);
                    }
                }
            }
        }
    }
}

void st_gemm(int m, int n, int k, const float *a, int lda, const float *packed, const float *bias,
             const float *residual, float *c, int ldc, int relu) {
    gemm(m, n, k, a, (size_t)lda, 0, packed, bias, residual, c, (size_t)ldc, relu);
}

// The general product (gemm_general.h): the same driver, C itself as the starting sums when
// accumulating, no bias, no ReLU.
void st_gemm_general_avx512(int transposeA, int m, int n, int k, const float *a, int lda, const float *packed, int accumulate,
                            float *c, int ldc) {
    gemm(m, n, k, a, (size_t)lda, transposeA, packed, 0, accumulate ? c : 0, c, (size_t)ldc, 0);
}
#else
void st_gemm(int m, int n, int k, const float *a, int lda, const float *packed, const float *bias,
             const float *residual, float *c, int ldc, int relu) {
    abort();  // never called: st_gemm_available() is 0
}
#endif
