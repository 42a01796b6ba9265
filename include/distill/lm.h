/* Language models: a GPT-style decoder-only transformer over byte tokens (vocab 256 by default),
 * trained with cross-entropy or distilled from a larger one (token-level forward/reverse KL, CE on
 * the text, cosine between hidden states), sampled with temperature/top-k/top-p, and run for
 * inference with int8 or 4-bit weights. docs/LM.md is the user's guide.
 *
 * Conventions as in ops.h: ops are free functions, outputs first, backward ACCUMULATES (+=).
 * Shapes: B batch, T time (<= ctx), C channels (dim), NH heads, hs = C/NH, V vocab, N = B*T.
 * nt: the OpenMP threads an op may use (>= 1); the model carries its count (kd_lm_set_threads).
 * kd_sgemm (oneDNN) outside a parallel region takes OpenMP's process-wide count instead. */
#ifndef DISTILL_LM_H
#define DISTILL_LM_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "distill/rng.h"
#include "distill/status.h"
#include "distill/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- ops (src/lm/ops_lm.c) */

/* out (B,T,C) = wte[tok[b,t]] + wpe[t]; tok (B,T) in [0, V) (the caller checks), wte (V,C), wpe (>=T, C) */
void kd_lm_embed_forward(float *out, const int32_t *tok, const float *wte, const float *wpe, int B, int T, int C,
                         int nt);
void kd_lm_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tok, int B, int T, int C);

/* LayerNorm over the last dim (eps 1e-5, biased variance, as torch). in/out (N,C), mean/rstd (N) saved. */
void kd_lm_layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                             const float *b, int N, int C, int nt);
void kd_lm_layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                              const float *w, const float *mean, const float *rstd, int N, int C, int nt);

/* out (N,OC) = in (N,IC) @ w^T + b; w (OC,IC) as torch's nn.Linear, b (OC) or NULL. kd_sgemm. */
void kd_lm_matmul_forward(float *out, const float *in, const float *w, const float *b, int N, int IC, int OC, int nt);
void kd_lm_matmul_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                           int N, int IC, int OC);

/* Causal multi-head self-attention. qkv (B,T,3C) holds q | k | v (each C = NH heads of hs);
 * out (B,T,C) heads concatenated; att (B,NH,T,T) the softmax weights (zero above the diagonal),
 * saved for backward. Scale 1/sqrt(hs). Backward uses datt (B,NH,T,T) as scratch. */
void kd_lm_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH, int nt);
void kd_lm_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv, const float *att, int B,
                              int T, int C, int NH, int nt);

/* GELU, tanh approximation (GPT-2's): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). n elements. */
void kd_lm_gelu_forward(float *out, const float *in, size_t n, int nt);
void kd_lm_gelu_backward(float *din, const float *dout, const float *in, size_t n, int nt);

/* Cross-entropy over the vocabulary: probs (N,V) = softmax(logits); returns the mean over the N
 * positions of -log p[target] (nats). Backward: dlogits += scale * (probs - onehot) / N. */
float kd_lm_crossentropy_forward(float *probs, const float *logits, const int32_t *targets, int N, int V, int nt);
void kd_lm_crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, int N, int V,
                                 float scale, int nt);

/* Token-level distillation losses on logits (N,V) at temperature T, T^2-scaled (Hinton et al.):
 * forward KL  T^2 * mean_n KL(pt || ps)   (pt = softmax(teacher/T), ps = softmax(student/T));
 * reverse KL  T^2 * mean_n KL(ps || pt)   (MiniLLM, Gu et al. 2023: mode-seeking).
 * Each returns the loss and, if dlogits is non-NULL, adds scale * d(loss)/d(student logits).
 * pt holds the teacher's probabilities at T (kd_lm_softmax). */
void kd_lm_softmax(float *p, const float *logits, int N, int V, float T, int nt);
float kd_lm_forward_kl(float *dlogits, const float *s_logits, const float *pt, int N, int V, float T, float scale);
float kd_lm_reverse_kl(float *dlogits, const float *s_logits, const float *pt, int N, int V, float T, float scale);
/* mean_n (1 - cos(hs[n], ht[n])) over hidden states (N,C); dhs += scale * gradient (if non-NULL). */
float kd_lm_cosine_loss(float *dhs, const float *hs, const float *ht, int N, int C, float scale);

/* ---------------------------------------------------------------- tokenizer (src/lm/tok_lm.c)
 * Byte-level BPE: tokens 0..255 are the bytes, token 256+i the concatenation of merge i's pair
 * (a, b), both earlier tokens. A model without a tokenizer (NULL) uses the 256 bytes; every function
 * here takes NULL as that byte tokenizer. Bits per byte are always total bits / BYTES, whatever the
 * tokenization, so models with different tokenizers compare. */
#define KD_LM_BPE_MAX_VOCAB 4096 /* training counts pairs in a dense vocab^2 table (64 MB at 4096) */
typedef struct kd_lm_tokenizer kd_lm_tokenizer;

/* Learn vocab - 256 merges on data (the training split only): each the most frequent adjacent pair
 * of the text merged so far, ties to the smallest (a, b), so the same bytes give the same merges.
 * Stops early when no pair occurs twice. vocab in [256, KD_LM_BPE_MAX_VOCAB]. O(merges * n). */
kd_status kd_lm_tokenizer_train(kd_lm_tokenizer **out, const uint8_t *data, size_t n, int vocab, kd_error *err);
/* From a merge list (n_merges pairs, as kd_lm_tokenizer_merges gives): validated (each pair of
 * earlier tokens, token expansions at most 64 KB): a hostile list is KD_STATUS_BAD_FILE. */
kd_status kd_lm_tokenizer_from_merges(kd_lm_tokenizer **out, const int32_t *merges, int n_merges, kd_error *err);
kd_status kd_lm_tokenizer_clone(kd_lm_tokenizer **out, const kd_lm_tokenizer *t, kd_error *err); /* NULL -> NULL */
void kd_lm_tokenizer_free(kd_lm_tokenizer *t);
int kd_lm_tokenizer_vocab(const kd_lm_tokenizer *t); /* 256 + merges */
const int32_t *kd_lm_tokenizer_merges(const kd_lm_tokenizer *t, int *n_merges);
int kd_lm_tokenizer_equal(const kd_lm_tokenizer *a, const kd_lm_tokenizer *b);
/* Tokens of data (n bytes) into a new array *out (free()) of *n_out tokens: the merges applied in
 * order, each replacing its pair left to right. */
kd_status kd_lm_tokenizer_encode(const kd_lm_tokenizer *t, const uint8_t *data, size_t n, int32_t **out,
                                 size_t *n_out, kd_error *err);
/* The bytes of one token (*len of them; 0 for a token outside the vocabulary). */
const uint8_t *kd_lm_tokenizer_token(const kd_lm_tokenizer *t, int tok, size_t *len);
/* Bytes of n tokens into dst (at most cap written); returns the bytes the tokens decode to. */
size_t kd_lm_tokenizer_decode(const kd_lm_tokenizer *t, const int32_t *tok, size_t n, uint8_t *dst, size_t cap);

/* ---------------------------------------------------------------- model (src/lm/model_lm.c) */

typedef struct kd_lm_config {
    int vocab;   /* 256: byte tokens; 256 + merges with a BPE tokenizer */
    int ctx;     /* maximum sequence length (position embeddings) */
    int layers;
    int dim;     /* C, a multiple of heads */
    int heads;
} kd_lm_config;

/* Parameter tensors, in block order: wte (V,C), wpe (ctx,C), then per layer l the 12 tensors of
 * enum kd_lm_ltensor, then lnf.weight, lnf.bias (C each). */
enum kd_lm_ltensor {
    KD_LM_LN1_W, KD_LM_LN1_B, KD_LM_QKV_W, KD_LM_QKV_B, KD_LM_PROJ_W, KD_LM_PROJ_B,
    KD_LM_LN2_W, KD_LM_LN2_B, KD_LM_FC_W, KD_LM_FC_B, KD_LM_FCPROJ_W, KD_LM_FCPROJ_B, KD_LM_NLT
};

typedef struct kd_lm_tensor {
    char name[40];    /* safetensors name, e.g. "h.3.attn.qkv.weight" */
    int ndim, shape[2];
    size_t off, n;    /* in floats, into the parameter block */
    int decay;        /* AdamW weight decay applies (matrices and embeddings, as GPT-2 recipes) */
} kd_lm_tensor;

typedef struct kd_lm_layer {
    float *w[KD_LM_NLT]; /* pointers into a block with the parameter layout (params or grads) */
} kd_lm_layer;

/* Activations of one forward pass for (B, T): one contiguous block, pointed into. */
typedef struct kd_lm_acts {
    float *encoded;                 /* (B,T,C) */
    float *ln1, *ln1_mean, *ln1_rstd; /* (L,B,T,C), (L,B,T) x2 */
    float *qkv;                     /* (L,B,T,3C) */
    float *atty;                    /* (L,B,T,C) */
    float *att;                     /* (L,B,NH,T,T) */
    float *res2;                    /* (L,B,T,C) residual after attention */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu;          /* (L,B,T,4C) */
    float *res3;                    /* (L,B,T,C) residual after the MLP = block output */
    float *lnf, *lnf_mean, *lnf_rstd; /* (B,T,C), (B,T) x2: the last hidden state */
    float *logits;                  /* (B,T,V) */
    float *probs;                   /* (B,T,V) softmax for the CE backward */
} kd_lm_acts;

/* Gradients of activations, reused layer by layer in backward. */
typedef struct kd_lm_gacts {
    float *dres;      /* (B,T,C) */
    float *dln;       /* (B,T,C) */
    float *dqkv;      /* (B,T,3C) */
    float *datty;     /* (B,T,C) */
    float *datt;      /* (B,NH,T,T) scratch */
    float *dfch, *dfch_gelu; /* (B,T,4C) */
    float *dlnf;      /* (B,T,C) */
    float *dlogits;   /* (B,T,V) */
} kd_lm_gacts;

typedef struct kd_lm {
    kd_lm_config cfg;
    kd_lm_tensor *tensors;
    int n_tensors;
    size_t n_params;
    float *params;     /* (n_params) */
    float *grads;      /* (n_params), allocated by kd_lm_prepare(with_grads) */
    int B, T;          /* capacity of the activation blocks */
    float *act_block, *gact_block;
    size_t n_acts, n_gacts;
    kd_lm_acts a;
    kd_lm_gacts g;
    int32_t *tokens;   /* (B,T) inputs of the last forward */
    int cur_B, cur_T;  /* shape of the last forward */
    kd_lm_tokenizer *tok; /* owned; NULL = byte tokens */
    int threads;       /* OpenMP threads of its ops (1 after kd_lm_create; kd_lm_set_threads) */
} kd_lm;

/* Validate a configuration (ranges, dim % heads, the parameter count fits). */
kd_status kd_lm_config_check(const kd_lm_config *c, kd_error *err);
/* Allocate a model (parameters initialised as GPT-2: N(0, 0.02), residual projections scaled
 * by 1/sqrt(2L), LayerNorm 1/0, biases 0) from seed. */
kd_status kd_lm_create(kd_lm **out, const kd_lm_config *c, uint64_t seed, kd_error *err);
void kd_lm_free(kd_lm *m);
/* The OpenMP threads m's forward, backward, evaluation and inference ops use (n >= 1; results do
 * not depend on it). kd_lm_train uses its config's count for the run. */
void kd_lm_set_threads(kd_lm *m, int n);
/* Give m the tokenizer t (NULL = bytes): m owns it on success; its vocabulary must be m's. */
kd_status kd_lm_set_tokenizer(kd_lm *m, kd_lm_tokenizer *t, kd_error *err);
/* Pointers of layer l's tensors in a block with the parameter layout. */
void kd_lm_layer_ptrs(const kd_lm *m, float *block, int l, kd_lm_layer *out);
const kd_lm_tensor *kd_lm_find_tensor(const kd_lm *m, const char *name);
/* Activation buffers for batches of up to B sequences of up to T <= ctx tokens; with_grads also
 * allocates parameter gradients and activation gradients (training). */
kd_status kd_lm_prepare(kd_lm *m, int B, int T, int with_grads, kd_error *err);
/* Forward: tokens (B,T) -> m->a.logits (B,T,V). Requires B <= m->B, T <= m->T; tokens in [0,V). */
void kd_lm_forward(kd_lm *m, const int32_t *tokens, int B, int T);
/* Backward of the last forward from m->g.dlogits (B,T,V) and, if dhidden_extra is non-NULL, an
 * extra gradient on the last hidden state (lnf output, (B,T,C)). Accumulates into m->grads. */
void kd_lm_backward(kd_lm *m, const float *dhidden_extra);
void kd_lm_zero_grad(kd_lm *m);
/* Bytes of parameters and of activations (and their gradients) at the prepared shape. */
size_t kd_lm_activation_bytes(const kd_lm *m);

/* ---------------------------------------------------------------- checkpoints (src/lm/ckpt_lm.c)
 * safetensors: F32 tensors under the names of the size table; the metadata holds "format":
 * "distill-lm", "version": "1", "config" ("vocab=256,ctx=..,layers=..,dim=..,heads=.."); a model
 * with a BPE tokenizer is "version": "2" (older readers refuse it rather than read its tokens as
 * bytes) with "tokenizer": "bpe" and "merges": "a b a b ..." (vocab - 256 pairs); and for a
 * training checkpoint "step", "rng_state", "rng_inc", "adam_t" (kd_optimizer.t) plus tensors
 * "optim.m.<name>", "optim.v.<name>" (the AdamW moments of the shared kd_optimizer, train.h).
 * Written atomically. */

typedef struct kd_lm_state {
    long long step;    /* optimizer steps taken */
    kd_rng rng;        /* batch sampling */
} kd_lm_state;

kd_status kd_lm_save(const char *path, const kd_lm *m, const kd_optimizer *opt, const kd_lm_state *st, kd_error *err);
/* Read a checkpoint's configuration and build the model with its weights and tokenizer. */
kd_status kd_lm_load(const char *path, kd_lm **out, kd_error *err);
/* Load weights and, if the file has them and opt/st are non-NULL, the training state, into m (whose
 * config and tokenizer must match). *has_state tells whether it was found. Nothing changes on failure. */
kd_status kd_lm_load_into(const char *path, kd_lm *m, kd_optimizer *opt, kd_lm_state *st, int *has_state,
                          kd_error *err);

/* ---------------------------------------------------------------- training (src/lm/train_lm.c) */

typedef enum kd_lm_loss_kind { KD_LM_LOSS_CE = 0, KD_LM_LOSS_FKL, KD_LM_LOSS_RKL, KD_LM_LOSS_COSINE } kd_lm_loss_kind;

typedef struct kd_lm_loss_term {
    kd_lm_loss_kind kind;
    float weight;  /* multiplies the term (default 1) */
    float T;       /* fkl, rkl: temperature (default 1) */
} kd_lm_loss_term;

/* "KIND[:key=value,...]": ce | fkl[:T=,weight=] | rkl[:T=,weight=] | cosine[:weight=] */
kd_status kd_lm_loss_term_parse(kd_lm_loss_term *t, const char *spec, kd_error *err);
void kd_lm_loss_term_format(const kd_lm_loss_term *t, char *buf, size_t n);

/* A text corpus as bytes, split into training text and the held-out tail. */
typedef struct kd_lm_text {
    uint8_t *data;
    size_t n;
    size_t n_train;    /* data[0, n_train) trains, data[n_train, n) is held out */
} kd_lm_text;
/* Read a file; holdout in [0, 0.5] is the held-out fraction (the last part of the file). Errors
 * name the file: missing, empty, too short for the context. */
kd_status kd_lm_text_load(kd_lm_text *t, const char *path, double holdout, int ctx, kd_error *err);
/* Append the bytes of another file to the training split (never held out): sequence-level KD's
 * teacher text mixed with the real text, evaluated on the real held-out tail. Errors name the file. */
kd_status kd_lm_text_add_train(kd_lm_text *t, const char *path, kd_error *err);
void kd_lm_text_free(kd_lm_text *t);

typedef struct kd_lm_train_config {
    int steps, batch;
    int threads;                 /* OpenMP threads of the model's and teacher's ops for the run
                                    (0 = the models' own, kd_lm_set_threads) */
    int seq;                     /* sequence length (<= ctx); 0 = ctx */
    uint64_t seed;
    kd_optim_config optim;       /* the shared optimizer (train.h), AdamW by default: lr, beta1/2,
                                    eps, weight_decay, sched (cosine or const), min_lr; its
                                    warmup_epochs is not used (warmup_steps is) */
    float warmup_steps;          /* linear warmup from 0 over this many optimizer steps */
    float clip;                  /* global gradient-norm clip (0 = off) */
    const char *ckpt_path;       /* training state written atomically every ckpt_every steps and at
                                    the end; NULL = none */
    int ckpt_every;
    int resume;                  /* continue from ckpt_path if it exists */
    int eval_every;              /* held-out bits/byte every N steps (0 = only at the end) */
    size_t eval_bytes;           /* held-out bytes used by the periodic evaluation (0 = all) */
    int progress;
    FILE *out;                   /* progress (stderr if NULL) */
    const volatile int *stop;    /* set (SIGINT): save and return KD_STATUS_INTERRUPTED */
    /* distillation: teacher (same vocab and ctx >= seq) and the loss list; NULL/0 = CE only */
    kd_lm *teacher;
    const kd_lm_loss_term *terms;
    int n_terms;
} kd_lm_train_config;

void kd_lm_train_config_default(kd_lm_train_config *c);

typedef struct kd_lm_eval {
    double loss;       /* mean nats per token */
    double bpb;        /* bits per byte: total bits / bytes predicted (= loss / ln 2 for byte tokens) */
    double ppl;        /* exp(loss): per token, so comparable only between equal tokenizers */
    long long tokens;  /* tokens predicted */
    long long bytes;   /* bytes those tokens decode to */
    double seconds;
} kd_lm_eval;

typedef struct kd_lm_train_result {
    long long resumed_step;  /* -1 if fresh */
    long long steps_run;
    double seconds, tokens_per_sec, ms_per_step;
    double comm_seconds;     /* under mpirun: of seconds, in the gradient sums (waits included) */
    double bytes_per_token;  /* of the training split (1 for byte tokens) */
    double last_loss;
    kd_lm_eval val;
} kd_lm_train_result;

/* Encodes the training split and the held-out tail separately with m's tokenizer (a token never
 * spans the boundary); a teacher must have the same tokenizer. */
kd_status kd_lm_train(kd_lm *m, const kd_lm_text *text, const kd_lm_train_config *cfg, kd_lm_train_result *res,
                      kd_error *err);
/* Held-out evaluation of the bytes data[0, n), encoded with m's tokenizer: non-overlapping windows of
 * T tokens (T = seq or ctx), each predicting every position from its window; every token but the
 * first is predicted once, and bits per byte divide their total bits by the bytes they decode to. */
kd_status kd_lm_evaluate(kd_lm *m, const uint8_t *data, size_t n, int batch, int seq, kd_lm_eval *res,
                         kd_error *err);
/* Student layers from the teacher: embeddings, final LayerNorm and student layer i <- teacher
 * layer i*k with k = teacher layers / student layers (DistilBERT takes one of every two). */
kd_status kd_lm_init_from_teacher(kd_lm *student, const kd_lm *teacher, kd_error *err);

/* ---------------------------------------------------------------- quantized weights (src/lm/quant_lm.c)
 * Matrices (qkv, proj, fc, fcproj, the tied wte) in blocks of 32 along the input dimension:
 *   q8: float scale + 32 x int8 (symmetric, like ggml's Q8_0 with an fp32 scale): 9 bits/weight
 *   q4: float scale + 32 x 4-bit in [-8, 7], two per byte: 5 bits/weight */
typedef enum kd_lm_qtype { KD_LM_F32 = 0, KD_LM_Q8, KD_LM_Q4 } kd_lm_qtype;

typedef struct kd_lm_qtraits {
    const char *name;
    int block;          /* weights per block */
    size_t bytes;       /* bytes per block */
    void (*from_float)(void *dst, const float *src, size_t n);  /* n % block == 0 */
    void (*to_float)(float *dst, const void *src, size_t n);
    float (*dot)(const void *w, const float *x, int n);         /* one row of n weights . x (AVX2 if built for it) */
    float (*dot_ref)(const void *w, const float *x, int n);     /* the portable loop: the oracle */
} kd_lm_qtraits;
const kd_lm_qtraits *kd_lm_qtype_traits(kd_lm_qtype t);
kd_status kd_lm_qtype_parse(kd_lm_qtype *t, const char *s, kd_error *err);
/* Replace every matrix of m by its quantize->dequantize round trip (what the integer kernels
 * compute with), for evaluating the quantized model with the batched fp32 forward. */
kd_status kd_lm_fake_quantize(kd_lm *m, kd_lm_qtype t, kd_error *err);

/* ---------------------------------------------------------------- inference (src/lm/infer_lm.c)
 * One token at a time with a key/value cache; weights fp32 (kd_sgemm) or quantized (the traits'
 * dot kernels). */
typedef struct kd_lm_infer kd_lm_infer;
kd_status kd_lm_infer_create(kd_lm_infer **out, const kd_lm *m, kd_lm_qtype qt, kd_error *err);
void kd_lm_infer_free(kd_lm_infer *inf);
/* Logits (V) of the next token after `token` at position pos (0 <= pos < ctx); positions before pos
 * must have been fed in order. Returns a pointer to the inference's own buffer. */
const float *kd_lm_infer_step(kd_lm_infer *inf, int token, int pos);
size_t kd_lm_infer_weight_bytes(const kd_lm_infer *inf);

typedef struct kd_lm_sample_config {
    float temperature;  /* 0 = greedy */
    int top_k;          /* 0 = off */
    float top_p;        /* 1 = off */
    uint64_t seed;
} kd_lm_sample_config;

/* Draw a token from logits (V) (kept intact); scratch holds 2V floats. */
int kd_lm_sample(const float *logits, int V, const kd_lm_sample_config *c, kd_rng *rng, float *scratch);
/* Generate n tokens after the prompt (bytes, encoded with the model's tokenizer), calling emit for
 * each token (kd_lm_tokenizer_token gives its bytes; return non-zero to stop). When the context
 * fills, the last ctx/2 tokens are fed again (a sliding window). */
kd_status kd_lm_generate(kd_lm_infer *inf, const uint8_t *prompt, size_t n_prompt, long long n,
                         const kd_lm_sample_config *c, int (*emit)(void *ctx, int token), void *emit_ctx,
                         kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
