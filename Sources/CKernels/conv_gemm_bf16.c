// The bf16 twin of conv_gemm.c, for CPUs with AVX512_BF16 (Zen 4, Cooper Lake, Sapphire Rapids):
// vdpbf16ps multiplies two bf16 pairs per float lane and adds both products to the lane in float,
// 32 multiply-adds per instruction where vfmadd231ps does 16. The weights are rounded to bf16 and
// packed once at load; the activations are rounded as each strip of rows is read; everything after
// the products (accumulation, bias, residual, ReLU) stays in float.
//
// Layout: B in panels of 32 columns; within a panel, pair p of rows (2p, 2p + 1) is 32 columns x 2
// words, column j's two words adjacent: one 64-byte load gives 16 lanes of (B[2p][j], B[2p+1][j]).
// A strip of MR rows is converted to bf16 row by row; the 32-bit word at (r, 2p) is the pair
// (A[r][2p], A[r][2p+1]), broadcast to every lane. Blocking as in conv_gemm.c: MR x 32 register tiles
// (MR * 2 accumulators), KC of the inner dimension (even) at a time, NC columns (in L2).

#include "conv_gemm_bf16.h"

#include <stdlib.h>
#include <string.h>

#include "gemm_tile.h"

static uint16_t to_bf16(float value) {
    uint32_t bits;
    memcpy(&bits, &value, 4);
    // Round to nearest, ties to even (the weights are finite; NaN is not handled specially).
    bits += 0x7FFF + ((bits >> 16) & 1);
    return (uint16_t)(bits >> 16);
}

float st_bf16_round(float value) {
    uint32_t bits = (uint32_t)to_bf16(value) << 16;
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

enum { NR = 32, MR = 14, KC = 256, NC = 512 };

size_t st_gemm_bf16_packed_count(int k, int n) { return (size_t)((n + NR - 1) / NR) * NR * (size_t)((k + 1) / 2) * 2; }

// B[i][j] is b[i * rowStride + j * columnStride]: the plain packing loop for B given either way
// (the reference, and for CPUs without the kernel).
static void packPlain(const float *b, size_t rowStride, size_t columnStride, int k, int n, uint16_t *packed) {
    int pairs = (k + 1) / 2;
    for (int column = 0; column < n; column += NR) {
        uint16_t *panel = packed + (size_t)column * pairs * 2;
        int width = n - column < NR ? n - column : NR;
        for (int p = 0; p < pairs; p++) {
            for (int j = 0; j < NR; j++) {
                for (int h = 0; h < 2; h++) {
                    int row = 2 * p + h;
                    panel[(p * NR + j) * 2 + h] = j < width && row < k ? to_bf16(b[(size_t)row * rowStride + (size_t)(column + j) * columnStride]) : 0;
                }
            }
        }
    }
}

static void pack(const float *b, size_t rowStride, size_t columnStride, int k, int n, uint16_t *packed);

void st_gemm_bf16_pack(const float *b, int ldb, int k, int n, uint16_t *packed) { pack(b, (size_t)ldb, 1, k, n, packed); }

void st_gemm_bf16_pack_transposed(const float *bt, int ldbt, int k, int n, uint16_t *packed) { pack(bt, 1, (size_t)ldbt, k, n, packed); }

#if ST_X86
static int detect(void) {
    unsigned a, b, c, d;
    if (!st_detect_avx512f() || !__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    return (a >> 5) & 1;  // AVX512_BF16
}

int st_gemm_bf16_available(void) {
    static _Atomic int state = -1;
    return st_remember(&state, detect);
}

#define BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

// One rows x 32 tile over `pairs` pairs of the inner dimension: c = (source or 0) + a * b, then +
// bias and ReLU when given. `a` is the strip in bf16, row stride `lda` words (even).
BF16 static inline __attribute__((always_inline)) void tile(const int rows, int pairs, const uint16_t *a, int lda, const uint16_t *b,
                                                            const float *source, float *c, size_t ldc, __mmask16 left, __mmask16 right,
                                                            const float *bias, int relu) {
    __m512 x0[MR], x1[MR];
    st_tile_begin(rows, x0, x1, source, ldc, left, right);
    for (int p = 0; p < pairs; p++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + p * NR * 2), b1 = (__m512bh)_mm512_loadu_si512(b + p * NR * 2 + 32);
        _Pragma("clang loop unroll(full)") for (int r = 0; r < rows; r++) {
            uint32_t pair;
            memcpy(&pair, a + r * lda + 2 * p, 4);
            __m512bh v = (__m512bh)_mm512_set1_epi32((int)pair);
            x0[r] = _mm512_dpbf16_ps(x0[r], v, b0);
            x1[r] = _mm512_dpbf16_ps(x1[r], v, b1);
        }
    }
    st_tile_end(rows, x0, x1, c, ldc, left, right, bias, relu);
}

// Packing with AVX-512 (fine-tuning repacks all of conv5's weights twice a step, 30 M values: done
// one value at a time it was a quarter of a step). Row-major B: two rows of a 32-column panel are
// loaded, rounded to 32 words each, and interleaved word by word (vpermt2w). Transposed B: the
// plain loop, whose reads run along B's rows there.
BF16 static void packRows(const float *b, size_t ldb, int k, int n, uint16_t *packed) {
    int pairs = (k + 1) / 2;
    __m512i low = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
                                   39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    __m512i high = _mm512_set_epi16(63, 31, 62, 30, 61, 29, 60, 28, 59, 27, 58, 26, 57, 25, 56, 24,
                                    55, 23, 54, 22, 53, 21, 52, 20, 51, 19, 50, 18, 49, 17, 48, 16);
    for (int column = 0; column < n; column += NR) {
        uint16_t *panel = packed + (size_t)column * pairs * 2;
        int width = n - column < NR ? n - column : NR;
        __mmask16 left = width >= 16 ? 0xFFFF : (__mmask16)((1u << width) - 1);
        __mmask16 right = width >= 32 ? 0xFFFF : width <= 16 ? 0 : (__mmask16)((1u << (width - 16)) - 1);
        for (int p = 0; p < pairs; p++) {
            const float *even = b + (size_t)(2 * p) * ldb + column, *odd = even + ldb;
            __m512i r0 = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(right, even + 16), _mm512_maskz_loadu_ps(left, even));
            __m512i r1 = 2 * p + 1 < k ? (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(right, odd + 16), _mm512_maskz_loadu_ps(left, odd))
                                       : _mm512_setzero_si512();
            _mm512_storeu_si512(panel + p * NR * 2, _mm512_permutex2var_epi16(r0, low, r1));
            _mm512_storeu_si512(panel + p * NR * 2 + 32, _mm512_permutex2var_epi16(r0, high, r1));
        }
    }
}

// Transposed B (bt[n x k]): a pair of B's rows at column j is two adjacent floats of bt's row j, so
// each of bt's rows is rounded whole (vectorised) and its 32-bit pairs are stored down the panel.
BF16 static void packColumns(const float *bt, size_t ldbt, int k, int n, uint16_t *packed) {
    int pairs = (k + 1) / 2;
    uint32_t *words = malloc((size_t)pairs * 4 + 64);
    for (int column = 0; column < n; column += NR) {
        uint32_t *panel = (uint32_t *)(packed + (size_t)column * pairs * 2);
        for (int j = 0; j < NR; j++) {
            if (column + j >= n) {
                for (int p = 0; p < pairs; p++) panel[p * NR + j] = 0;
                continue;
            }
            const float *row = bt + (size_t)(column + j) * ldbt;
            int i = 0;
            for (; i + 32 <= k; i += 32)
                _mm512_storeu_si512((uint16_t *)words + i, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + i + 16), _mm512_loadu_ps(row + i)));
            if (i < k) {
                int left = k - i;
                __mmask16 low = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
                __mmask16 high = left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
                _mm512_storeu_si512((uint16_t *)words + i,
                                    (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(high, row + i + 16), _mm512_maskz_loadu_ps(low, row + i)));
            }
            for (int p = 0; p < pairs; p++) panel[p * NR + j] = words[p];
        }
    }
    free(words);
}

static void pack(const float *b, size_t rowStride, size_t columnStride, int k, int n, uint16_t *packed) {
    if (!st_gemm_bf16_available()) packPlain(b, rowStride, columnStride, k, n, packed);
    else if (columnStride == 1) packRows(b, rowStride, k, n, packed);
    else if (rowStride == 1) packColumns(b, columnStride, k, n, packed);
    else packPlain(b, rowStride, columnStride, k, n, packed);
}

#define TILE(R) case R: tile(R, pairs, a, lda, b, source, c, ldc, left, right, bias, relu); break;

BF16 static void tileRows(int rows, int pairs, const uint16_t *a, int lda, const uint16_t *b, const float *source, float *c,
                          size_t ldc, __mmask16 left, __mmask16 right, const float *bias, int relu) {
    switch (rows) {
        TILE(14) TILE(13) TILE(12) TILE(11) TILE(10) TILE(9) TILE(8)
        TILE(7) TILE(6) TILE(5) TILE(4) TILE(3) TILE(2) TILE(1)
        default: break;
    }
}

// Rows [m0, m0 + rows) of a, columns [k0, k0 + kc) rounded to bf16 into strip[rows][stride]; an odd
// tail (k odd) gets a zero word.
BF16 static void convertStrip(const float *a, size_t lda, int rows, int kc, uint16_t *strip, int stride) {
    for (int r = 0; r < rows; r++) {
        const float *row = a + r * lda;
        uint16_t *out = strip + r * stride;
        int i = 0;
        for (; i + 32 <= kc; i += 32) {
            __m512bh words = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + i + 16), _mm512_loadu_ps(row + i));
            _mm512_storeu_si512(out + i, (__m512i)words);
        }
        if (i < kc) {
            int left = kc - i;
            __mmask16 low = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
            __mmask16 high = left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
            __m512bh words = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(high, row + i + 16), _mm512_maskz_loadu_ps(low, row + i));
            // The zero word after an odd tail comes from the masked-off lane.
            _mm512_mask_storeu_epi16(out + i, (__mmask32)((1ull << ((left + 1) & ~1)) - 1), (__m512i)words);
        }
    }
}

// The same from A given transposed: a points at A[0][0] = at[0][0], A[r][i] = a[i * lda + r]. For
// each i the strip's rows are adjacent floats; the writes go down the strip's columns (in L1).
static void convertStripTransposed(const float *a, size_t lda, int rows, int kc, uint16_t *strip, int stride) {
    for (int i = 0; i < kc; i++) {
        const float *column = a + i * lda;
        for (int r = 0; r < rows; r++) strip[r * stride + i] = to_bf16(column[r]);
    }
    if (kc & 1) for (int r = 0; r < rows; r++) strip[r * stride + kc] = 0;
}

BF16 static void gemm(int m, int n, int k, const float *a, size_t lda, int transposedA, const uint16_t *packed, const float *bias,
                      const float *residual, float *c, size_t ldc, int relu) {
    int pairs = (k + 1) / 2;
    // Inner-dimension blocks of equal size, an even number of columns each, at most KC.
    int blocks = (k + KC - 1) / KC;
    int kc0 = ((k + blocks - 1) / blocks + 1) & ~1;
    uint16_t strip[MR * KC] __attribute__((aligned(64)));
    for (int n0 = 0; n0 < n; n0 += NC) {
        int n1 = n0 + NC < n ? n0 + NC : n;
        for (int m0 = 0; m0 < m; m0 += MR) {
            int rows = m - m0 < MR ? m - m0 : MR;
            for (int k0 = 0; k0 < k; k0 += kc0) {
                int kc = k - k0 < kc0 ? k - k0 : kc0;
                int first = k0 == 0, last = k0 + kc >= k;
                int stride = (kc + 1) & ~1;
                if (transposedA) convertStripTransposed(a + (size_t)k0 * lda + m0, lda, rows, kc, strip, stride);
                else convertStrip(a + m0 * lda + k0, lda, rows, kc, strip, stride);
                for (int column = n0; column < n1; column += NR) {
                    int width = n1 - column;
                    ST_TILE_MASKS(width, left, right)
                    const float *source = !first ? c + m0 * ldc + column : residual ? residual + m0 * ldc + column : 0;
                    tileRows(rows, stride / 2, strip, stride, packed + ((size_t)column * pairs + (size_t)(k0 / 2) * NR) * 2, source,
                             c + m0 * ldc + column, ldc, left, right, last && bias ? bias + column : 0, last ? relu : 0);
                }
            }
        }
    }
}

void st_gemm_bf16(int m, int n, int k, const float *a, int lda, const uint16_t *packed, const float *bias,
                  const float *residual, float *c, int ldc, int relu) {
    gemm(m, n, k, a, (size_t)lda, 0, packed, bias, residual, c, (size_t)ldc, relu);
}

void st_gemm_bf16_at(int m, int n, int k, const float *at, int ldat, const uint16_t *packed, const float *bias,
                     const float *residual, float *c, int ldc, int relu) {
    gemm(m, n, k, at, (size_t)ldat, 1, packed, bias, residual, c, (size_t)ldc, relu);
}
#else
static void pack(const float *b, size_t rowStride, size_t columnStride, int k, int n, uint16_t *packed) {
    packPlain(b, rowStride, columnStride, k, n, packed);
}

int st_gemm_bf16_available(void) { return 0; }

void st_gemm_bf16(int m, int n, int k, const float *a, int lda, const uint16_t *packed, const float *bias,
                  const float *residual, float *c, int ldc, int relu) {
    abort();  // never called: st_gemm_bf16_available() is 0
}

void st_gemm_bf16_at(int m, int n, int k, const float *at, int ldat, const uint16_t *packed, const float *bias,
                     const float *residual, float *c, int ldc, int relu) {
    abort();
}
#endif
