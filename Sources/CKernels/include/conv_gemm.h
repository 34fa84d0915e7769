#ifndef SIGNTRANSFER_CONV_GEMM_H
#define SIGNTRANSFER_CONV_GEMM_H

#include <stddef.h>

/// Whether this CPU runs the AVX-512 kernel below (checked once, at run time).
int st_gemm_available(void);

/// Floats a packed copy of a `k x n` matrix takes: panels of 32 columns (the last one zero-padded),
/// each `k` rows of 32 contiguous floats.
size_t st_gemm_packed_count(int k, int n);

/// Packs the row-major `b[k x n]` (row stride `ldb`) into `packed` (`st_gemm_packed_count(k, n)` floats).
void st_gemm_pack(const float *b, int ldb, int k, int n, float *packed);

/// The same from `B` given transposed, `bt[n x k]` (row stride `ldbt`): B[i][j] = bt[j][i].
void st_gemm_pack_transposed(const float *bt, int ldbt, int k, int n, float *packed);

/// `c[m x n] = act(a[m x k] * B + bias + residual)` (`relu`: an ST_ACT_* of depthwise.h; 1, ReLU, as it always was) with `B` packed by `st_gemm_pack`, row-major `a`
/// (row stride `lda`) read in place, `bias` and `residual` optional (NULL; `residual` has `c`'s row
/// stride and may be `c` itself), on the calling thread. The bias, the residual and the ReLU are
/// applied as each tile leaves the registers: no extra pass.
void st_gemm(int m, int n, int k, const float *a, int lda, const float *packed, const float *bias,
             const float *residual, float *c, int ldc, int relu);

#endif
