#ifndef SIGNTRANSFER_GEMM_GENERAL_H
#define SIGNTRANSFER_GEMM_GENERAL_H

/// The fixed-order product for the head and fine-tuning: `c[m x n] = op(A) * B`, plus `c` when
/// `accumulate`, where op(A)[r][i] is `a[r * lda + i]`, or `a[i * lda + r]` with `transposeA`, and
/// `B` is packed in panels `st_panel_width(isa)` wide: by `st_gemm_pack` or `st_gemm_pack_transposed`
/// (32), `st_gemm_avx2_pack` or `st_gemm_avx2_pack_transposed` (16).
///
/// Every output is one chain of fused multiply-adds over the inner dimension in order, started from
/// `c` (accumulate) or zero. Each instruction set below computes exactly that chain, so they all give
/// the same bits, and a product split among threads by rows or by 32-column panels gives the same
/// bits as one call: the result depends on the operands alone.

/// Instruction sets, best first: what `isa` takes.
enum { ST_ISA_PORTABLE = 0, ST_ISA_AVX2 = 1, ST_ISA_AVX512 = 2 };

/// The best of those this CPU runs.
int st_isa_best(void);

/// The panel width of the packed `B` that `st_gemm_general` takes for `isa` as the CPU runs it.
int st_panel_width(int isa);

/// On the calling thread, with instruction set `isa` (at most `st_isa_best()`).
void st_gemm_general(int isa, int transposeA, int m, int n, int k, const float *a, int lda, const float *packed, int accumulate,
                     float *c, int ldc);

#endif
