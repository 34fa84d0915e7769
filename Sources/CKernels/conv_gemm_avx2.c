// The AVX2 + FMA twin of conv_gemm.c, for x86-64 CPUs without AVX-512 (Haswell to Alder Lake, Zen 1
// to 3). Same contract and blocking; the register tile is 6 rows x 16 columns (12 ymm accumulators,
// two for B, one for the broadcast: 15 of the 16 registers), so the weights are packed in panels of
// 16 columns, whose slivers the tile reads as one run (half of a 32-column panel, read with a stride,
// was 20% slower).
//
// Every output is one chain of fused multiply-adds in the order of the inner dimension, started from
// the residual (or zero), then the bias, then ReLU, exactly as in the AVX-512 kernel: the partial
// sums that leave the registers between inner-dimension blocks are floats stored and read back
// unchanged. So the two kernels give the same bits, and neither result depends on how the rows are
// shared out or batched.

#include "conv_gemm_avx2.h"

#include <stdlib.h>

#include "conv_gemm.h"
#include "gemm_tile.h"

// A KC x 16 sliver of B (16 KB) stays in L1 while an MC x KC block of A (96 KB) stays in L2: both
// fit every CPU this is for (Haswell's L2 is 256 KB). B itself streams, so NC only bounds how often
// a block of A is packed again (1024: 8% faster than 256 on conv5's 1x1s, k = 2048).
enum { NR = 16, MR = 6, KC = 256, NC = 1024, MC = MR * 16 };

size_t st_gemm_avx2_packed_count(int k, int n) { return (size_t)((n + NR - 1) / NR) * NR * (size_t)k; }

void st_gemm_avx2_pack(const float *b, int ldb, int k, int n, float *packed) { st_pack_panels(NR, b, (size_t)ldb, 1, k, n, packed); }

void st_gemm_avx2_pack_transposed(const float *bt, int ldbt, int k, int n, float *packed) {
    st_pack_panels(NR, bt, 1, (size_t)ldbt, k, n, packed);
}

#if ST_X86

static int detect(void) { return st_detect_avx2_fma(); }

int st_gemm_avx2_available(void) {
    static _Atomic int state = -1;
    return st_remember(&state, detect);
}

#define AVX2 __attribute__((target("avx2,fma")))

// One rows x 16 tile: c = (source or 0) + a[rows x kc] * b[kc x 16], then + bias and ReLU when given.
// `b` is the panel's sliver (16 floats a row); A is read in place (row stride `lda`) or from a strip
// packed MR to a column.
AVX2 static inline __attribute__((always_inline)) void tile(const int rows, const int packedA, int kc, const float *a, size_t lda,
                                                            const float *b, const float *source, float *c, size_t ldc, int width,
                                                            const float *bias, int relu) {
    __m256 x0[MR], x1[MR];
    st_tile2_begin(rows, x0, x1, source, ldc, width);
    // Unrolled by four: the loop's own instructions (and the six row addresses of an A read in place)
    // then share the front end with four steps of FMAs instead of one (1.10-1.14x this kernel's time
    // over ResNet50's GEMMs at 224, two threads; by two: 1.04x; by eight: no better than four).
    _Pragma("clang loop unroll_count(4)") for (int i = 0; i < kc; i++) {
        __m256 b0 = _mm256_loadu_ps(b + i * NR), b1 = _mm256_loadu_ps(b + i * NR + 8);
        _Pragma("clang loop unroll(full)") for (int r = 0; r < rows; r++) {
            __m256 v = _mm256_broadcast_ss(packedA ? a + i * MR + r : a + r * lda + i);
            x0[r] = _mm256_fmadd_ps(v, b0, x0[r]);
            x1[r] = _mm256_fmadd_ps(v, b1, x1[r]);
        }
    }
    st_tile2_end(rows, x0, x1, c, ldc, width, bias, relu);
}

#define TILE(R) \
    case R: if (packedA) tile(R, 1, kc, a, lda, b, source, c, ldc, width, bias, relu); \
            else tile(R, 0, kc, a, lda, b, source, c, ldc, width, bias, relu); break;

AVX2 static void tileRows(int rows, int packedA, int kc, const float *a, size_t lda, const float *b, const float *source, float *c,
                          size_t ldc, int width, const float *bias, int relu) {
    switch (rows) {
        TILE(6) TILE(5) TILE(4) TILE(3) TILE(2) TILE(1)
        default: break;
    }
}

// The sliver of the panel starting at column `column` (a multiple of 16), from inner index k0.
static inline const float *packedAt(const float *packed, int k, int column, int k0) {
    return packed + (size_t)column * k + (size_t)k0 * NR;
}

// Loop order as in BLIS: for each block of MC rows and KC of the inner dimension, each 16-column
// sliver of B (KC x 16, 16 KB) is met by every strip of the block in turn, so the sliver stays in L1
// while the block's strips (6 KB each, 96 KB in all) come from L2. With the strips outside (the
// AVX-512 kernel's order, whose wider tiles need B from L2 less often) this kernel waited on L2.
AVX2 static void gemm(int m, int n, int k, const float *a, size_t lda, int transposeA, const float *packed, const float *bias,
                      const float *residual, float *c, size_t ldc, int relu) {
    int blocks = (k + KC - 1) / KC;
    int kc0 = (k + blocks - 1) / blocks;
    // The block's strips are copied, interleaved, first for a transposed A (the general product),
    // and where rows of A a multiple of 4 KB apart would share L1 sets over several inner-dimension
    // blocks (as in the AVX-512 kernel); otherwise A is read where it lies.
    int packA = transposeA || (k > KC && lda % 1024 == 0);
    float *packedBlock = packA ? aligned_alloc(64, sizeof(float) * MC * KC) : 0;
    for (int n0 = 0; n0 < n; n0 += NC) {
        int n1 = n0 + NC < n ? n0 + NC : n;
        for (int g0 = 0; g0 < m; g0 += MC) {
            int g1 = g0 + MC < m ? g0 + MC : m;
            for (int k0 = 0; k0 < k; k0 += kc0) {
                int kc = k - k0 < kc0 ? k - k0 : kc0;
                int first = k0 == 0, last = k0 + kc >= k;
                if (packA)
                    for (int m0 = g0; m0 < g1; m0 += MR)
                        st_copy_strip(a, lda, transposeA, m0, k0, g1 - m0 < MR ? g1 - m0 : MR, kc, MR, packedBlock + (size_t)(m0 - g0) * KC);
                for (int column = n0; column < n1; column += NR) {
                    int width = n1 - column;
                    const float *sliver = packedAt(packed, k, column, k0);
                    for (int m0 = g0; m0 < g1; m0 += MR) {
                        int rows = g1 - m0 < MR ? g1 - m0 : MR;
                        const float *strip = packA ? packedBlock + (size_t)(m0 - g0) * KC : a + m0 * lda + k0;
                        const float *source = !first ? c + m0 * ldc + column : residual ? residual + m0 * ldc + column : 0;
                        if (m0 + MR < g1)
                            st_prefetch_strip(kc, c, residual, first, m0 + MR, g1 - m0 - MR < MR ? g1 - m0 - MR : MR, ldc, column, 1);
                        tileRows(rows, packA, kc, strip, lda, sliver, source, c + m0 * ldc + column, ldc, width,
                                 last && bias ? bias + column : 0, last ? relu : 0);
                    }
                }
            }
        }
    }
    free(packedBlock);
}

void st_gemm_avx2(int m, int n, int k, const float *a, int lda, const float *packed, const float *bias,
                  const float *residual, float *c, int ldc, int relu) {
    gemm(m, n, k, a, (size_t)lda, 0, packed, bias, residual, c, (size_t)ldc, relu);
}

// The general product (gemm_general.h): the same driver, C itself as the starting sums when
// accumulating, no bias, no ReLU.
void st_gemm_general_avx2(int transposeA, int m, int n, int k, const float *a, int lda, const float *packed, int accumulate,
                          float *c, int ldc) {
    gemm(m, n, k, a, (size_t)lda, transposeA, packed, 0, accumulate ? c : 0, c, (size_t)ldc, 0);
}
#else
int st_gemm_avx2_available(void) { return 0; }

void st_gemm_avx2(int m, int n, int k, const float *a, int lda, const float *packed, const float *bias,
                  const float *residual, float *c, int ldc, int relu) {
    abort();  // never called: st_gemm_avx2_available() is 0
}
#endif
