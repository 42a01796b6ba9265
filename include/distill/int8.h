/* The int8 model: the integer form of an fp32 kd_model in the runtime's terms (kdrt.h: NHWC
 * activations, per-channel int8 weights, int32 biases, Q31 multipliers + shifts). It is the data
 * that the quantization passes (quantize.h) build, the integer evaluation runs, and the int8
 * safetensors checkpoint and the .kdm file hold. It is the one public header of libdistill that
 * includes the runtime's types, on purpose: the int8 model is the runtime's data, not a copy of it. */
#ifndef DISTILL_INT8_H
#define DISTILL_INT8_H
#include <stddef.h>
#include <stdint.h>

#include "distill/model.h"
#include "distill/status.h"
#include "kdrt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- The int8 model --------------------------------------------------------------------------- */

typedef enum kd_int8_op {
    KD_INT8_CONV = 0,
    KD_INT8_DEPTHWISE,
    KD_INT8_FC,
    KD_INT8_MAXPOOL,
    KD_INT8_AVGPOOL,
    KD_INT8_ADD
} kd_int8_op;

const char *kd_int8_op_name(kd_int8_op op);

typedef struct kd_int8_layer {
    kd_int8_op op;
    char name[KD_NAME_MAX];  /* the fp32 layer it computes (the conv, not its fused ReLU) */
    int src;                 /* index of the fp32 layer whose output it produces (the fused ReLU's) */
    int n_inputs;
    int inputs[2];           /* int8 layer indices, or KD_MODEL_INPUT */
    int relu;                /* a ReLU is fused into the output clamp */
    kdrt_dims in_dims, out_dims;  /* per sample (n = 1); fc: out (1,1,1,O) */
    kdrt_quant out_q;        /* output quantization */
    /* conv / depthwise / fc */
    kdrt_dims filter_dims;   /* conv (OC,KH,KW,C); depthwise (1,KH,KW,C); fc (O,1,1,F) */
    int8_t *weight;
    int32_t *bias;           /* (OC), never NULL for these ops */
    float *w_scale;          /* (OC) */
    int32_t *mult, *shift;   /* (OC) */
    kdrt_conv_params conv;
    kdrt_fc_params fc;
    kdrt_pool_params pool;
    kdrt_add_params add;
} kd_int8_layer;

typedef struct kd_int8_model {
    char name[KD_NAME_MAX];
    int weight_bits;         /* 8, or 4 (int4 per group held as int8 values m_g * v, see distill/quant.h) */
    int weight_group;
    int in_c, in_h, in_w, n_classes;
    kdrt_quant in_q;         /* input quantization (distill/quantize.h, top) */
    float in_mean, in_std;   /* the normalisation it assumes (channel 0's when norm_mean is set) */
    /* A normalisation that differs across channels: in_c means and stds (one malloc'd block,
     * norm_std = norm_mean + in_c; freed by kd_int8_free), else NULL and in_mean / in_std hold it
     * for every channel. */
    float *norm_mean, *norm_std;
    int input_values;        /* 1: the input is float values v, x = (v - mean) / std (no / 255); 0: pixels */
    int n_layers;
    kd_int8_layer *layers;   /* topological order; the last one gives the logits */
} kd_int8_model;

void kd_int8_free(kd_int8_model *q);
/* Set q's input normalisation from mean[0..in_c) and std[0..in_c) (q->in_c set): in_mean / in_std =
 * channel 0's, and norm_mean / norm_std only when the channels differ. KD_STATUS_BAD_MODEL for a
 * non-finite value or a std <= 0 (naming the channel). */
kd_status kd_int8_set_norm(kd_int8_model *q, const float *mean, const float *std, kd_error *err);

/* Bytes of the int8 parameters: int8 weights + int32 biases + int32 multipliers and shifts. */
size_t kd_int8_param_bytes(const kd_int8_model *q);
/* ---- File (src/format/ckpt_int8.c, on the safetensors layer) ---------------------------------- */

/* Write a safetensors file: "<layer>.weight" I8 (runtime layout), "<layer>.bias" / ".multiplier" /
 * ".shift" I32, "<layer>.w_scale" F32, and in the metadata: "format": "distill-int8", "version",
 * "int8_model" (JSON: input quantization and normalisation, and per layer op, inputs, dims,
 * zero points, scales, clamps, strides, paddings and add parameters). Written atomically. */
kd_status kd_int8_save(const char *path, const kd_int8_model *q, kd_error *err);
/* Read a file written by kd_int8_save back (every field validated; the kernels check the quantization
 * ranges when they run). The layers' `src` is -1 (the fp32 model is not in the file). */
kd_status kd_int8_load(const char *path, kd_int8_model **out, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
