/* kdrt models: the deployable `.kdm` file format and the API that runs one. A .kdm file is loaded
 * in place (no copy: weights are used straight from flash or an mmap), validated completely, and
 * run with one caller-supplied arena whose exact size kdrt_arena_size() reports:
 *
 *     kdrt_model m;
 *     if (kdrt_model_load(&m, bytes, len) != KDRT_STATUS_OK) ...   // bytes: 4-byte aligned
 *     size_t need = kdrt_arena_size(&m);                          // exact, no guessing
 *     if (kdrt_prepare(&m, arena, need) != KDRT_STATUS_OK) ...     // arena: 4-byte aligned
 *     kdrt_invoke(&m, input, logits);                              // batch 1, int8 in, int8 out
 *
 * C99, no malloc, no printing, no libc beyond <string.h>. The format is specified here, beside the
 * structs that define it, and in docs/FORMAT.md. */
#ifndef KDRT_MODEL_H
#define KDRT_MODEL_H
#include <stddef.h>
#include <stdint.h>

#include "kdrt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- The .kdm format, version 1 ----------------------------------------------------------------
 *
 * Little-endian throughout. Three regions, in this order:
 *
 *   offset 0                 kdrt_kdm_header (64 bytes)
 *   offset 64                n_layers kdrt_kdm_layer records (40 bytes each), in execution order
 *   64 + 40 n                only with header flag KDRT_KDM_INPUT_NORM: the input normalisation
 *                            per channel, float32 mean[in_c] then float32 std[in_c] (8 in_c bytes)
 *   align16(that end)        data section: one block per conv / depthwise / fully-connected layer,
 *                            each starting at a 16-byte-aligned file offset (data_offset):
 *                              bias     int32[OC]      at data_offset
 *                              w_scale  float32[OC]    at data_offset + 4 OC
 *                              weight   int8[...]      at align16(data_offset + 8 OC)
 *                            weight layouts: conv OHWI (OC, KH, KW, C); depthwise (1, KH, KW, C);
 *                            fully connected (O, F) with F = H*W*C of the input in NHWC order.
 *   file_size                end (bytes past it, e.g. flash padding, are ignored)
 *
 * With the file at a 16-byte-aligned address, every weight block is 16-byte aligned (SIMD loads)
 * and every int32/float array 4-byte aligned, so the kernels read them in place.
 *
 * The checksum is the CRC-32 (IEEE 802.3 polynomial, reflected, as zlib's crc32()) of the bytes
 * [12, file_size): everything after the checksum field. magic, version and checksum themselves are
 * checked for equality.
 *
 * What is NOT stored: requantization multipliers and shifts, and the add operator's parameters.
 * kdrt_prepare computes them from the stored scales with kdrt_prepare_channel_quant and
 * kdrt_add_prepare (integer-exact, no libm), exactly as the training side does, so both sides get
 * identical integers; the file stays compact (int8 weights, int32 biases, float scales, a few
 * parameters per layer).
 *
 * Activation memory plan: the writer assigns every layer's output (except the last, which goes to
 * the caller's output buffer) an offset in the arena's activation area, reusing memory between
 * tensors whose lifetimes do not overlap; the plan is stored (act_offset, activation_bytes) and the
 * loader checks it: two outputs alive at the same time never share a byte. The runtime thus needs
 * no planner and no memory to compute its arena size. */

#define KDRT_KDM_MAGIC "KDMF"     /* bytes 'K' 'D' 'M' 'F' */
#define KDRT_KDM_VERSION 1
#define KDRT_KDM_HEADER_SIZE 64
#define KDRT_KDM_LAYER_SIZE 40
#define KDRT_KDM_NAME_MAX 16      /* model name bytes in the header (NUL-padded, not necessarily terminated) */
#define KDRT_KDM_MAX_LAYERS 32767 /* layer indices are int16 */
#define KDRT_MODEL_INPUT (-1)     /* a layer input that is the model's input */

typedef struct kdrt_kdm_header {
    char magic[4];             /*  0: KDRT_KDM_MAGIC */
    uint16_t version;          /*  4: KDRT_KDM_VERSION */
    uint16_t header_size;      /*  6: 64 in version 1 */
    uint32_t checksum;         /*  8: CRC-32 of bytes [12, file_size) */
    uint32_t file_size;        /* 12: bytes of the model, header included */
    uint16_t n_layers;         /* 16: 1 .. KDRT_KDM_MAX_LAYERS */
    uint16_t n_classes;        /* 18: >= 1; the last layer's output is (1, 1, n_classes) */
    uint16_t in_h, in_w, in_c; /* 20: input (1, in_h, in_w, in_c) NHWC, each >= 1 */
    uint16_t flags;            /* 26: KDRT_KDM_INPUT_* bits, others 0 */
    uint32_t activation_bytes; /* 28: size of the activation area = max(act_offset + bytes) */
    float in_scale;            /* 32: input quantization: > 0, finite */
    int32_t in_zero_point;     /* 36: [-128, 127] */
    float in_mean, in_std;     /* 40, 44: normalisation x = (p / 255 - mean) / std; std > 0 (with
                                  KDRT_KDM_INPUT_NORM: channel 0's, the block holds every channel's) */
    char name[KDRT_KDM_NAME_MAX]; /* 48: optional short model name */
} kdrt_kdm_header;

/* Header flags. A file without them is read as it always was; readers older than them refuse a file
 * with any (flags had to be 0), rather than feed it inputs normalised the wrong way.
 *   INPUT_NORM: the channels' normalisations differ; the block after the layer table holds them,
 *     and channel c of the input is normalised with mean[c], std[c] (each finite, std > 0).
 *   INPUT_VALUES: the input is float values v (features, readings), x = (v - mean) / std with no
 *     / 255; kdrt_quantize_input_f32 quantizes them (kdrt_quantize_input_u8 refuses such a model). */
#define KDRT_KDM_INPUT_NORM 0x0001
#define KDRT_KDM_INPUT_VALUES 0x0002

/* Operators of a layer record (values are part of the format). */
typedef enum kdrt_op {
    KDRT_OP_CONV2D = 1,           /* kdrt_conv2d_s8 */
    KDRT_OP_DEPTHWISE_CONV2D = 2, /* kdrt_depthwise_conv2d_s8, channel multiplier 1 */
    KDRT_OP_FULLY_CONNECTED = 3,  /* kdrt_fully_connected_s8 */
    KDRT_OP_MAX_POOL2D = 4,       /* kdrt_max_pool2d_s8 */
    KDRT_OP_AVG_POOL2D = 5,       /* kdrt_avg_pool2d_s8 */
    KDRT_OP_ADD = 6               /* kdrt_add_s8, two inputs of the same shape */
} kdrt_op;

/* Layer flags. RELU is informational (for tools): a ReLU is fused into the clamp, which alone
 * decides the arithmetic (when the output zero point is -128 a ReLU clamp equals no clamp). */
#define KDRT_KDM_FLAG_RELU 0x01

/* One layer. Its input shape is its producer's output shape (or the model input's), so it is not
 * stored. Fields an operator does not use must be 0 (input[1]: -1). */
typedef struct kdrt_kdm_layer {
    uint8_t op;                   /*  0: kdrt_op */
    uint8_t flags;                /*  1: KDRT_KDM_FLAG_* bits, others 0 */
    int8_t act_min, act_max;      /*  2: output clamp, act_min <= act_max (fused ReLU: [zp, 127]) */
    int16_t input[2];             /*  4: earlier layer index or KDRT_MODEL_INPUT; input[1] only for add */
    uint16_t out_h, out_w, out_c; /*  8: output (1, out_h, out_w, out_c), each >= 1 */
    int16_t out_zero_point;       /* 14: [-128, 127] */
    uint16_t kernel_h, kernel_w;  /* 16: conv, depthwise, pools: window size >= 1 */
    uint16_t stride_h, stride_w;  /* 20: conv, depthwise, pools: >= 1 */
    uint16_t pad_h, pad_w;        /* 24: top / left padding, <= kernel - 1 */
    float out_scale;              /* 28: > 0, finite; pools: equal to the input's (no requantization) */
    uint32_t act_offset;          /* 32: output's offset in the activation area; 0 for the last layer */
    uint32_t data_offset;         /* 36: conv / depthwise / fc: file offset of its data block, 16-aligned */
} kdrt_kdm_layer;

/* The C99 way to assert a layout at compile time: a negative array size does not compile. */
typedef char kdrt_check_header_size[sizeof(kdrt_kdm_header) == KDRT_KDM_HEADER_SIZE ? 1 : -1];
typedef char kdrt_check_layer_size[sizeof(kdrt_kdm_layer) == KDRT_KDM_LAYER_SIZE ? 1 : -1];
typedef char kdrt_check_header_name[offsetof(kdrt_kdm_header, name) == 48 ? 1 : -1];
typedef char kdrt_check_layer_data[offsetof(kdrt_kdm_layer, data_offset) == 36 ? 1 : -1];

/* CRC-32 (IEEE, reflected, init and final xor 0xFFFFFFFF; zlib's crc32(0, data, len)). Continue a
 * running CRC by passing the previous result as crc (start with 0). */
uint32_t kdrt_crc32(uint32_t crc, const void *data, size_t len);

/* ---- The decoded model ------------------------------------------------------------------------- */

/* A layer as the runtime sees it, decoded and with its input shapes and quantization resolved. */
typedef struct kdrt_layer {
    kdrt_op op;
    int32_t n_inputs;           /* 1, or 2 for add */
    int32_t relu;               /* the writer fused a ReLU (KDRT_KDM_FLAG_RELU); informational */
    int32_t input[2];           /* earlier layer index or KDRT_MODEL_INPUT; input[1] = -1 if unused */
    kdrt_dims in_dims, out_dims; /* n = 1 */
    kdrt_quant in_q[2], out_q;  /* input quantization comes from the producer */
    kdrt_activation activation;
    kdrt_hw kernel, stride, padding;  /* conv, depthwise, pools */
    kdrt_dims filter_dims;      /* conv (OC,KH,KW,C); depthwise (1,KH,KW,C); fc (O,1,1,F); else 0 */
    const int8_t *weight;       /* in the model bytes; NULL for pools and add */
    const int32_t *bias;        /* (OC) */
    const float *w_scale;       /* (OC) */
    uint32_t act_offset;        /* output offset in the activation area (last layer: caller's output) */
} kdrt_layer;

/* A loaded model. Fill it with kdrt_model_load; the fields are read-only for the caller. It points
 * into the model bytes and (after kdrt_prepare) into the arena, which must both outlive it and not
 * change. Not thread-safe to invoke concurrently (the arena holds the activations); load the same
 * bytes into two kdrt_model with two arenas for that. */
/* Channels whose pixel -> input table kdrt_model_load builds (RGB); further channels of a model
 * normalised per channel are computed pixel by pixel. */
#define KDRT_INPUT_LUT_CHANNELS 3

typedef struct kdrt_model {
    const uint8_t *bytes;
    size_t size;                 /* file_size */
    int32_t n_layers, n_classes;
    kdrt_dims input_dims;        /* (1, H, W, C) */
    kdrt_quant input_quant, output_quant;
    float input_mean, input_std;
    const float *input_norm_mean, *input_norm_std; /* (in_c) in the model bytes (KDRT_KDM_INPUT_NORM), else NULL */
    int32_t input_values;        /* KDRT_KDM_INPUT_VALUES: the input is float values, not pixels */
    char name[KDRT_KDM_NAME_MAX + 1];
    size_t activation_bytes;     /* activation area of the arena */
    size_t param_bytes;          /* prepared multipliers, shifts and add parameters */
    size_t scratch_bytes;        /* kernel scratch (0 with the reference kernels) */
    uint8_t *arena;              /* set by kdrt_prepare */
    int32_t state;               /* 0: nothing, 1: loaded, 2: prepared */
    int8_t input_lut[KDRT_INPUT_LUT_CHANNELS][256]; /* kdrt_quantize_input_u8's table: pixel value of
                                    channel c -> model input (row 0 only without a per-channel block) */
} kdrt_model;

/* Load a model from `len` bytes at `bytes` (4-byte aligned; 16 recommended, see above) without
 * copying: checks magic (KDRT_STATUS_BAD_MODEL), version (BAD_VERSION), size and checksum
 * (BAD_CHECKSUM), then every field: each offset and size inside the file, dimensions positive and
 * consistent with each operator's geometry (the kernels' rules, kdrt_kernels.h), inputs referring to
 * earlier layers, quantization parameters in range, the activation plan free of overlaps (BAD_MODEL,
 * or BAD_SHAPE / BAD_QUANT for the geometry and the quantization).
 * len may exceed the file size (trailing bytes are ignored). On failure *m is cleared. */
kdrt_status kdrt_model_load(kdrt_model *m, const void *bytes, size_t len);

/* Exact arena bytes kdrt_prepare needs: the activation area + multipliers/shifts + kernel scratch.
 * 0 for a model that is not loaded. */
size_t kdrt_arena_size(const kdrt_model *m);

/* Compute the requantization parameters into the arena and bind it. arena: 4-byte aligned, len >=
 * kdrt_arena_size(m) (else KDRT_STATUS_NO_ARENA; BAD_ALIGNMENT). May be called again with another arena. */
kdrt_status kdrt_prepare(kdrt_model *m, void *arena, size_t len);

/* Run the model on one input: input (in_h, in_w, in_c) int8 NHWC quantized with m->input_quant
 * (kdrt_quantize_input_u8 does it from pixels); output (n_classes) int8 logits at m->output_quant.
 * output must not overlap input or the arena. Status of the first kernel that refuses, if any. */
kdrt_status kdrt_invoke(kdrt_model *m, const int8_t *input, int8_t *output);

/* Layer i (0 <= i < n_layers) of a loaded model, decoded. */
kdrt_status kdrt_model_layer(const kdrt_model *m, int32_t i, kdrt_layer *out);

/* ---- Helpers ------------------------------------------------------------------------------------ */

/* Quantize uint8 pixels to the model input, as the training side does (kd_batch_fill then
 * kd_int8_quantize_input): x = p * (1 / (255 std_c)) + (-mean_c / std_c) in float, then
 * q = clamp(round(x / in_scale) + in_zero_point, -128, 127), round to nearest, ties away from zero;
 * mean_c, std_c the channel's (KDRT_KDM_INPUT_NORM) or the header's. pixels and out: in_h * in_w *
 * in_c values; pixels in the same NHWC order (for one channel, the image row by row).
 * KDRT_STATUS_BAD_ARG for a model of float values (KDRT_KDM_INPUT_VALUES). */
kdrt_status kdrt_quantize_input_u8(const kdrt_model *m, int8_t *out, const uint8_t *pixels);
/* The same for one pixel value, from m's input quantization and normalisation fields (m need not be
 * loaded): the header's mean and std, whatever the flags (as before flags existed).
 * kdrt_model_load tabulates it into m->input_lut, which kdrt_quantize_input_u8 reads, so a
 * device without a double-precision FPU pays for its double division 256 times per load, not once
 * per pixel of every image. */
int8_t kdrt_quantize_pixel(const kdrt_model *m, uint8_t p);
/* Pixel p of input channel c (0 <= c < in_c, else the header's normalisation): as
 * kdrt_quantize_pixel with channel c's mean and std. */
int8_t kdrt_quantize_pixel_channel(const kdrt_model *m, int32_t c, uint8_t p);
/* Float value v of input channel c (feature c of a table): x = v * (1 / std_c) + (-mean_c / std_c)
 * in float, as kd_batch_fill, then rounded as above (NaN gives -128). */
int8_t kdrt_quantize_value(const kdrt_model *m, int32_t c, float v);
/* in_h * in_w * in_c float values (NHWC) of a KDRT_KDM_INPUT_VALUES model to its input
 * (KDRT_STATUS_BAD_ARG for a pixel model: use kdrt_quantize_input_u8). */
kdrt_status kdrt_quantize_input_f32(const kdrt_model *m, int8_t *out, const float *values);

/* The class of the largest logit (ties: the lowest index), or -1 for bad arguments. */
int32_t kdrt_output_argmax(const kdrt_model *m, const int8_t *logits);

/* out[c] = output_scale * (logits[c] - output_zero_point), c in [0, n_classes). */
kdrt_status kdrt_output_dequantize(const kdrt_model *m, float *out, const int8_t *logits);

/* Class probabilities: probs[c] = softmax(output_scale * (logits - output_zero_point))[c], in float
 * without libm (2^x from a polynomial: within 1e-6 of the exact value for every probability). */
kdrt_status kdrt_output_softmax(const kdrt_model *m, float *probs, const int8_t *logits);

/* A constant English name of a status ("ok", "bad model", ...). */
const char *kdrt_status_string(kdrt_status s);

#ifdef __cplusplus
}
#endif
#endif
