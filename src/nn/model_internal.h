/* Internal to src/nn: the executor's state behind kd_model (activation blocks, scratch, backward
 * bookkeeping, fake quantization), the parameter layout the YAML parser calls, and helpers the
 * model code shares. Callers outside src/nn use the accessors in include/distill/model.h; the
 * exceptions are src/compress/qat.c (through nn/fake_quant.h: nn is below compress) and tests. */
#ifndef KD_MODEL_INTERNAL_H
#define KD_MODEL_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

#include "distill/model.h"

/* What kd_model_set_batch lays out and kd_model_forward / kd_model_backward_ex use. Allocated with
 * the parameter blocks (kd_model_layout_params), so every model has one; freed by kd_model_free. */
typedef struct kd_model_exec {
    int batch;              /* capacity of the activation blocks, 0 before kd_model_set_batch */
    int n_threads;          /* the team size of every parallel op the model runs (kd_model_set_batch) */
    size_t n_acts;
    float *acts, *dacts;    /* activations and their gradients, for `batch` samples; layers point
                               in by out_off / aux_off */
    size_t n_idx;
    int32_t *idx;           /* maxpool argmax (layers' idx_off) */
    size_t n_scratch;
    float *scratch;         /* im2col and friends */
    unsigned char *dready;  /* backward bookkeeping: layer's dacts zeroed this step (n_layers) */
    const float *input;     /* the batch input of the last forward (not owned) */
    float *dinput;          /* kd_model_set_input_grad (caller-owned, batch x input size), or NULL */
    int dinput_ready;
    int cur_batch;          /* B of the last forward */
    int shard_lo, shard_b;  /* kd_model_set_shard: this forward's place in the global batch */
    kd_sum_fn bn_sum;       /* kd_model_set_sync_bn, and its context and scratch (2 x max C + 1) */
    void *bn_ctx;
    double *bn_tmp;
    kd_grad_ready_fn grad_ready; /* kd_model_set_grad_ready */
    void *grad_ctx;
    struct kd_fake_quant *fq; /* quantization-aware training (nn/fake_quant.h, attached by
                                 kd_fake_quant_attach in quantize.h); NULL = plain fp32. Owned. */
} kd_model_exec;

/* Assign parameter/buffer offsets from the layer table and allocate params, grads, buffers and the
 * (empty) executor state. */
kd_status kd_model_layout_params(kd_model *m, kd_error *err);

/* Samples per layer output (c*h*w). */
static inline size_t kd_layer_in_size(const kd_layer *L) { return (size_t)L->in_c * L->in_h * L->in_w; }

#endif
