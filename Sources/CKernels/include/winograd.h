#ifndef SIGNTRANSFER_WINOGRAD_H
#define SIGNTRANSFER_WINOGRAD_H

/// Winograd F(m x m, 3x3) transforms for a 3x3, stride-1, pad-1 convolution on NHWC floats, m = 2 or 4.
/// Tiles are numbered over the batch: tile t covers outputs (m*ty .. m*ty+m-1, m*tx .. m*tx+m-1) of
/// image t / (tileRows*tileColumns). Both functions handle the tiles first .. first+count-1, and the
/// transformed matrices are laid out [(m+2)^2][count][channels]. `isa` (gemm_general.h) picks the
/// build of each loop: the one asked for, or the best below it that the CPU runs.

/// V = Bᵀ d B for each tile: `zero` is `channels` zeros (the padding).
void st_winograd_input(int isa, int m, const float *x, int height, int width, int channels, int first, int count,
                       const float *zero, float *v);

/// out = relu(Aᵀ M A + bias) for each tile, cropped to the image. `junk` is `channels` floats of
/// scratch (where outputs past the image's edge go).
void st_winograd_output(int isa, int m, const float *products, int height, int width, int channels, int first, int count,
                        const float *bias, float *junk, float *out);

/// Position `position` (row-major in the (m+2) x (m+2) tile) of U = G g Gᵀ for every channel pair of
/// a 3x3 kernel `w[9*input x output]` ((ky, kx, in) rows), computed in double: `u` is [input][output].
void st_winograd_filter(int isa, int m, int position, const float *w, int input, int output, float *u);

#endif

