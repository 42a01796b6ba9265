/* Private to src/data: what the image-folder reader (imgdir.c) learns from a file's header before
 * it decodes it (image.c), so it can choose the channels and check the sizes of a folder without
 * decoding any file twice. */
#ifndef KD_DATA_IMAGE_H
#define KD_DATA_IMAGE_H
#include "distill/data.h"

/* Largest image side and pixel count accepted: a header claiming more is refused before anything
 * is allocated. */
#define KD_IMAGE_MAX_SIDE 16384
#define KD_IMAGE_MAX_PIXELS ((int64_t)1 << 26)

/* RGB to grey: ITU-R BT.601 luma, rounded (the one conversion of --channels 1: image files, CIFAR). */
static inline uint8_t kd_image_luma(unsigned r, unsigned g, unsigned b) {
    return (uint8_t)((299u * r + 587u * g + 114u * b + 500u) / 1000u);
}

/* Reads path's header only (the file's type by its magic bytes, not its name): *c = 1 for a grey
 * image (PNG grey or grey+alpha, JPEG grey, PGM, BMP with a grey palette), 3 otherwise; *h, *w its
 * size. Errors name the file, as kd_image_load's do. */
kd_status kd_image_probe(const char *path, int *c, int *h, int *w, kd_error *err);

#endif
