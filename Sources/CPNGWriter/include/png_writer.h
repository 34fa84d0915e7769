#ifndef SIGNTRANSFER_PNG_WRITER_H
#define SIGNTRANSFER_PNG_WRITER_H
#include <stddef.h>
#include <stdint.h>

/* Encodes an 8-bit image (channels 1, 3 or 4, rows packed) as PNG with the given zlib level (0-9),
   PNG filter mask (PNG_FILTER_NONE 0x08, SUB 0x10, UP 0x20, AVG 0x40, PAETH 0x80) and zlib strategy
   (Z_DEFAULT_STRATEGY 0, Z_FILTERED 1, Z_HUFFMAN_ONLY 2, Z_RLE 3). On success returns 0 and a malloc'd
   buffer in *out (free it with st_png_free); on failure returns -1 with libpng's message. libpng
   reports errors by longjmp, which only C can catch: that is why this file exists. */
int st_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels, int level, int filters,
                  int strategy, uint8_t **out, size_t *out_size, char *message, size_t message_size);

void st_png_free(uint8_t *buffer);

#endif

/// Decodes a PNG of `size` bytes as TensorFlow's decode_png does for 8-bit output: palettes and
/// low-bit grey expanded, transparency and alpha dropped, 16-bit samples cut to their high byte, no
/// gamma correction; grey stays one channel, colour is RGB. `out` receives `height x width x
/// channels` bytes, with `channels` 1 or 3 as the file is grey or colour (`st_png_decode` checks the
/// caller's `width`, `height` and `channels`). 0 on success; -1 with a message otherwise.
int st_png_decode(const unsigned char *data, size_t size, unsigned width, unsigned height, int channels,
                  unsigned char *out, size_t out_size, char *message, size_t message_size);
