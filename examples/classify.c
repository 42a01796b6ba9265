/* classify: the smallest kdrt program. The model is compiled in as a C array written by
 * `distill export MODEL -o model_kdm.h` (model_kdm[] and MODEL_KDM_ARENA_SIZE); the arena is a
 * static buffer of exactly that size. Reads one image (raw uint8 pixels, row by row, H*W*C bytes)
 * from a file or stdin and prints its class. No malloc: load, prepare, quantize, invoke. */
#include <stdio.h>

#include "kdrt_model.h"
#include "model_kdm.h"

static int32_t arena[(MODEL_KDM_ARENA_SIZE + 3) / 4]; /* int32_t: 4-byte aligned, as kdrt_prepare wants */

int main(int argc, char **argv) {
    static uint8_t pixels[1 << 16];
    static int8_t input[1 << 16], logits[1 << 16];
    kdrt_model m;
    kdrt_status st = kdrt_model_load(&m, model_kdm, sizeof model_kdm);
    if (st == KDRT_STATUS_OK) st = kdrt_prepare(&m, arena, sizeof arena);
    if (st != KDRT_STATUS_OK) return fprintf(stderr, "classify: %s\n", kdrt_status_string(st)), 1;
    size_t n = (size_t)m.input_dims.h * m.input_dims.w * m.input_dims.c;
    FILE *f = argc > 1 ? fopen(argv[1], "rb") : stdin;
    if (!f || n > sizeof pixels || fread(pixels, 1, n, f) != n) return fprintf(stderr, "classify: no image\n"), 1;
    kdrt_quantize_input_u8(&m, input, pixels);
    if ((st = kdrt_invoke(&m, input, logits)) != KDRT_STATUS_OK)
        return fprintf(stderr, "classify: %s\n", kdrt_status_string(st)), 1;
    printf("class %d (model %s, arena %zu bytes)\n", (int)kdrt_output_argmax(&m, logits), m.name, sizeof arena);
    return 0;
}
