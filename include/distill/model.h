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
    KD_LAYER_ADD,           /* element-wise sum of 2 inputs, broadcasting (below) */
    /* Added for imported (ONNX) models, issue 13; each with forward, backward and a
     * finite-difference test. YAML keys in docs/MODELS.md. */
    KD_LAYER_CONCAT,        /* channel concatenation of n_inputs (2..KD_LAYER_MAX_INPUTS) inputs */
    KD_LAYER_CLIP,          /* min(max(x, lo), hi): ReLU6 is clip 0..6 */
    KD_LAYER_LEAKY_RELU,    /* x > 0 ? x : alpha * x */
    KD_LAYER_SIGMOID,
    KD_LAYER_HARD_SIGMOID,  /* clip(alpha * x + beta, 0, 1) (ONNX HardSigmoid; PyTorch: 1/6, 1/2) */
    KD_LAYER_HARD_SWISH,    /* x * clip(x / 6 + 1/2, 0, 1) (ONNX HardSwish) */
    KD_LAYER_MUL,           /* element-wise product of 2 inputs, broadcasting (squeeze-excitation) */
    KD_LAYER_PAD,           /* constant padding: pads[4] = top, left, bottom, right; value */
    KD_LAYER_SCALE,         /* per-channel affine y = x * w[c] + b[c] (weight, bias: trainable):
                               ONNX Mul/Add/Sub/Div by a constant scalar or per-channel tensor */
    KD_LAYER_COUNT
} kd_layer_type;

const char *kd_layer_type_name(kd_layer_type t);

/* Layer names: ours, or the ONNX value names of an imported model ("/layer1/layer1.0/relu/Relu_output_0"),
 * which feature-distillation terms name as they are. */
#define KD_NAME_MAX 128
/* Inputs of one layer: 1, 2 for add and mul, up to this for concat. */
#define KD_LAYER_MAX_INPUTS 8
#define KD_MODEL_INPUT (-1) /* input index meaning "the model's input" */
/* Size limits of a model, so that a mistaken or hostile description is an error rather than an
 * integer overflow or an unbounded allocation: elements per sample of the input and of every
 * layer's output, and parameters (per layer and in total). 2^28 parameters is 1 GiB of fp32: room
 * for the teachers users bring (ResNet-152 has 60 M, ViT-B 86 M), far below what overflows. The
 * fuzz build (scripts/fuzz.sh) defines a smaller KD_MODEL_MAX_PARAMS so that one input cannot spend
 * the fuzzer's time budget initialising a legal but enormous model. */
#define KD_MODEL_MAX_ELEMS (1 << 28)
/* Layer options' ranges (the model YAML's and the ONNX importer's): conv2d kernel, stride, pad and
 * dilation; pool kernel, stride and pad; each side of a pad layer. */
#define KD_CONV_MAX_KERNEL 31
#define KD_CONV_MAX_STRIDE 16
#define KD_CONV_MAX_PAD 15
#define KD_CONV_MAX_DILATION 16
#define KD_POOL_MAX_KERNEL 64
#define KD_POOL_MAX_STRIDE 64
#define KD_POOL_MAX_PAD 32
#define KD_PAD_MAX 1024
#ifndef KD_MODEL_MAX_PARAMS
#define KD_MODEL_MAX_PARAMS (1 << 28)
#endif

/* The one checked arithmetic of shapes, sizes, parameter and MAC counts: a * b and a + b for counts
 * (>= 0) in 64 bits, saturating at INT64_MAX when the result does not fit (or an operand is
 * negative). A chain of them compared against a limit therefore never wraps around to a small,
 * plausible number: compare the result with a limit, or with INT64_MAX for "does not fit". */
static inline int64_t kd_size_mul(int64_t a, int64_t b) {
    if (a < 0 || b < 0 || (a != 0 && b > INT64_MAX / a)) return INT64_MAX;
    return a * b;
}
static inline int64_t kd_size_add(int64_t a, int64_t b) {
    if (a < 0 || b < 0 || b > INT64_MAX - a) return INT64_MAX;
    return a + b;
}

typedef struct kd_layer {
    kd_layer_type type;
    char name[KD_NAME_MAX];
    int n_inputs;           /* 1; 2 for add and mul; 2..KD_LAYER_MAX_INPUTS for concat */
    int inputs[KD_LAYER_MAX_INPUTS]; /* layer indices, or KD_MODEL_INPUT */
    /* hyper-parameters */
    int out;                /* conv: out channels; linear: out features */
    int kernel, stride, pad, groups;  /* conv; pools use kernel, stride, pad (symmetric) */
    int dilation;           /* conv (1 = none) */
    int ceil_mode;          /* pools: output size rounded up (PyTorch ceil_mode) */
    int count_pad;          /* avgpool: padded zeros count in the divisor (PyTorch's default) */
    int pads[4];            /* pad layer: top, left, bottom, right */
    int bias;               /* conv/linear have a bias */
    float p;                /* dropout probability */
    float eps, momentum;    /* batch norm */
    float alpha, beta;      /* leaky relu: alpha; hard sigmoid: alpha, beta */
    float lo, hi;           /* clip */
    float value;            /* pad: the constant */
    /* shapes: input 0 and output, per sample (c, h, w); linear/flatten use (features, 1, 1) */
    int in_c, in_h, in_w;
    int c, h, w;
    /* parameters (offsets into model->params / grads, in floats; size 0 = none).
     * conv/linear: weight, bias. batchnorm: weight = gamma, bias = beta. */
    size_t w_off, w_size, b_off, b_size;
    size_t buf_off;         /* batchnorm running_mean at buf_off, running_var at buf_off + C */
    /* activations (offsets into the executor's activation blocks, in floats; kd_model_set_batch) */
    size_t out_off;         /* (B, c, h, w) */
    size_t aux_off, aux_size;   /* per-batch cache: BN mean+invstd (2C) or dropout mask */
    size_t idx_off;         /* maxpool argmax, offset into the executor's index block (int32) */
    long long macs;         /* multiply-accumulates per sample */
} kd_layer;

typedef struct kd_model {
    char name[KD_NAME_MAX];
    int in_c, in_h, in_w;   /* input shape per sample */
    /* The input normalisation the model was trained with (YAML `normalize: {mean: [..], std: [..]}`,
     * one value per input channel, applied to pixels scaled to [0, 1]): in_c floats each, or NULL
     * when the model has none and takes the data's own statistics (the default, as before). */
    float *norm_mean, *norm_std;
    /* What the input is (YAML `input_type: pixels|values`): 0 = 8-bit pixels p, normalised as
     * p / 255 above (images); 1 = float values v taken as they are (arrays, tables: CSV). */
    int input_values;
    int n_classes;          /* size of the last layer's output */
    /* Names of the classes (YAML `class_names: [..]`, n_classes strings, from the data it was
     * trained on: folder names, CSV labels), or NULL. Saved in checkpoints with the YAML. */
    char **class_names;
    int n_layers;
    kd_layer *layers;
    char *yaml;             /* the YAML text the model was built from (saved in checkpoints) */

    size_t n_params;
    float *params;          /* all trainable parameters, one block */
    float *grads;           /* same layout as params */
    size_t n_buffers;
    float *buffers;         /* non-trainable state (BN running stats) */

    struct kd_model_exec *exec; /* the executor's state: activation blocks for the batch capacity,
                                   scratch, QAT (src/nn/model_internal.h; use the accessors below) */
} kd_model;

/* Parse YAML text into a model (layers, shapes, parameter block; weights initialised with
 * Kaiming-uniform like PyTorch from `seed`). `source` names the file in error messages. */
kd_status kd_model_from_yaml(kd_model **out, const char *yaml, const char *source, uint64_t seed,
                             kd_error *err);
/* Write the YAML text of a model with the name, input shape and input normalisation of `like`
 * (its layers are not used) and the layers `layers[0..n)` (type, name, inputs as indices into this
 * array or KD_MODEL_INPUT, and the hyper-parameters; shapes and offsets are ignored). Every option is
 * written explicitly (those added for issue 13 -- dilation, pool pad, ceil_mode, count_pad -- only
 * when not the default, so older models are written as before) and floats with 9 significant digits,
 * so kd_model_from_yaml(*yaml) rebuilds exactly these layers. *yaml is malloc'd. The writer beside the reader: src/format/model_yaml.c. */
kd_status kd_model_yaml_from_layers(const kd_model *like, const kd_layer *layers, int n_layers, char **yaml,
                                    kd_error *err);
/* A built-in model (kd_model_zoo_name; `distill models`), or a path to a YAML file; `input: auto`
 * and `out: classes` are 1x28x28 and 10 (kd_model_create_for with fit NULL). */
kd_status kd_model_create(kd_model **out, const char *name_or_path, uint64_t seed, kd_error *err);
/* What the data says a model must take (issue 14): each 0 = not known. */
typedef struct kd_model_fit {
    int in_c, in_h, in_w;   /* the samples' shape */
    int n_classes;
} kd_model_fit;
/* kd_model_create for data of this shape: a model whose YAML says `input: auto` and `out: classes`
 * (a linear or conv2d layer's option; every built-in model says both) takes fit's shape and class
 * count (1x28x28 and 10 when fit leaves them 0); an explicit shape must equal fit's and an explicit
 * class count must be at least fit's, else KD_STATUS_MISMATCH naming both. A shape the layers cannot
 * take is KD_STATUS_BAD_MODEL, "model NAME cannot take CxHxW input: <the shape error>". The model's
 * YAML (m->yaml, saved in checkpoints) is the resolved text (`auto` and `classes` replaced, the rest
 * as written), so a checkpoint rebuilds the same model without data. fit NULL = kd_model_create. */
kd_status kd_model_create_for(kd_model **out, const char *name_or_path, uint64_t seed, const kd_model_fit *fit,
                              kd_error *err);
/* Store in m what the data it is trained on says about its input (issue 14), so that checkpoints
 * carry it:
 *   norm_mean, norm_std: the input normalisation, m->in_c finite values each (std > 0), as YAML
 *     `normalize:`; both NULL = leave the model's as it is.
 *   input_values: 0 = 8-bit pixels, 1 = float values (YAML `input_type: pixels|values`);
 *     -1 = leave as it is.
 *   class_names[0..n): the class names (YAML `class_names:`), n == m->n_classes strings, each
 *     shorter than KD_CLASS_NAME_MAX (data.h, 64) bytes, non-empty UTF-8 without control
 *     characters; NULL (n ignored) = leave as they are.
 * Rewrites m->yaml so that kd_model_from_yaml(m->yaml) builds the same model with these fields:
 * the top-level keys normalize, input_type and class_names are replaced or appended and the rest
 * of the text (the layers) is kept as written. Parameters and the rest of m are left alone. On
 * error (KD_STATUS_BAD_ARG, or KD_STATUS_MISMATCH for a count that differs) m is unchanged. */
kd_status kd_model_set_data_info(kd_model *m, const float *norm_mean, const float *norm_std, int input_values,
                                 const char *const *class_names, int n, kd_error *err);
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
/* The batch capacity and thread count of the last kd_model_set_batch (0 and 0 before it). */
int kd_model_batch(const kd_model *m);
int kd_model_threads(const kd_model *m);
/* Forward B <= kd_model_batch(m) samples of x (B, in_c, in_h, in_w). training: batch statistics,
 * dropout (masks drawn from rng). Returns the logits (B, n_classes), owned by the model and valid
 * until its next forward or kd_model_set_batch. */
const float *kd_model_forward(kd_model *m, const float *x, int B, int training, kd_rng *rng);
/* Backward from dlogits (B, n_classes) of the last forward; ACCUMULATES into m->grads. */
void kd_model_backward(kd_model *m, const float *dlogits);
void kd_model_zero_grad(kd_model *m);
/* Backward as above, plus gradients that losses on intermediate features send in: extra_grad[k]
 * (B x the output size of layer extra_layer[k]) is added to that layer's output gradient. */
void kd_model_backward_ex(kd_model *m, const float *dlogits, int n_extra, const int *extra_layer,
                          const float *const *extra_grad);
/* Data parallelism (dist.h). The next forwards' B samples are [lo, lo + B) of a global batch of
 * global_b that other processes share: dropout draws as if it masked all global_b samples and
 * keeps this share's masks, so the ranks together draw exactly the masks one process would.
 * kd_model_set_shard(m, 0, 0) (the default) is a whole batch. */
void kd_model_set_shard(kd_model *m, int lo, int global_b);
/* Synchronised batch norm: in training, every batch-norm layer's per-channel sums (of x and of the
 * squared deviations forward, of dy and dy*x_hat backward) and its sample count go through
 * sum(buf, n, ctx), which sums n doubles in place over the processes, so the statistics are those
 * of the global batch. NULL (the default): each process normalises with its own share. */
typedef void (*kd_sum_fn)(double *buf, size_t n, void *ctx);
/* Called by backward after each layer that has parameters with the range [lo, hi) of m->grads it
 * finished. Parameters lie in layer order and backward runs from the last layer, so the ranges
 * come in descending order and nothing at or above lo changes later in that backward: data
 * parallelism starts summing them while earlier layers still compute. NULL (the default): none. */
typedef void (*kd_grad_ready_fn)(void *ctx, size_t lo, size_t hi);
void kd_model_set_grad_ready(kd_model *m, kd_grad_ready_fn fn, void *ctx);
kd_status kd_model_set_sync_bn(kd_model *m, kd_sum_fn sum, void *ctx, kd_error *err);
/* Index of the layer called name, or -1. */
int kd_model_find_layer(const kd_model *m, const char *name);
/* Let backward also write d(loss)/d(input) into dinput (caller-owned, kd_model_batch(m) x
 * in_c*in_h*in_w floats, overwritten by each backward; NULL = not wanted, the default). Used when a
 * model is a module inside a loss, e.g. a FitNets regressor on a student feature. */
void kd_model_set_input_grad(kd_model *m, float *dinput);
/* Output of layer i (0 <= i < n_layers) for the last forward: (B, c, h, w) floats, owned by the
 * model and valid until its next forward or kd_model_set_batch. */
const float *kd_model_layer_output(const kd_model *m, int i);
/* Output floats per sample of a layer. */
static inline size_t kd_layer_out_size(const kd_layer *L) { return (size_t)L->c * L->h * L->w; }
/* Shape (c, h, w) per sample of input k (< L->n_inputs) of layer L of m: the model input or an
 * earlier layer's output (L->in_c, in_h, in_w are input 0's). */
static inline void kd_layer_input_shape(const kd_model *m, const kd_layer *L, int k, int *c, int *h, int *w) {
    int j = L->inputs[k];
    *c = j == KD_MODEL_INPUT ? m->in_c : m->layers[j].c;
    *h = j == KD_MODEL_INPUT ? m->in_h : m->layers[j].h;
    *w = j == KD_MODEL_INPUT ? m->in_w : m->layers[j].w;
}

/* Totals per sample. */
long long kd_model_macs(const kd_model *m);
/* Bytes of parameters + buffers. */
size_t kd_model_param_bytes(const kd_model *m);
/* Memory of a model in bytes, each block exactly as allocated (`distill info`). The last three are
 * 0 before kd_model_set_batch and grow with its batch capacity. */
typedef struct kd_model_mem {
    size_t params;          /* trainable parameters (n_params floats); gradients take as much again */
    size_t buffers;         /* non-trainable state (BN running statistics) */
    size_t acts;            /* activations and their gradients: two blocks of the same size */
    size_t scratch;         /* convolution scratch (im2col and friends) */
    size_t idx;             /* maxpool argmax indices */
} kd_model_mem;
void kd_model_memory(const kd_model *m, kd_model_mem *out);

#ifdef __cplusplus
}
#endif
#endif
