/* Quantization-aware training: fake quantization of weights and activations inside the fp32 model
 * (quantize.h, "Quantization-aware training"). kd_model_forward / backward call the three hooks
 * below when m->fq is set; kd_train needs nothing else, so QAT composes with distillation,
 * pruning masks, checkpoints and resume. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distill/quantize.h"

void kd_fake_quant_detach(kd_model *m) {
    if (!m || !m->fq) return;
    kd_fake_quant *f = m->fq;
    free(f->w_on); free(f->wq); free(f->a_on); free(f->a_q); free(f->a_lo); free(f->a_hi);
    free(f->tmp_q); free(f->tmp_s);
    free(f);
    m->fq = NULL;
}

kd_status kd_fake_quant_attach(kd_model *m, const kd_int8_model *q, kd_error *err) {
    if (!m || !q) return kd_error_set(err, KD_STATUS_BAD_ARG, "kd_fake_quant_attach: no model");
    kd_fake_quant_detach(m);
    int nl = m->n_layers;
    kd_fake_quant *f = calloc(1, sizeof *f);
    size_t max_w = 1, max_oc = 1;
    for (int i = 0; i < nl; i++) {
        const kd_layer *L = &m->layers[i];
        if (L->w_size > max_w) max_w = L->w_size;
        if ((size_t)L->out > max_oc) max_oc = (size_t)L->out;
    }
    if (!f || !(f->w_on = calloc((size_t)nl, 1)) || !(f->wq = malloc(m->n_params * sizeof(float) + 1)) ||
        !(f->a_on = calloc((size_t)nl, 1)) || !(f->a_q = calloc((size_t)nl, sizeof(kdrt_quant))) ||
        !(f->a_lo = calloc((size_t)nl, sizeof(int32_t))) || !(f->a_hi = calloc((size_t)nl, sizeof(int32_t))) ||
        !(f->tmp_q = malloc(max_w)) || !(f->tmp_s = malloc(max_oc * sizeof(float)))) {
        m->fq = f;
        kd_fake_quant_detach(m);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory for fake quantization", m->name);
    }
    f->weight_bits = q->weight_bits;
    f->weight_group = q->weight_group;
    for (int k = 0; k < q->n_layers; k++) {
        const kd_int8_layer *Q = &q->layers[k];
        int i = kd_model_find_layer(m, Q->name);
        /* the layer whose output Q stores: a fused ReLU follows its producer directly */
        int src = i;
        if (i >= 0 && Q->relu && m->layers[i].type != KD_LAYER_RELU)
            for (int j = i + 1; j < nl; j++)
                if (m->layers[j].type == KD_LAYER_RELU && m->layers[j].inputs[0] == i) { src = j; break; }
        if (i < 0 || (Q->relu && m->layers[src].type != KD_LAYER_RELU)) {
            m->fq = f;
            kd_fake_quant_detach(m);
            return kd_error_set(err, KD_STATUS_BAD_MODEL, "%s: int8 layer %s has no matching layer in the model",
                                m->name, Q->name);
        }
        if (Q->weight) f->w_on[i] = 1;
        kdrt_activation a = Q->op == KD_INT8_CONV || Q->op == KD_INT8_DEPTHWISE ? Q->conv.activation
                            : Q->op == KD_INT8_FC                               ? Q->fc.activation
                            : Q->op == KD_INT8_ADD                              ? Q->add.activation
                                                                                : Q->pool.activation;
        f->a_on[src] = 1;
        f->a_q[src] = Q->out_q;
        f->a_lo[src] = a.min;
        f->a_hi[src] = a.max;
    }
    m->fq = f;
    return KD_STATUS_OK;
}

void kd_fake_quant_weights(kd_model *m) {
    kd_fake_quant *f = m->fq;
    for (int i = 0; i < m->n_layers; i++) {
        if (!f->w_on[i]) continue;
        const kd_layer *L = &m->layers[i];
        size_t k = L->w_size / (size_t)L->out;
        kd_quantize_weights_bits(f->tmp_q, f->tmp_s, m->params + L->w_off, L->out, k, f->weight_bits,
                                 f->weight_group);
        float *wq = f->wq + L->w_off;
        for (int c = 0; c < L->out; c++)
            for (size_t j = 0; j < k; j++) wq[(size_t)c * k + j] = f->tmp_s[c] * (float)f->tmp_q[(size_t)c * k + j];
    }
}

void kd_fake_quant_forward(float *y, size_t n, kdrt_quant q, int32_t lo, int32_t hi) {
    double s = q.scale;
    for (size_t i = 0; i < n; i++) {
        /* the integer model's rounding (kd_quantize_value: NaN -> -128, so lo here; the divergence
         * check sees the loss, not this), then the kernel's clamp, lo >= -128 and hi <= 127 */
        int32_t v = kd_quantize_value(y[i], q);
        v = v < lo ? lo : v > hi ? hi : v;
        y[i] = (float)(s * (v - q.zero_point));
    }
}

void kd_fake_quant_backward(float *dy, const float *y, size_t n, kdrt_quant q, int32_t lo, int32_t hi) {
    /* the forward wrote exactly these two values for saturated elements */
    float ylo = (float)((double)q.scale * (lo - q.zero_point)), yhi = (float)((double)q.scale * (hi - q.zero_point));
    for (size_t i = 0; i < n; i++)
        if (y[i] <= ylo || y[i] >= yhi) dy[i] = 0.f;
}
