/* Post-training int8 quantization and integer evaluation.
 *
 * A kd_int8_model is the integer form of an fp32 kd_model, in the runtime's terms (kdrt.h): NHWC
 * activations, int8 weights per output channel symmetric (conv OHWI, depthwise (1,KH,KW,C), fully
 * connected (O, F) with F in NHWC order), int32 biases at scale in_scale * w_scale[c], per-tensor
 * asymmetric activations, Q31 multipliers + shifts from kdrt_prepare_channel_quant. The integer
 * evaluation runs the runtime's reference kernels (kdrt_*_s8_ref) layer by layer: the training side
 * and the device share one implementation. The arithmetic is docs/QUANTIZATION.md.
 *
 * Pipeline: kd_fold_batchnorm -> kd_int8_calibrate (ranges of every layer's eval-mode output on N
 * training images) -> kd_int8_build; kd_int8_quantize does all three.
 *
 * Mapping of the fp32 layers:
 *   conv2d (groups 1)            -> conv2d; groups == channels (depthwise) -> depthwise conv2d
 *   linear                       -> fully connected (after a flatten of (C,H,W), columns CHW -> HWC)
 *   relu after conv/linear/add/pool whose output feeds only the relu -> fused (output clamp)
 *   any other relu               -> a 1x1 max pool with the ReLU clamp (same quantization)
 *   maxpool / avgpool / global_avgpool -> max / avg pool (output quantization = input's)
 *   add                          -> add (kdrt_add_prepare)
 *   flatten, dropout             -> nothing (flatten is a no-op in NHWC; dropout is eval identity)
 *   gelu, unfolded batch norm, grouped non-depthwise conv -> KD_STATUS_BAD_MODEL naming the layer.
 *
 * Input quantization: the model input is the normalised image x = (p / 255 - mean_c) / std_c of
 * kd_batch_fill (channel c), whose exact range is the union over channels of
 * [-mean_c/std_c, (1 - mean_c)/std_c]; it is quantized with that range (docs/QUANTIZATION.md
 * section 1). With one mean and std for all channels: s_in = (hi - lo) / 255 = 1 / (255 std),
 * zp_in = clamp(round(-128 - lo / s_in)) = clamp(round(255 mean - 128)), q = clamp(round(x / s_in) + zp_in),
 * so pixel p maps to p - 128 up to the rounding of 255 * mean. A device does the same from the
 * uint8 pixel (kdrt_quantize_input_u8). mean/std are the fp32 model's own normalisation when it has
 * one (kd_model.norm_mean / norm_std; per channel, kd_int8_model.norm_mean when they differ), else
 * the calibration set's statistics; they are stored in the model, and kd_int8_evaluate feeds it
 * images normalised so. A model of float values (kd_model.input_values: x = (v - mean_c) / std_c)
 * takes the range of its normalised calibration inputs instead (kdrt_quantize_input_f32). */
#ifndef DISTILL_QUANTIZE_H
#define DISTILL_QUANTIZE_H
#include <stddef.h>
#include <stdint.h>

#include "distill/data.h"
#include "distill/model.h"
#include "distill/status.h"
#include "distill/int8.h"
#include "distill/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Calibration ------------------------------------------------------------------------------ */

typedef enum kd_calib_method {
    KD_CALIB_MINMAX = 0,  /* observed [min, max] */
    KD_CALIB_PERCENTILE,  /* [(100-p)th, pth] percentile of the observed values (from a histogram) */
    KD_CALIB_MSE          /* the clipping range [a*min, b*max], a, b in (0, 1], minimising the mean
                             squared error of quantize-dequantize over the observed values */
} kd_calib_method;

const char *kd_calib_method_name(kd_calib_method m);
/* "minmax", "percentile", "mse" -> method; returns 0 on success, -1 for an unknown name. */
int kd_calib_method_parse(const char *s, kd_calib_method *m);

typedef struct kd_calib_config {
    int n_images;        /* first N samples of the calibration set; 0 (the default) = 1000, or
                            all of them when the set has fewer (kd_calib_count); more than the
                            set has is an error */
    kd_calib_method method;
    double percentile;   /* for KD_CALIB_PERCENTILE, in (50, 100] (default 99.99) */
    int bins;            /* histogram bins per tensor for percentile / mse (default 4096) */
    int batch;           /* fp32 forward batch (default 100) */
    int threads;         /* default 1 */
    /* Weights: 8 (default) = int8 per output channel; 4 = int4 with per-group scales (below). */
    int weight_bits;
    int weight_group;    /* weight_bits 4: weights per group along a channel's row (default 32) */
} kd_calib_config;

void kd_calib_config_default(kd_calib_config *c);

/* The range chosen for every layer's output (indexed like m->layers) and for the model input.
 * Before use, the quantization parameters widen each range to include 0. */
typedef struct kd_calib_ranges {
    int n_layers;
    float *lo, *hi;          /* (n_layers) */
    float in_lo, in_hi;      /* model input: the exact range of normalised pixels */
    float in_mean, in_std;   /* the model input's normalisation (the model's own, or the calibration set's) */
} kd_calib_ranges;

/* The number of samples calibration on a set of n samples uses: cfg->n_images, or for 0 (the
 * default) min(1000, n). */
int kd_calib_count(const kd_calib_config *cfg, int n);

/* Run m (eval mode; BN folded or not) on the first cfg->n_images images of ds and choose the range
 * of every layer output. Errors (KD_STATUS_BAD_ARG): 0 images or more than ds has, images whose
 * shape differs from the model input, a NaN/inf activation (named by layer). Uses m's batch memory
 * (kd_model_set_batch is called). Free with kd_calib_ranges_free. */
kd_status kd_int8_calibrate(kd_model *m, const kd_dataset *ds, const kd_calib_config *cfg, kd_calib_ranges *r,
                            kd_error *err);
void kd_calib_ranges_free(kd_calib_ranges *r);

/* Build the int8 model from an fp32 model whose batch norms are folded (kd_fold_batchnorm) and the
 * calibrated ranges of that same model. cfg gives the weight format (NULL = int8). */
kd_status kd_int8_build(const kd_model *folded, const kd_calib_ranges *r, const kd_calib_config *cfg,
                        kd_int8_model **out, kd_error *err);
/* Fold batch norms, calibrate and build. `m` is not modified. */
kd_status kd_int8_quantize(const kd_model *m, const kd_dataset *calib, const kd_calib_config *cfg,
                           kd_int8_model **out, kd_error *err);

/* Bytes of the fp32 parameters of m (conv/linear weights and biases, BN parameters and buffers). */
size_t kd_fp32_param_bytes(const kd_model *m);

/* ---- Integer evaluation ----------------------------------------------------------------------- */

/* Quantize B normalised images x (B, C, H, W) (as kd_batch_fill gives) to int8 NHWC with q->in_q. */
void kd_int8_quantize_input(const kd_int8_model *q, int8_t *out, const float *x, int B);
/* Int8 forward of B images already quantized (B, H, W, C) NHWC: every layer is one runtime
 * reference kernel call. logits: (B, n_classes) int8 at the last layer's out_q. */
kd_status kd_int8_forward_q(const kd_int8_model *q, const int8_t *in, int B, int8_t *logits, kd_error *err);
/* kd_int8_quantize_input then kd_int8_forward_q. */
kd_status kd_int8_forward(const kd_int8_model *q, const float *x, int B, int8_t *logits, kd_error *err);
/* Accuracy (fraction in [0, 1]) of the argmax of the int8 logits (ties: lowest class) on ds, its
 * images normalised with the model's in_mean/in_std (as a device does). predictions (ds->n) may be NULL. threads >= 1 run batches in parallel. */
kd_status kd_int8_evaluate(const kd_int8_model *q, const kd_dataset *ds, int batch, int threads, double *accuracy,
                           int32_t *predictions, kd_error *err);

/* ---- Quantization-aware training ------------------------------------------------------------
 *
 * Fake quantization inside the fp32 model, so training sees exactly the values the integer model
 * will compute with: the model runs it (src/nn/fake_quant.h, which documents the arithmetic and
 * the straight-through gradient); this pass only attaches it. */

/* Attach fake quantization to `folded` (BN folded, the model q was built from): q's layers say
 * which weights and outputs are quantized, with q's scales, zero points and weight format. The
 * model owns it (kd_model_free frees it; kd_fake_quant_detach in model.h removes it). Errors: a
 * layer of q not found in the model. */
kd_status kd_fake_quant_attach(kd_model *folded, const kd_int8_model *q, kd_error *err);

/* A quantization-aware training run around kd_train (src/compress/qat_run.c).
 * Before: fold *m's batch norms (*m is replaced by the folded model, the old one freed;
 * *n_folded may be NULL), calibrate the activation ranges on calib with cfg, build the
 * post-training int8 model *ptq and attach fake quantization with its ranges to *m. On error
 * *ranges and *ptq may hold what was made; free them with kd_calib_ranges_free / kd_int8_free. */
kd_status kd_qat_prepare(kd_model **m, const kd_dataset *calib, const kd_calib_config *cfg, kd_calib_ranges *ranges,
                         kd_int8_model **ptq, int *n_folded, kd_error *err);
/* After training m: build the integer model with the same ranges, evaluate ptq and it on test with
 * integer arithmetic (accuracies in [0, 1], cfg->threads) and save it to path. */
kd_status kd_qat_finish(const kd_model *m, const kd_calib_ranges *ranges, const kd_calib_config *cfg,
                        const kd_int8_model *ptq, const kd_dataset *test, const char *path, double *acc_qat,
                        double *acc_ptq, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
