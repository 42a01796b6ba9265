/* Fake quantization (quantization-aware training), the part the model runs: the kd_fake_quant
 * struct's memory, the fake-quantized weights and the activation rounding with its
 * straight-through gradient (src/nn/fake_quant.h). Which layers it applies to is set by
 * kd_fake_quant_attach (src/compress/qat.c) from an int8 model. */
#include <stdlib.h>

#include "nn/fake_quant.h"

void kd_fake_quant_detach(kd_model *m) {
    if (!m || !m->exec || !m->exec->fq) return;
    kd_fake_quant *f = m->exec->fq;
    free(f->w_on); free(f->wq); free(f->a_on); free(f->a_q); free(f->a_lo); free(f->a_hi);
    free(f->tmp_q); free(f->tmp_s);
    free(f);
    m->exec->fq = NULL;
}

kd_status kd_fake_quant_alloc(kd_model *m, int weight_bits, int weight_group, kd_error *err) {
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
        m->exec->fq = f;
        kd_fake_quant_detach(m);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory for fake quantization", m->name);
    }
    f->weight_bits = weight_bits;
    f->weight_group = weight_group;
    m->exec->fq = f;
    return KD_STATUS_OK;
}

void kd_fake_quant_weights(kd_model *m) {
    kd_fake_quant *f = m->exec->fq;
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
