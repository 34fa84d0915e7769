#ifndef SIGNTRANSFER_CONV_GEMM_AVX2_H
#define SIGNTRANSFER_CONV_GEMM_AVX2_H

#include <stddef.h>

/// Whether this CPU runs the AVX2 + FMA kernel below (checked once, at run time).
int st_gemm_avx2_available(void);

/// Floats a packed copy of a `k x n` matrix takes for this kernel: panels of 16 columns.
size_t st_gemm_avx2_packed_count(int k, int n);

/// Packs the row-major `b[k x n]` (row stride `ldb`), or from its transpose `bt[n x k]`, in panels
/// of 16 columns.
void st_gemm_avx2_pack(const float *b, int ldb, int k, int n, float *packed);
void st_gemm_avx2_pack_transposed(const float *bt, int ldbt, int k, int n, float *packed);

/// `st_gemm` (conv_gemm.h) on AVX2 + FMA with `B` packed by `st_gemm_avx2_pack`: the same contract,
/// and the same result bit for bit (each output one chain of fused multiply-adds in inner-dimension
/// order from the residual or zero, then the bias, then ReLU). On the calling thread.
void st_gemm_avx2(int m, int n, int k, const float *a, int lda, const float *packed, const float *bias,
                  const float *residual, float *c, int ldc, int relu);

#endif
