#ifndef SIGNTRANSFER_RESIZE_H
#define SIGNTRANSFER_RESIZE_H
#include <stdint.h>

/// The two passes of the separable bilinear resize (BilinearResize.resizeToRGB), as plain loops and
/// as AVX2 and AVX-512 twins that do the same float32 operations in the same order (no fused
/// multiply-add), so every path gives the same bits. `isa`: ST_ISA_PORTABLE (the plain loops),
/// ST_ISA_AVX2 or ST_ISA_AVX512, at most `st_isa_best()` (the down pass has no AVX-512 twin: AVX2's).

/// One input row blended across: `out[j] = l + (r - l) * lerp[j]` with `l = row[lower[j]]`,
/// `r = row[upper[j]]`, for `j` in 0 ..< `count` (j = x * channels + channel; the indices already
/// count channels). `scratch` holds `row_count` floats (the row converted once, for the gathers).
void st_resize_across(int isa, const uint8_t *row, int row_count, const int32_t *lower, const int32_t *upper, const float *lerp, int count,
                      float *scratch, float *out);

/// One output row from two blended input rows: `v = top[i] + (bottom[i] - top[i]) * lerp`, clipped
/// to 0 ... 255 and rounded half to even, into `out[i]`, `i` in 0 ..< `count`.
void st_resize_down(int isa, const float *top, const float *bottom, float lerp, int count, uint8_t *out);

#endif
