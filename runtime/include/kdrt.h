/* kdrt: the Distill device runtime. This header holds its types: status codes, tensor dimensions,
 * the int8 quantization parameters and the per-operator parameter structs the kernels take.
 * C99, no dependencies beyond <stdint.h> and <stddef.h>; nothing here allocates.
 * The arithmetic these types describe is specified in docs/QUANTIZATION.md. */
#ifndef KDRT_H
#define KDRT_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kdrt_status {
    KDRT_STATUS_OK = 0,
    KDRT_STATUS_BAD_ARG,     /* NULL pointer or a parameter out of its documented range */
    KDRT_STATUS_BAD_SHAPE,   /* dimensions that do not agree with each other or are not positive */
    KDRT_STATUS_BAD_QUANT,   /* a scale, zero point, multiplier, shift or clamp range out of range */
    KDRT_STATUS_NO_SCRATCH,  /* the kernel needs more scratch memory than the caller passed */
    /* Model loading and running (kdrt_model.h): */
    KDRT_STATUS_BAD_MODEL,     /* not a .kdm file, or a field, offset, size or geometry out of range */
    KDRT_STATUS_BAD_VERSION,   /* a .kdm file of a format version this runtime does not read */
    KDRT_STATUS_BAD_CHECKSUM,  /* the file's CRC-32 does not match its contents (corrupt or truncated) */
    KDRT_STATUS_BAD_ALIGNMENT, /* model bytes or arena not aligned to 4 bytes */
    KDRT_STATUS_NO_ARENA,      /* the arena is smaller than kdrt_arena_size() */
    KDRT_STATUS_NOT_PREPARED,  /* kdrt_invoke before kdrt_prepare, or a model that was not loaded */
    KDRT_STATUS_UNSUPPORTED    /* this build cannot run the model (e.g. a big-endian host) */
} kdrt_status;

/* Tensor dimensions, always NHWC: n (batch), h (rows), w (columns), c (channels, fastest varying).
 * Element (b, y, x, ch) is at ((b * h + y) * w + x) * c + ch. Every dimension must be >= 1 and the
 * element count must fit in int32_t.
 *
 * Why NHWC (as TFLite Micro and CMSIS-NN): the innermost loop of every kernel here runs over
 * channels, which are then contiguous in memory for both the activation and the weights (OHWI), so
 * a conv's dot product is one contiguous int8 run per filter tap: exactly what SIMD dot-product
 * instructions (Cortex-M4 SMLAD, NEON SDOT, AVX-512 VNNI) consume, with no gather and no im2col
 * transposition. Depthwise conv and pooling vectorise across channels the same way. The training
 * side is NCHW (what its im2col + SGEMM wants); the converter transposes weights to OHWI and
 * feature maps to NHWC once, at export, and permutes the first fully-connected layer's input
 * features after a flatten (NCHW flattening order differs from NHWC's). */
typedef struct kdrt_dims {
    int32_t n, h, w, c;
} kdrt_dims;

/* A pair of spatial sizes (filter size, stride, padding). */
typedef struct kdrt_hw {
    int32_t h, w;
} kdrt_hw;

/* Per-tensor affine quantization of an int8 activation: real = scale * (q - zero_point),
 * scale > 0 and finite, zero_point in [-128, 127]. Used by the parameter-preparation helpers and
 * the dequantize kernel; the kernels themselves take only integers. */
typedef struct kdrt_quant {
    float scale;
    int32_t zero_point;
} kdrt_quant;

/* Per-output-channel requantization: output channel ch's real multiplier
 *   in_scale * w_scale[ch] / out_scale  ~=  multiplier[ch] / 2^31 * 2^shift[ch]
 * multiplier[ch] in [0, 2^31 - 1] (a Q31 number; kdrt_quantize_multiplier gives 0 or a value in
 * [2^30, 2^31 - 1]), shift[ch] in [-31, 30] (positive = left shift). Both arrays have one entry per
 * output channel. Weights are symmetric (zero point 0), so no weight zero point appears anywhere. */
typedef struct kdrt_channel_quant {
    const int32_t *multiplier;
    const int32_t *shift;
} kdrt_channel_quant;

/* The output clamp [min, max], both in [-128, 127], min <= max. No activation: [-128, 127];
 * fused ReLU: [max(out_zero_point, -128), 127]; ReLU6: additionally max = min(127, zp + round(6 /
 * out_scale)). The clamp is applied after the output zero point is added. */
typedef struct kdrt_activation {
    int32_t min, max;
} kdrt_activation;

/* conv2d and depthwise conv2d (dilation 1, groups 1 or depthwise with channel multiplier 1).
 * padding is the top/left padding, each in [0, filter size - 1]; the bottom/right padding is
 * implied by the output size, which must keep every window overlapping the input:
 *   (out.h - 1) * stride.h - padding.h <= in.h - 1   (the same for w).
 * Padded positions contribute nothing (they hold the input zero point, i.e. real 0). */
typedef struct kdrt_conv_params {
    int32_t input_zero_point;  /* [-128, 127] */
    int32_t output_zero_point; /* [-128, 127] */
    kdrt_hw stride;            /* >= 1 */
    kdrt_hw padding;           /* top, left */
    kdrt_activation activation;
} kdrt_conv_params;

/* Fully connected: out[b][o] = requant(bias[o] + sum_i (in[b][i] - input_zero_point) * w[o][i]). */
typedef struct kdrt_fc_params {
    int32_t input_zero_point;  /* [-128, 127] */
    int32_t output_zero_point; /* [-128, 127] */
    kdrt_activation activation;
} kdrt_fc_params;

/* Max and average pooling. Input and output share scale and zero point (no requantization), as in
 * TFLite. Windows obey the same geometry rule as kdrt_conv_params; the average is over the
 * window's positions inside the input only (padding is not counted). filter.h * filter.w must be
 * at most 65536. */
typedef struct kdrt_pool_params {
    kdrt_hw filter;  /* >= 1 */
    kdrt_hw stride;  /* >= 1 */
    kdrt_hw padding; /* top, left, each in [0, filter - 1] */
    kdrt_activation activation;
} kdrt_pool_params;

/* Elementwise add of two int8 tensors with their own scales (TFLite's quantized add): both inputs
 * are brought to a common fixed-point scale 2 * max(s1, s2) / 2^left_shift, added, and requantized.
 * kdrt_add_prepare computes every field from the three kdrt_quant. Ranges: zero points in
 * [-128, 127], left_shift in [0, 22], input multipliers in [0, 2^31 - 1] with shifts in [-31, 0],
 * output multiplier in [0, 2^31 - 1] with shift in [-31, 30]. */
typedef struct kdrt_add_params {
    int32_t input1_zero_point, input1_multiplier, input1_shift;
    int32_t input2_zero_point, input2_multiplier, input2_shift;
    int32_t output_zero_point, output_multiplier, output_shift;
    int32_t left_shift; /* 20 from kdrt_add_prepare, as TFLite for int8 */
    kdrt_activation activation;
} kdrt_add_params;

/* Caller-owned scratch memory for a kernel (CMSIS-NN's cmsis_nn_context). The `_ref` kernels need
 * none and accept NULL; optimised variants report their need with a `_scratch_size` function. */
typedef struct kdrt_ctx {
    void *buf;
    size_t size;
} kdrt_ctx;

#ifdef __cplusplus
}
#endif
#endif
