/* Model execution: parameter layout and initialisation, activation memory, forward and backward
 * over the layer list. Every block (params, grads, buffers, activations) is one allocation and
 * layers point into it by offset, so `distill info` reports memory exactly. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distill/model.h"
#include "nn/fake_quant.h"
#include "nn/model_internal.h"

kd_status kd_model_layout_params(kd_model *m, kd_error *err) {
    int64_t np = 0, nb = 0;
    for (int i = 0; i < m->n_layers; i++) {
        kd_layer *L = &m->layers[i];
        int64_t ws = 0, bs = 0;
        if (L->type == KD_LAYER_CONV2D) {
            ws = kd_size_mul(kd_size_mul(L->out, L->in_c / L->groups), kd_size_mul(L->kernel, L->kernel));
            bs = L->bias ? L->out : 0;
        } else if (L->type == KD_LAYER_LINEAR) {
            ws = kd_size_mul(L->out, L->in_c);
            bs = L->bias ? L->out : 0;
        } else if (L->type == KD_LAYER_SCALE) {
            ws = bs = L->out; /* C, or 1 for one scalar pair */
        } else if (L->type == KD_LAYER_BATCHNORM) {
            ws = bs = L->c;
            L->buf_off = (size_t)nb;
            nb = kd_size_add(nb, kd_size_mul(2, L->c));
        }
        L->w_off = (size_t)np;
        L->b_off = (size_t)np + (size_t)ws;
        /* each layer is checked by the YAML reader (with its line); this is their sum */
        np = kd_size_add(np, kd_size_add(ws, bs));
        if (np > KD_MODEL_MAX_PARAMS) /* nb <= np: batch norm has as many parameters */
            return kd_error_set(err, KD_STATUS_BAD_MODEL, "%s: %lld parameters up to layer %s (at most %d)", m->name,
                                (long long)np, L->name, KD_MODEL_MAX_PARAMS);
        L->w_size = (size_t)ws;
        L->b_size = (size_t)bs;
    }
    m->n_params = (size_t)np;
    m->n_buffers = (size_t)nb;
    m->params = calloc(np ? (size_t)np : 1, sizeof(float));
    m->grads = calloc(np ? (size_t)np : 1, sizeof(float));
    m->buffers = calloc(nb ? (size_t)nb : 1, sizeof(float));
    m->exec = calloc(1, sizeof *m->exec);
    if (!m->params || !m->grads || !m->buffers || !m->exec)
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: cannot allocate %lld parameters", m->name, (long long)np);
    return KD_STATUS_OK;
}

/* PyTorch's defaults: conv/linear weights kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(fan_in),
 * 1/sqrt(fan_in)), biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)); BN gamma 1, beta 0, stats (0, 1);
 * scale: the identity (w 1, b 0). */
void kd_model_init_params(kd_model *m, uint64_t seed) {
    kd_rng rng;
    kd_rng_seed(&rng, seed, 0x9e3779b97f4a7c15ULL);
    for (int i = 0; i < m->n_layers; i++) {
        kd_layer *L = &m->layers[i];
        float *w = m->params + L->w_off, *b = m->params + L->b_off;
        if (L->type == KD_LAYER_CONV2D || L->type == KD_LAYER_LINEAR) {
            size_t fan_in = L->w_size / (size_t)L->out;
            float bound = 1.0f / sqrtf((float)fan_in);
            for (size_t k = 0; k < L->w_size; k++) w[k] = (2.f * kd_rng_uniform(&rng) - 1.f) * bound;
            for (size_t k = 0; k < L->b_size; k++) b[k] = (2.f * kd_rng_uniform(&rng) - 1.f) * bound;
        } else if (L->type == KD_LAYER_SCALE) {
            for (size_t k = 0; k < L->w_size; k++) {
                w[k] = 1.f;
                b[k] = 0.f;
            }
        } else if (L->type == KD_LAYER_BATCHNORM) {
            for (int c = 0; c < L->c; c++) {
                w[c] = 1.f;
                b[c] = 0.f;
                m->buffers[L->buf_off + c] = 0.f;
                m->buffers[L->buf_off + L->c + c] = 1.f;
            }
        }
    }
}

static void free_batch(kd_model_exec *x) {
    free(x->acts); free(x->dacts); free(x->idx); free(x->scratch); free(x->dready);
    x->acts = x->dacts = x->scratch = NULL;
    x->idx = NULL;
    x->dready = NULL;
    x->batch = 0;
}

void kd_model_free(kd_model *m) {
    if (!m) return;
    if (m->exec) {
        free_batch(m->exec);
        kd_fake_quant_detach(m);
        free(m->exec->bn_tmp);
        free(m->exec);
    }
    free(m->layers); free(m->yaml); free(m->norm_mean); free(m->norm_std); free(m->class_names); free(m->params); free(m->grads); free(m->buffers);
    free(m);
}

static kd_conv_shape conv_shape(const kd_model_exec *x, const kd_layer *L, int B) {
    kd_conv_shape s = {B, L->in_c, L->in_h, L->in_w, L->out, L->kernel, L->stride, L->pad, L->groups, L->h, L->w,
                       x->n_threads, L->dilation};
    return s;
}

static kd_pool_shape pool_shape(const kd_model_exec *x, const kd_layer *L, int B) {
    kd_pool_shape s = {B, L->in_c, L->in_h, L->in_w, L->kernel, L->stride, L->pad, L->h, L->w, L->count_pad,
                       x->n_threads};
    return s;
}

/* The shapes of a two-input add or mul; same = no broadcasting (add's plain path). */
static kd_bcast_shape bcast_shape(const kd_model *m, const kd_layer *L, int B, int *same) {
    kd_bcast_shape s = {.B = B, .ca = L->in_c, .ha = L->in_h, .wa = L->in_w, .c = L->c, .h = L->h, .w = L->w,
                        .threads = m->exec->n_threads};
    kd_layer_input_shape(m, L, 1, &s.cb, &s.hb, &s.wb);
    *same = s.ca == s.c && s.ha == s.h && s.wa == s.w && s.cb == s.c && s.hb == s.h && s.wb == s.w;
    return s;
}

/* Channel counts of a concat's inputs. */
static void concat_channels(const kd_model *m, const kd_layer *L, int *c) {
    for (int k = 0; k < L->n_inputs; k++) {
        int h, w;
        kd_layer_input_shape(m, L, k, &c[k], &h, &w);
    }
}

kd_status kd_model_set_batch(kd_model *m, int B, int n_threads, kd_error *err) {
    if (B < 1 || n_threads < 1) return kd_error_set(err, KD_STATUS_BAD_ARG, "batch and threads must be >= 1");
    kd_model_exec *x = m->exec;
    if (x->batch == B && x->n_threads == n_threads) return KD_STATUS_OK;
    free_batch(x);
    /* In floats (int32 for idx), checked: a huge batch or thread count must be an error here, not
     * a total that wraps around to a small allocation the forward pass then overruns. */
    int64_t na = 0, ni = 0, ns = 0;
    for (int i = 0; i < m->n_layers; i++) {
        kd_layer *L = &m->layers[i];
        int64_t n = kd_size_mul(B, (int64_t)kd_layer_out_size(L));
        L->out_off = (size_t)na;
        na = kd_size_add(na, n);
        L->aux_off = (size_t)na;
        int64_t aux = L->type == KD_LAYER_BATCHNORM ? kd_size_mul(2, L->c) : L->type == KD_LAYER_DROPOUT ? n : 0;
        L->aux_size = (size_t)aux;
        na = kd_size_add(na, aux);
        L->idx_off = (size_t)ni;
        if (L->type == KD_LAYER_MAXPOOL) ni = kd_size_add(ni, n);
        if (L->type == KD_LAYER_CONV2D) {
            kd_conv_shape s = conv_shape(x, L, B);
            s.threads = 1;
            int64_t k = kd_size_mul(n_threads, (int64_t)kd_conv2d_scratch_floats(&s));
            if (k > ns) ns = k;
        }
        /* both activation blocks, the indices and the scratch, in bytes */
        int64_t bytes = kd_size_mul(kd_size_add(kd_size_add(kd_size_mul(2, na), ni), ns), sizeof(float));
        if (bytes == INT64_MAX || (uint64_t)bytes > SIZE_MAX)
            return kd_error_set(err, KD_STATUS_NO_MEMORY,
                                "%s: batch %d with %d threads needs more memory for activations and scratch than "
                                "can be addressed (past layer %s, %lld floats per sample)", m->name, B, n_threads,
                                L->name, (long long)kd_layer_out_size(L));
    }
    x->n_acts = (size_t)na;
    x->n_idx = (size_t)ni;
    x->n_scratch = (size_t)ns;
    x->acts = malloc(x->n_acts * sizeof(float));
    x->dacts = malloc(x->n_acts * sizeof(float));
    x->idx = malloc((ni ? x->n_idx : 1) * sizeof(int32_t));
    x->scratch = malloc((ns ? x->n_scratch : 1) * sizeof(float));
    x->dready = malloc((size_t)m->n_layers);
    if (!x->acts || !x->dacts || !x->idx || !x->scratch || !x->dready) {
        free_batch(x);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: cannot allocate activations for batch %d (%lld MB)",
                            m->name, B, (long long)(kd_size_mul(na, 8) >> 20));
    }
    x->batch = B;
    x->n_threads = n_threads;
    return KD_STATUS_OK;
}

int kd_model_batch(const kd_model *m) { return m->exec->batch; }
int kd_model_threads(const kd_model *m) { return m->exec->n_threads; }
void kd_model_set_input_grad(kd_model *m, float *dinput) { m->exec->dinput = dinput; }
const float *kd_model_layer_output(const kd_model *m, int i) { return m->exec->acts + m->layers[i].out_off; }

void kd_model_set_shard(kd_model *m, int lo, int global_b) {
    m->exec->shard_lo = lo;
    m->exec->shard_b = global_b;
}

void kd_model_set_grad_ready(kd_model *m, kd_grad_ready_fn fn, void *ctx) {
    m->exec->grad_ready = fn;
    m->exec->grad_ctx = ctx;
}

kd_status kd_model_set_sync_bn(kd_model *m, kd_sum_fn sum, void *ctx, kd_error *err) {
    kd_model_exec *x = m->exec;
    free(x->bn_tmp);
    x->bn_tmp = NULL;
    x->bn_sum = NULL;
    if (!sum) return KD_STATUS_OK;
    int cmax = 0;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].type == KD_LAYER_BATCHNORM && m->layers[i].c > cmax) cmax = m->layers[i].c;
    if (!(x->bn_tmp = malloc(sizeof(double) * (2 * (size_t)cmax + 1))))
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    x->bn_sum = sum;
    x->bn_ctx = ctx;
    return KD_STATUS_OK;
}

static const float *in_ptr(const kd_model *m, const kd_layer *L, int k) {
    int j = L->inputs[k];
    return j == KD_MODEL_INPUT ? m->exec->input : m->exec->acts + m->layers[j].out_off;
}

/* The weights a layer computes with: the fake-quantized copy during quantization-aware training. */
static const float *weight_ptr(const kd_model *m, int i) {
    size_t off = m->layers[i].w_off;
    const kd_fake_quant *fq = m->exec->fq;
    return fq && fq->w_on[i] ? fq->wq + off : m->params + off;
}

const float *kd_model_forward(kd_model *m, const float *xin, int B, int training, kd_rng *rng) {
    kd_model_exec *x = m->exec;
    x->input = xin;
    x->cur_batch = B;
    int nt = x->n_threads; /* every parallel op's team size (kd_model_set_batch) */
    const kd_fake_quant *fq = x->fq;
    if (fq) kd_fake_quant_weights(m);
    for (int i = 0; i < m->n_layers; i++) {
        kd_layer *L = &m->layers[i];
        const float *in = in_ptr(m, L, 0);
        float *out = x->acts + L->out_off;
        const float *w = weight_ptr(m, i);
        const float *b = L->b_size ? m->params + L->b_off : NULL;
        size_t n = (size_t)B * kd_layer_out_size(L);
        switch (L->type) {
        case KD_LAYER_CONV2D: {
            kd_conv_shape s = conv_shape(x, L, B);
            kd_conv2d_forward(out, in, w, b, &s, x->scratch);
            break;
        }
        case KD_LAYER_LINEAR: kd_linear_forward(out, in, w, b, B, L->in_c, L->out); break;
        case KD_LAYER_MAXPOOL: {
            kd_pool_shape s = pool_shape(x, L, B);
            kd_maxpool_forward(out, x->idx + L->idx_off, in, &s);
            break;
        }
        case KD_LAYER_AVGPOOL: {
            kd_pool_shape s = pool_shape(x, L, B);
            kd_avgpool_forward(out, in, &s);
            break;
        }
        case KD_LAYER_GLOBAL_AVGPOOL: kd_gap_forward(out, in, B, L->in_c, L->in_h * L->in_w); break;
        case KD_LAYER_BATCHNORM: {
            float *rm = m->buffers + L->buf_off, *rv = rm + L->c;
            float *aux = x->acts + L->aux_off;
            if (training && x->bn_sum)
                kd_batchnorm_forward_train_sync(out, aux, aux + L->c, rm, rv, in, w, m->params + L->b_off, B, L->c,
                                                L->h * L->w, L->eps, L->momentum, nt, x->bn_tmp, x->bn_sum, x->bn_ctx);
            else if (training)
                kd_batchnorm_forward_train(out, aux, aux + L->c, rm, rv, in, w, m->params + L->b_off, B, L->c,
                                           L->h * L->w, L->eps, L->momentum, nt);
            else
                kd_batchnorm_forward_eval(out, in, w, m->params + L->b_off, rm, rv, B, L->c, L->h * L->w, L->eps, nt);
            break;
        }
        case KD_LAYER_RELU: kd_relu_forward(out, in, n, nt); break;
        case KD_LAYER_GELU: kd_gelu_forward(out, in, n, nt); break;
        case KD_LAYER_DROPOUT:
            if (training && L->p > 0.f) {
                float *mask = x->acts + L->aux_off, keep = 1.f / (1.f - L->p);
                size_t per = kd_layer_out_size(L); /* one draw per value: a share skips the others' */
                if (x->shard_b) kd_rng_advance(rng, (uint64_t)x->shard_lo * per);
                for (size_t k = 0; k < n; k++) mask[k] = kd_rng_uniform(rng) < L->p ? 0.f : keep;
                if (x->shard_b) kd_rng_advance(rng, (uint64_t)(x->shard_b - x->shard_lo - B) * per);
                kd_dropout_forward(out, in, mask, n, nt);
            } else {
                memcpy(out, in, n * sizeof(float));
            }
            break;
        case KD_LAYER_FLATTEN: memcpy(out, in, n * sizeof(float)); break;
        case KD_LAYER_ADD:
        case KD_LAYER_MUL: {
            int same;
            kd_bcast_shape s = bcast_shape(m, L, B, &same);
            if (L->type == KD_LAYER_MUL) kd_mul_forward(out, in, in_ptr(m, L, 1), &s);
            else if (same) kd_add_forward(out, in, in_ptr(m, L, 1), n, nt);
            else kd_bcast_add_forward(out, in, in_ptr(m, L, 1), &s);
            break;
        }
        case KD_LAYER_CONCAT: {
            const float *ins[KD_LAYER_MAX_INPUTS];
            int c[KD_LAYER_MAX_INPUTS];
            for (int k = 0; k < L->n_inputs; k++) ins[k] = in_ptr(m, L, k);
            concat_channels(m, L, c);
            kd_concat_forward(out, ins, c, L->n_inputs, B, L->h * L->w, nt);
            break;
        }
        case KD_LAYER_CLIP: kd_clip_forward(out, in, n, L->lo, L->hi, nt); break;
        case KD_LAYER_LEAKY_RELU: kd_leaky_relu_forward(out, in, n, L->alpha, nt); break;
        case KD_LAYER_SIGMOID: kd_sigmoid_forward(out, in, n, nt); break;
        case KD_LAYER_HARD_SIGMOID: kd_hard_sigmoid_forward(out, in, n, L->alpha, L->beta, nt); break;
        case KD_LAYER_HARD_SWISH: kd_hard_swish_forward(out, in, n, nt); break;
        case KD_LAYER_PAD: kd_pad_forward(out, in, B, L->in_c, L->in_h, L->in_w, L->pads, L->value, nt); break;
        case KD_LAYER_SCALE: kd_scale_forward(out, in, w, b, B, L->c, L->h * L->w, L->out, nt); break;
        case KD_LAYER_COUNT: break;
        }
        if (fq && fq->a_on[i]) kd_fake_quant_forward(out, n, fq->a_q[i], fq->a_lo[i], fq->a_hi[i]);
    }
    return x->acts + m->layers[m->n_layers - 1].out_off;
}

/* Gradient buffer for input k of L, zeroed lazily by its last consumer in backward order (the first
 * to reach it), so no whole-block memset and no accumulation into stale values. NULL for the
 * model's input: nobody needs d(input). */
static float *din_ptr(kd_model *m, const kd_layer *L, int k) {
    kd_model_exec *x = m->exec;
    int j = L->inputs[k];
    if (j == KD_MODEL_INPUT) {
        if (x->dinput && !x->dinput_ready) {
            memset(x->dinput, 0, (size_t)x->cur_batch * m->in_c * m->in_h * m->in_w * sizeof(float));
            x->dinput_ready = 1;
        }
        return x->dinput;
    }
    float *d = x->dacts + m->layers[j].out_off;
    if (!x->dready[j]) {
        memset(d, 0, (size_t)x->cur_batch * kd_layer_out_size(&m->layers[j]) * sizeof(float));
        x->dready[j] = 1;
    }
    return d;
}

void kd_model_backward(kd_model *m, const float *dlogits) { kd_model_backward_ex(m, dlogits, 0, NULL, NULL); }

int kd_model_find_layer(const kd_model *m, const char *name) {
    for (int i = 0; i < m->n_layers; i++)
        if (!strcmp(m->layers[i].name, name)) return i;
    return -1;
}

void kd_model_backward_ex(kd_model *m, const float *dlogits, int n_extra, const int *extra_layer,
                          const float *const *extra_grad) {
    kd_model_exec *x = m->exec;
    const kd_fake_quant *fq = x->fq;
    int B = x->cur_batch, nt = x->n_threads;
    memset(x->dready, 0, (size_t)m->n_layers);
    x->dinput_ready = 0;
    kd_layer *last = &m->layers[m->n_layers - 1];
    memcpy(x->dacts + last->out_off, dlogits, (size_t)B * last->c * sizeof(float));
    x->dready[m->n_layers - 1] = 1;
    for (int i = m->n_layers - 1; i >= 0; i--) {
        kd_layer *L = &m->layers[i];
        /* every consumer of layer i has a higher index, so its gradient is complete here: add the
         * gradients that losses on this layer's output send in */
        for (int k = 0; k < n_extra; k++) {
            if (extra_layer[k] != i) continue;
            float *d = x->dacts + L->out_off;
            size_t n = (size_t)B * kd_layer_out_size(L);
            if (!x->dready[i]) memset(d, 0, n * sizeof(float));
            x->dready[i] = 1;
            for (size_t e = 0; e < n; e++) d[e] += extra_grad[k][e];
        }
        if (!x->dready[i]) continue; /* output unused (cannot happen in a chain; safe for graphs) */
        const float *dout = x->dacts + L->out_off;
        const float *in = in_ptr(m, L, 0);
        const float *out = x->acts + L->out_off;
        size_t n = (size_t)B * kd_layer_out_size(L);
        if (fq && fq->a_on[i]) /* straight-through estimator: no gradient where saturated */
            kd_fake_quant_backward(x->dacts + L->out_off, out, n, fq->a_q[i], fq->a_lo[i], fq->a_hi[i]);
        float *din = din_ptr(m, L, 0);
        float *dw = m->grads + L->w_off;
        float *db = L->b_size ? m->grads + L->b_off : NULL;
        const float *w = weight_ptr(m, i);
        switch (L->type) {
        case KD_LAYER_CONV2D: {
            kd_conv_shape s = conv_shape(x, L, B);
            kd_conv2d_backward(din, dw, db, dout, in, w, &s, x->scratch);
            break;
        }
        case KD_LAYER_LINEAR: kd_linear_backward(din, dw, db, dout, in, w, B, L->in_c, L->out); break;
        case KD_LAYER_MAXPOOL:
        case KD_LAYER_AVGPOOL: {
            kd_pool_shape s = pool_shape(x, L, B);
            if (din && L->type == KD_LAYER_MAXPOOL) kd_maxpool_backward(din, dout, x->idx + L->idx_off, &s);
            else if (din) kd_avgpool_backward(din, dout, &s);
            break;
        }
        case KD_LAYER_GLOBAL_AVGPOOL:
            if (din) kd_gap_backward(din, dout, B, L->in_c, L->in_h * L->in_w);
            break;
        case KD_LAYER_BATCHNORM: {
            const float *aux = x->acts + L->aux_off;
            if (x->bn_sum)
                kd_batchnorm_backward_sync(din, dw, m->grads + L->b_off, dout, in, w, aux, aux + L->c, B, L->c,
                                           L->h * L->w, nt, x->bn_tmp, x->bn_sum, x->bn_ctx);
            else
                kd_batchnorm_backward(din, dw, m->grads + L->b_off, dout, in, w, aux, aux + L->c, B, L->c,
                                      L->h * L->w, nt);
            break;
        }
        case KD_LAYER_RELU:
            if (din) kd_relu_backward(din, dout, out, n, nt);
            break;
        case KD_LAYER_GELU:
            if (din) kd_gelu_backward(din, dout, in, n, nt);
            break;
        case KD_LAYER_DROPOUT:
            if (!din) break;
            if (L->p > 0.f) kd_dropout_backward(din, dout, x->acts + L->aux_off, n, nt);
            else kd_add_backward(din, NULL, dout, n, nt);
            break;
        case KD_LAYER_FLATTEN:
            if (din) kd_add_backward(din, NULL, dout, n, nt);
            break;
        case KD_LAYER_ADD:
        case KD_LAYER_MUL: {
            int same;
            kd_bcast_shape s = bcast_shape(m, L, B, &same);
            if (L->type == KD_LAYER_MUL) kd_mul_backward(din, din_ptr(m, L, 1), dout, in, in_ptr(m, L, 1), &s);
            else if (same) kd_add_backward(din, din_ptr(m, L, 1), dout, n, nt);
            else kd_bcast_add_backward(din, din_ptr(m, L, 1), dout, &s);
            break;
        }
        case KD_LAYER_CONCAT: {
            float *dins[KD_LAYER_MAX_INPUTS];
            int c[KD_LAYER_MAX_INPUTS];
            dins[0] = din;
            for (int k = 1; k < L->n_inputs; k++) dins[k] = din_ptr(m, L, k);
            concat_channels(m, L, c);
            kd_concat_backward(dins, dout, c, L->n_inputs, B, L->h * L->w, nt);
            break;
        }
        case KD_LAYER_CLIP:
            if (din) kd_clip_backward(din, dout, in, n, L->lo, L->hi, nt);
            break;
        case KD_LAYER_LEAKY_RELU:
            if (din) kd_leaky_relu_backward(din, dout, in, n, L->alpha, nt);
            break;
        case KD_LAYER_SIGMOID:
            if (din) kd_sigmoid_backward(din, dout, out, n, nt);
            break;
        case KD_LAYER_HARD_SIGMOID:
            if (din) kd_hard_sigmoid_backward(din, dout, in, n, L->alpha, L->beta, nt);
            break;
        case KD_LAYER_HARD_SWISH:
            if (din) kd_hard_swish_backward(din, dout, in, n, nt);
            break;
        case KD_LAYER_PAD:
            if (din) kd_pad_backward(din, dout, B, L->in_c, L->in_h, L->in_w, L->pads, nt);
            break;
        case KD_LAYER_SCALE:
            kd_scale_backward(din, dw, db, dout, in, w, B, L->c, L->h * L->w, L->out, nt);
            break;
        case KD_LAYER_COUNT: break;
        }
        if (x->grad_ready && L->w_size + L->b_size) x->grad_ready(x->grad_ctx, L->w_off, L->b_off + L->b_size);
    }
}

void kd_model_zero_grad(kd_model *m) { memset(m->grads, 0, m->n_params * sizeof(float)); }

long long kd_model_macs(const kd_model *m) {
    int64_t t = 0;
    for (int i = 0; i < m->n_layers; i++) t = kd_size_add(t, m->layers[i].macs);
    return t;
}

size_t kd_model_param_bytes(const kd_model *m) { return (m->n_params + m->n_buffers) * sizeof(float); }

void kd_model_memory(const kd_model *m, kd_model_mem *out) {
    const kd_model_exec *x = m->exec;
    out->params = m->n_params * sizeof(float);
    out->buffers = m->n_buffers * sizeof(float);
    out->acts = 2 * x->n_acts * sizeof(float);
    out->scratch = x->n_scratch * sizeof(float);
    out->idx = x->n_idx * sizeof(int32_t);
}
