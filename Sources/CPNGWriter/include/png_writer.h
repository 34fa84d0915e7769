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
