// The fixed-order product's portable build and the choice among the builds (gemm_general.h).
//
// The portable tile is plain C: fmaf is the fused multiply-add that vfmadd231ps does per lane, so
// this computes each output's chain exactly as the AVX2 and AVX-512 tiles do. Compilers vectorise
// its inner loop where the CPU has a vector FMA (NEON's fmla on aarch64); on an x86-64 CPU without
// FMA, fmaf is libm's exact software routine: slow, and still the same bits.

#include "gemm_general.h"

#include <math.h>
#include <stddef.h>

#include "conv_gemm.h"
#include "gemm_tile.h"

enum { NR = 32, MR = 4, KC = 256 };

#if ST_X86
void st_gemm_general_avx512(int transposeA, int m, int n, int k, const float *a, int lda, const float *packed, int accumulate,
                            float *c, int ldc);
void st_gemm_general_avx2(int transposeA, int m, int n, int k, const float *a, int lda, const float *packed, int accumulate,
                          float *c, int ldc);

static int detect(void) { return st_detect_avx512f() ? ST_ISA_AVX512 : st_detect_avx2_fma() ? ST_ISA_AVX2 : ST_ISA_PORTABLE; }
#else
static int detect(void) { return ST_ISA_PORTABLE; }
#endif

int st_isa_best(void) {
    static _Atomic int state = -1;
    return st_remember(&state, detect);
}

int st_panel_width(int isa) {
    int usable = isa < st_isa_best() ? isa : st_isa_best();
    return usable == ST_ISA_AVX2 ? 16 : 32;
}

// rows x width outputs (rows <= MR, width <= NR) from the strip (MR to a column) and a panel row
// stride of NR.
static void tile(int rows, int width, int kc, const float *strip, const float *b, const float *source, float *c, size_t ldc) {
    float x[MR][NR];
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < NR; j++) x[r][j] = source && j < width ? source[r * ldc + j] : 0;
    for (int i = 0; i < kc; i++) {
        const float *line = b + (size_t)i * NR;
        for (int r = 0; r < rows; r++) {
            float v = strip[i * MR + r];
            for (int j = 0; j < NR; j++) x[r][j] = fmaf(v, line[j], x[r][j]);
        }
    }
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < width; j++) c[r * ldc + j] = x[r][j];
}

static void portable(int transposeA, int m, int n, int k, const float *a, int lda, const float *packed, int accumulate, float *c, int ldc) {
    int blocks = (k + KC - 1) / KC;
    int kc0 = (k + blocks - 1) / blocks;
    float strip[MR * KC];
    for (int m0 = 0; m0 < m; m0 += MR) {
        int rows = m - m0 < MR ? m - m0 : MR;
        for (int k0 = 0; k0 < k; k0 += kc0) {
            int kc = k - k0 < kc0 ? k - k0 : kc0;
            st_copy_strip(a, (size_t)lda, transposeA, m0, k0, rows, kc, MR, strip);
            for (int column = 0; column < n; column += NR) {
                int width = n - column < NR ? n - column : NR;
                const float *source = k0 > 0 || accumulate ? c + (size_t)m0 * ldc + column : 0;
                tile(rows, width, kc, strip, packed + (size_t)column * k + (size_t)k0 * NR, source, c + (size_t)m0 * ldc + column, (size_t)ldc);
            }
        }
    }
}

void st_gemm_general(int isa, int transposeA, int m, int n, int k, const float *a, int lda, const float *packed, int accumulate,
                     float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        // An empty sum: zero, or c unchanged.
        if (!accumulate)
            for (int r = 0; r < m; r++)
                for (int j = 0; j < n; j++) c[(size_t)r * ldc + j] = 0;
        return;
    }
#if ST_X86
    if (isa >= ST_ISA_AVX512 && st_isa_best() >= ST_ISA_AVX512) {
        st_gemm_general_avx512(transposeA, m, n, k, a, lda, packed, accumulate, c, ldc);
        return;
    }
    if (isa >= ST_ISA_AVX2 && st_isa_best() >= ST_ISA_AVX2) {
        st_gemm_general_avx2(transposeA, m, n, k, a, lda, packed, accumulate, c, ldc);
        return;
    }
#endif
    portable(transposeA, m, n, k, a, lda, packed, accumulate, c, ldc);
}
