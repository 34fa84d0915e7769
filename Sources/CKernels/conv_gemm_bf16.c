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

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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

void st_gemm_bf16_pack(const float *b, int ldb, int k, int n, uint16_t *packed) {
    int pairs = (k + 1) / 2;
    for (int column = 0; column < n; column += NR) {
        uint16_t *panel = packed + (size_t)column * pairs * 2;
        int width = n - column < NR ? n - column : NR;
        for (int p = 0; p < pairs; p++) {
            for (int j = 0; j < NR; j++) {
                for (int h = 0; h < 2; h++) {
                    int row = 2 * p + h;
                    panel[(p * NR + j) * 2 + h] = j < width && row < k ? to_bf16(b[(size_t)row * ldb + column + j]) : 0;
                }
            }
        }
    }
}

#if defined(__x86_64__)
#include "gemm_tile.h"

static int detect(void) {
    unsigned a, b, c, d;
    if (!st_detect_avx512f() || !__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    return (a >> 5) & 1;  // AVX512_BF16
}

int st_gemm_bf16_available(void) {
    static _Atomic int state = -1;
    int known = atomic_load_explicit(&state, memory_order_relaxed);
    if (known < 0) {
        known = detect();
        atomic_store_explicit(&state, known, memory_order_relaxed);
    }
    return known;
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

BF16 static void gemm(int m, int n, int k, const float *a, size_t lda, const uint16_t *packed, const float *bias,
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
                convertStrip(a + m0 * lda + k0, lda, rows, kc, strip, stride);
                for (int column = n0; column < n1; column += NR) {
                    int width = n1 - column;
                    ST_TILE_MASKS(width, left, right)
                    const float *source = !first ? c + m0 * ldc + column : residual ? residual + m0 * ldc + column : 0;
                    tileRows(rows, stride / 2, strip, stride, packed + ((size_t)column * pairs + (size_t)(k0 / 2) * NR) * 2, source,
                             c + m0 * ldc + column, ldc, left, right, last && bias ? bias + column : 0, last && relu);
                }
            }
        }
    }
}

void st_gemm_bf16(int m, int n, int k, const float *a, int lda, const uint16_t *packed, const float *bias,
                  const float *residual, float *c, int ldc, int relu) {
    gemm(m, n, k, a, (size_t)lda, packed, bias, residual, c, (size_t)ldc, relu);
}
#else
int st_gemm_bf16_available(void) { return 0; }

void st_gemm_bf16(int m, int n, int k, const float *a, int lda, const uint16_t *packed, const float *bias,
                  const float *residual, float *c, int ldc, int relu) {
    abort();  // never called: st_gemm_bf16_available() is 0
}
#endif
