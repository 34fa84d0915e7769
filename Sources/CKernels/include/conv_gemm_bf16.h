#ifndef SIGNTRANSFER_CONV_GEMM_BF16_H
#define SIGNTRANSFER_CONV_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

/// Whether this CPU runs the bf16 kernel below: AVX-512 with AVX512_BF16 (vdpbf16ps), checked once.
int st_gemm_bf16_available(void);

/// 16-bit words a packed bf16 copy of a `k x n` matrix takes: panels of 32 columns (the last one
/// zero-padded), each ceil(k / 2) pairs of rows, a pair being 32 columns x 2 interleaved words.
size_t st_gemm_bf16_packed_count(int k, int n);

/// Packs the row-major float `b[k x n]` (row stride `ldb`) into `packed`, each value rounded to
/// bf16 (nearest, ties to even); an odd `k` gets a zero row.
void st_gemm_bf16_pack(const float *b, int ldb, int k, int n, uint16_t *packed);

/// `c[m x n] = relu?(a[m x k] * B + bias + residual)` as `st_gemm`, with `B` packed by
/// `st_gemm_bf16_pack`: the float `a` is rounded to bf16 as each strip is read, products of bf16
/// pairs are summed in float (vdpbf16ps), and the bias, the residual and the ReLU are applied in
/// float as each tile leaves the registers. On the calling thread.
void st_gemm_bf16(int m, int n, int k, const float *a, int lda, const uint16_t *packed, const float *bias,
                  const float *residual, float *c, int ldc, int relu);

/// The same with `B` given transposed: `bt[n x k]` (row stride `ldbt`), B[i][j] = bt[j][i].
void st_gemm_bf16_pack_transposed(const float *bt, int ldbt, int k, int n, uint16_t *packed);

/// `st_gemm_bf16` with `A` given transposed: `at[k x m]` (row stride `ldat`), A[r][i] = at[i][r]
/// (a weight gradient, X^T * dY, without copying X^T).
void st_gemm_bf16_at(int m, int n, int k, const float *at, int ldat, const uint16_t *packed, const float *bias,
                     const float *residual, float *c, int ldc, int relu);

/// `value` rounded to bf16 and back: what the kernel multiplies (for the plain reference in the tests).
float st_bf16_round(float value);

#endif
