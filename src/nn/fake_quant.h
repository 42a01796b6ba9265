/* Fake quantization inside the fp32 model (quantization-aware training): the executor's half.
 * kd_model_forward / kd_model_backward_ex run these hooks when the model has one
 * (kd_model_fake_quant); src/compress/qat.c (kd_fake_quant_attach, quantize.h) decides from an
 * int8 model which layers they apply to.
 *
 * Training sees exactly the values the integer model
 * will compute with (Jacob et al. 2018): each forward replaces the weights of the conv/linear layers
 * the int8 model quantizes by their dequantized int8 (or int4-group) values, and rounds every
 * tensor the int8 model stores (the outputs of the fp32 layers its layers produce, fused ReLUs
 * included) to its int8 grid: y = s * (clamp(round(x / s) + zp, lo, hi) - zp). Backward is the
 * straight-through estimator: the weights' gradient is taken at the fake-quantized values and
 * applied to the fp32 weights; an activation's gradient passes where the output is inside the
 * clamp range and is zero where it sits on a clamp bound (saturated). The activation ranges are
 * fixed (those the int8 model was built with), so after training kd_int8_build with the same
 * ranges gives an integer model that computes what training saw, up to the input's rounding and
 * the bias's int32 rounding, which are not simulated. */
#ifndef KD_NN_FAKE_QUANT_H
#define KD_NN_FAKE_QUANT_H
#include <stddef.h>
#include <stdint.h>

#include "distill/model.h"
#include "distill/quant.h"
#include "distill/status.h"
#include "nn/model_internal.h"

typedef struct kd_fake_quant {
    int weight_bits, weight_group;
    unsigned char *w_on;     /* (n_layers) this conv/linear layer's weights are fake-quantized */
    float *wq;               /* (n_params) the fake-quantized weights (slices of w_on layers) */
    unsigned char *a_on;     /* (n_layers) this layer's output is fake-quantized */
    kdrt_quant *a_q;         /* (n_layers) its quantization */
    int32_t *a_lo, *a_hi;    /* (n_layers) its clamp (a fused ReLU clamps at the zero point) */
    int8_t *tmp_q;           /* scratch: one layer's quantized weights and channel scales */
    float *tmp_s;
} kd_fake_quant;

/* Give m a kd_fake_quant (replacing any) for weights of weight_bits (8, or 4 in groups of
 * weight_group, as kd_quantize_weights_bits) with nothing switched on: the caller sets w_on, a_on
 * and the activations' quantization and clamps per layer. The model owns it (kd_fake_quant_detach,
 * kd_model_free). Errors: KD_STATUS_NO_MEMORY (m then has none). */
kd_status kd_fake_quant_alloc(kd_model *m, int weight_bits, int weight_group, kd_error *err);
/* m's fake quantization, or NULL (plain fp32). */
static inline kd_fake_quant *kd_model_fake_quant(const kd_model *m) { return m->exec->fq; }

/* When m has one (kd_model_fake_quant): refresh fq->wq from the weights (before a forward); round
 * a layer's output y (n values) in place to the grid of q clamped to [lo, hi] (-128 <= lo <= hi
 * <= 127); zero the gradient dy where that output y sits on a clamp bound. */
void kd_fake_quant_weights(kd_model *m);
void kd_fake_quant_forward(float *y, size_t n, kdrt_quant q, int32_t lo, int32_t hi);
void kd_fake_quant_backward(float *dy, const float *y, size_t n, kdrt_quant q, int32_t lo, int32_t hi);

#endif
