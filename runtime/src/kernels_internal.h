/* Private to runtime/src: the argument checks every kernel variant shares (kernels_check.c: one set
 * of rules, so every variant returns the same status for the same bad call), and what the optimised
 * kernels (x86 and NEON) share: scratch layout, conv geometry, the pools' rounded mean. Not installed. */
#ifndef KDRT_KERNELS_INTERNAL_H
#define KDRT_KERNELS_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

#include "kdrt_kernels.h"

/* Argument checks (kernels_check.c), used by every variant: NULL pointers -> BAD_ARG, dimensions
 * not >= 1 or with more than INT32_MAX elements or out of the geometry rules -> BAD_SHAPE,
 * zero points / clamps / multipliers / shifts out of range -> BAD_QUANT. */
int kdrt_dims_ok(const kdrt_dims *d);
int32_t kdrt_dims_count(const kdrt_dims *d);
int kdrt_s8_ok(int32_t v);
int kdrt_activation_ok(kdrt_activation a);
/* Windows of size k, stride s, leading pad p over an input of size in giving `out` outputs: every
 * window overlaps the input (so a pooling window is never empty). */
int kdrt_window_ok(int32_t in, int32_t out, int32_t k, int32_t s, int32_t p);
kdrt_status kdrt_check_pool2d_s8(const int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                                 const kdrt_dims *in_dims, const kdrt_pool_params *p);
kdrt_status kdrt_check_add_s8(const int8_t *out, const int8_t *in1, const int8_t *in2, const kdrt_dims *dims,
                              const kdrt_add_params *p);
kdrt_status kdrt_check_conv2d_s8(const int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                                 const kdrt_dims *in_dims, const int8_t *filter, const kdrt_dims *filter_dims,
                                 const kdrt_conv_params *params, const kdrt_channel_quant *quant);
kdrt_status kdrt_check_depthwise_conv2d_s8(const int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                                           const kdrt_dims *in_dims, const int8_t *filter,
                                           const kdrt_dims *filter_dims, const kdrt_conv_params *params,
                                           const kdrt_channel_quant *quant);
kdrt_status kdrt_check_fully_connected_s8(const int8_t *out, const kdrt_dims *out_dims, const int8_t *in,
                                          const kdrt_dims *in_dims, const int8_t *weight,
                                          const kdrt_fc_params *params, const kdrt_channel_quant *quant);

/* Output pixels per im2col block of the optimised conv2d kernels: a multiple of every register
 * tile height they use (6, 8, 12, 16), small enough that a block of patches stays in L1. */
#define KDRT_CONV_PIXEL_BLOCK 48

/* Scratch pointers are rounded up to this many bytes (one cache line, one zmm), so every scratch
 * size includes this much slack and the caller's buffer needs no particular alignment. */
#define KDRT_SCRATCH_ALIGN 64

/* 0 when the dims pointers are NULL or not all >= 1 (the kernel then rejects the call anyway). */
static inline int kdrt_scratch_dims_ok(const kdrt_dims *d) {
    return d && d->n >= 1 && d->h >= 1 && d->w >= 1 && d->c >= 1;
}

static inline size_t kdrt_round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

/* The caller's scratch buffer rounded up to the next KDRT_SCRATCH_ALIGN boundary. */
static inline uint8_t *kdrt_align_scratch(void *p) {
    uintptr_t u = (uintptr_t)p;
    return (uint8_t *)((u + (KDRT_SCRATCH_ALIGN - 1)) & ~(uintptr_t)(KDRT_SCRATCH_ALIGN - 1));
}

/* The geometry of one (depthwise) conv call, read once by the optimised kernels (x86 and NEON).
 * K: taps per output channel (KH * KW * C of the filter); lo/hi: the clamp range minus the output
 * zero point. */
typedef struct kdrt_conv_geom {
    int32_t N, H, W, C, OH, OW, OC, KH, KW, sh, sw, ph, pw, K;
    int32_t zp_in, zp_out, lo, hi;
} kdrt_conv_geom;

static inline void kdrt_geom_init(kdrt_conv_geom *g, const kdrt_dims *od, const kdrt_dims *id,
                                  const kdrt_dims *fd, const kdrt_conv_params *p) {
    g->N = id->n, g->H = id->h, g->W = id->w, g->C = id->c;
    g->OH = od->h, g->OW = od->w, g->OC = od->c;
    g->KH = fd->h, g->KW = fd->w;
    g->sh = p->stride.h, g->sw = p->stride.w, g->ph = p->padding.h, g->pw = p->padding.w;
    g->K = fd->h * fd->w * fd->c;
    g->zp_in = p->input_zero_point, g->zp_out = p->output_zero_point;
    g->lo = p->activation.min - p->output_zero_point, g->hi = p->activation.max - p->output_zero_point;
}

/* sum / count rounded to nearest, ties away from zero (the average pools' rule); count >= 1. */
static inline int32_t kdrt_rounded_mean(int32_t sum, int32_t count) {
    return sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
}

#endif
