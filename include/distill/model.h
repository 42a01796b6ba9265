/* Models: a list of layers described in YAML, built into one contiguous block of parameters,
 * one of gradients, one of buffers (BN running stats) and one of activations, each pointed into
 * from the layer table, so memory reports are exact. Layers may name their inputs, so residual
 * and skip connections work (the graph is a topologically ordered list). */
#ifndef DISTILL_MODEL_H
#define DISTILL_MODEL_H
#include <stddef.h>
#include <stdint.h>
#include "distill/ops.h"
#include "distill/rng.h"
#include "distill/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kd_layer_type {
    KD_LAYER_CONV2D = 0,
    KD_LAYER_LINEAR,
    KD_LAYER_MAXPOOL,
    KD_LAYER_AVGPOOL,
    KD_LAYER_GLOBAL_AVGPOOL,
    KD_LAYER_BATCHNORM,
    KD_LAYER_RELU,
    KD_LAYER_GELU,
    KD_LAYER_DROPOUT,
    KD_LAYER_FLATTEN,
    KD_LAYER_ADD,
    KD_LAYER_COUNT
} kd_layer_type;

const char *kd_layer_type_name(kd_layer_type t);

#define KD_NAME_MAX 48
#define KD_MODEL_INPUT (-1) /* input index meaning "the model's input" */
/* Size limits of a model, so that a mistaken or hostile description is an error rather than an
 * integer overflow or a giant allocation: elements per sample of the input and of every layer's
 * output, and parameters (per layer and in total: 64 MB of fp32, 7x the largest zoo model). */
#define KD_MODEL_MAX_ELEMS (1 << 28)
#define KD_MODEL_MAX_PARAMS (1 << 24)

typedef struct kd_layer {
    kd_layer_type type;
    char name[KD_NAME_MAX];
    int n_inputs;           /* 1, or 2 for add */
    int inputs[2];          /* layer indices, or KD_MODEL_INPUT */
    /* hyper-parameters */
    int out;                /* conv: out channels; linear: out features */
    int kernel, stride, pad, groups;
    int bias;               /* conv/linear have a bias */
    float p;                /* dropout probability */
    float eps, momentum;    /* batch norm */
    /* shapes: input 0 and output, per sample (c, h, w); linear/flatten use (features, 1, 1) */
    int in_c, in_h, in_w;
    int c, h, w;
    /* parameters (offsets into model->params / grads, in floats; size 0 = none).
     * conv/linear: weight, bias. batchnorm: weight = gamma, bias = beta. */
    size_t w_off, w_size, b_off, b_size;
    size_t buf_off;         /* batchnorm running_mean at buf_off, running_var at buf_off + C */
    /* activations (offsets into model->acts / dacts, in floats) */
    size_t out_off;         /* (B, c, h, w) */
    size_t aux_off, aux_size;   /* per-batch cache: BN mean+invstd (2C) or dropout mask */
    size_t idx_off;         /* maxpool argmax, offset into model->idx (int32) */
    long long macs;         /* multiply-accumulates per sample */
} kd_layer;

typedef struct kd_model {
    char name[KD_NAME_MAX];
    int in_c, in_h, in_w;   /* input shape per sample */
    int n_classes;          /* size of the last layer's output */
    int n_layers;
    kd_layer *layers;
    char *yaml;             /* the YAML text the model was built from (saved in checkpoints) */

    size_t n_params;
    float *params;          /* all trainable parameters, one block */
    float *grads;           /* same layout as params */
    size_t n_buffers;
    float *buffers;         /* non-trainable state (BN running stats) */

    int batch;              /* capacity of the activation blocks, 0 before kd_model_set_batch */
    int n_threads;          /* the team size of every parallel op the model runs (kd_model_set_batch) */
    size_t n_acts;
    float *acts, *dacts;    /* activations and their gradients, for `batch` samples */
    size_t n_idx;
    int32_t *idx;           /* maxpool argmax */
    size_t n_scratch;
    float *scratch;         /* im2col and friends */
    unsigned char *dready;  /* backward bookkeeping: layer's dacts zeroed this step (n_layers) */
    const float *input;     /* the batch input of the last forward (not owned) */
    float *dinput;          /* if set (caller-owned, batch x input size), backward also writes
                               d(loss)/d(input) here: used when a model is a module inside a loss,
                               e.g. a FitNets regressor on a student feature */
    int dinput_ready;
    int cur_batch;          /* B of the last forward */
    struct kd_fake_quant *fq; /* quantization-aware training (src/nn/fake_quant.h, attached by
                                 kd_fake_quant_attach in quantize.h); NULL = plain fp32. Owned. */
} kd_model;

/* Parse YAML text into a model (layers, shapes, parameter block; weights initialised with
 * Kaiming-uniform like PyTorch from `seed`). `source` names the file in error messages. */
kd_status kd_model_from_yaml(kd_model **out, const char *yaml, const char *source, uint64_t seed,
                             kd_error *err);
/* Write the YAML text of a model with input shape (in_c, in_h, in_w) and the layers `layers[0..n)`
 * (type, name, inputs as indices into this array or KD_MODEL_INPUT, and the hyper-parameters
 * out/kernel/stride/pad/groups/bias/p/eps/momentum; shapes and offsets are ignored). Every option is
 * written explicitly and floats with 9 significant digits, so kd_model_from_yaml(*yaml) rebuilds
 * exactly these layers. *yaml is malloc'd. The writer beside the reader: src/format/model_yaml.c. */
kd_status kd_model_yaml_from_layers(const char *name, int in_c, int in_h, int in_w, const kd_layer *layers,
                                    int n_layers, char **yaml, kd_error *err);
/* A built-in model ("cnn-t", "cnn-s", "mlp-s", "mlp-1200", "mlp-800", "mobilenet-s"), or a path to
 * a YAML file. */
kd_status kd_model_create(kd_model **out, const char *name_or_path, uint64_t seed, kd_error *err);
/* YAML text of a built-in model, or NULL. The zoo is embedded at build time from
 * examples/models/NAME.yaml. kd_model_zoo_name(i) lists the names, NULL past the end. */
const char *kd_model_zoo_yaml(const char *name);
const char *kd_model_zoo_name(int i);
void kd_model_free(kd_model *m);
/* Remove fake quantization (kd_fake_quant_attach, quantize.h) from m: plain fp32 again. */
void kd_fake_quant_detach(kd_model *m);
/* Re-initialise parameters (Kaiming uniform, PyTorch defaults) and BN buffers from seed. */
void kd_model_init_params(kd_model *m, uint64_t seed);

/* Allocate activation memory for up to B samples and set the thread count (>= 1) that every
 * parallel op of this model's forward and backward uses (conv, pooling, batch norm, element-wise:
 * ops.h). OpenMP's process-wide default is left alone; oneDNN's sgemm (linear layers, and
 * convolutions when n_threads is 1) threads itself with it, so a program that wants the results
 * of `distill -j N` sets it to N too (see kd_sgemm in ops.h). */
kd_status kd_model_set_batch(kd_model *m, int B, int n_threads, kd_error *err);
/* Forward B <= m->batch samples of x (B, in_c, in_h, in_w). training: batch statistics, dropout
 * (masks drawn from rng). Returns the logits (B, n_classes) inside m->acts. */
const float *kd_model_forward(kd_model *m, const float *x, int B, int training, kd_rng *rng);
/* Backward from dlogits (B, n_classes) of the last forward; ACCUMULATES into m->grads. */
void kd_model_backward(kd_model *m, const float *dlogits);
void kd_model_zero_grad(kd_model *m);
/* Backward as above, plus gradients that losses on intermediate features send in: extra_grad[k]
 * (B x the output size of layer extra_layer[k]) is added to that layer's output gradient. */
void kd_model_backward_ex(kd_model *m, const float *dlogits, int n_extra, const int *extra_layer,
                          const float *const *extra_grad);
/* Index of the layer called name, or -1. */
int kd_model_find_layer(const kd_model *m, const char *name);
/* Output of layer i for the last forward: (B, c, h, w) floats. */
static inline const float *kd_model_layer_output(const kd_model *m, int i) { return m->acts + m->layers[i].out_off; }
/* Output floats per sample of a layer. */
static inline size_t kd_layer_out_size(const kd_layer *L) { return (size_t)L->c * L->h * L->w; }

/* Totals per sample. */
long long kd_model_macs(const kd_model *m);
/* Bytes: parameters+buffers, gradients, and activations for the current batch. */
size_t kd_model_param_bytes(const kd_model *m);

#ifdef __cplusplus
}
#endif
#endif
