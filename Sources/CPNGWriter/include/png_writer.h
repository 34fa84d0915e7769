#ifndef SIGNTRANSFER_PNG_WRITER_H
#define SIGNTRANSFER_PNG_WRITER_H
#include <stddef.h>
#include <stdint.h>

/* Frees a buffer st_png_encode_fast returned. */
void st_png_free(uint8_t *buffer);

/* The fast encoding for intermediate files (png_fast.c): 8-bit grey (channels 1) or RGB (3), the
   Paeth filter on every row, deflate with literals only under a code made for the image. 0 and a
   malloc'd file in *out (free with st_png_free); -1 for a shape it does not take or no memory.
   `isa`: 0 for the plain loops; 1 to filter and checksum with AVX2 and code with BMI2; 2 for the
   AVX-512 filter, histogram and VBMI coder where the CPU has BW, VBMI and VBMI2 (level 1 otherwise):
   at most what the CPU runs (ProductISA.best). The same file on every path. */
int st_png_encode_fast(int isa, const uint8_t *pixels, uint32_t width, uint32_t height, int channels, uint8_t **out, size_t *out_size);

#endif

/// Decodes a PNG of `size` bytes as TensorFlow's decode_png does for 8-bit output: palettes and
/// low-bit grey expanded, transparency and alpha dropped, 16-bit samples cut to their high byte, no
/// gamma correction; grey stays one channel, colour is RGB. `out` receives `height x width x
/// channels` bytes, with `channels` 1 or 3 as the file is grey or colour (`st_png_decode` checks the
/// caller's `width`, `height` and `channels`). 0 on success; -1 with a message otherwise.
int st_png_decode(const unsigned char *data, size_t size, unsigned width, unsigned height, int channels,
                  unsigned char *out, size_t out_size, char *message, size_t message_size);
