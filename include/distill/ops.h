/* fp32 training ops: free functions in the llm.c style.
 * Outputs first; forward writes (=), backward ACCUMULATES (+=) into every gradient it is given
 * (a NULL gradient pointer is skipped). Tensors are NCHW, row-major, contiguous.
 * Threading: ops use OpenMP over the batch where it pays, with the thread count their caller
 * passes (`threads`, or kd_conv_shape.threads; >= 1, a smaller value means 1; the model passes
 * its n_threads). No op reads or changes OpenMP's process-wide default, except through oneDNN:
 * see kd_sgemm. With a fixed thread count results are bit-identical run to run (reductions are
 * done in a fixed order); the pooling, batch-norm and element-wise ops give the same bits for
 * every thread count (no value is summed across threads). */
#ifndef DISTILL_OPS_H
#define DISTILL_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- GEMM (src/nn/gemm.c): the one interface to the BLAS/oneDNN backend ----
 * Row-major C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C.
 * Threads: oneDNN's sgemm takes no thread count. Called inside an OpenMP parallel region with 2 or
 * more threads (the convolutions' loops over images) it runs on one thread; called elsewhere
 * (linear layers, convolutions with threads = 1, the LM) it runs on omp_get_max_threads()
 * threads, OpenMP's process-wide default, which its partition of the sums (hence the last bits of
 * the result) depends on. The library never sets that default: a program sets it once
 * (OMP_NUM_THREADS, or omp_set_num_threads as the distill CLI does from -j) to the thread count
 * it passes to the library. */
void kd_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);
const char *kd_gemm_backend(void);

/* ---- linear (src/nn/linear.c) ---- weight (out_f, in_f) as in PyTorch, bias (out_f) or NULL */
void kd_linear_forward(float *out, const float *in, const float *weight, const float *bias, int B,
                       int in_f, int out_f);                               /* out (B,out_f) in (B,in_f) */
void kd_linear_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                        const float *weight, int B, int in_f, int out_f);

/* ---- conv2d (src/nn/conv.c) ----
 * weight (Cout, Cin/groups, K, K), bias (Cout) or NULL, square kernel, symmetric padding, dilation
 * d (taps d apart; 0 is taken as 1). Ho = (H + 2*pad - (d*(K-1)+1))/stride + 1, i.e.
 * kd_conv2d_out_size(H, d*(K-1)+1, stride, pad). `scratch` must hold kd_conv2d_scratch_floats(...)
 * floats. */
typedef struct kd_conv_shape {
    int B, Cin, H, W, Cout, K, stride, pad, groups, Ho, Wo;
    int threads;    /* OpenMP threads to use; scratch must be sized for this many (>= 1) */
    int dilation;   /* >= 1; 0 (a shape written before dilation existed) means 1 */
} kd_conv_shape;
int kd_conv2d_out_size(int in, int k, int stride, int pad);
size_t kd_conv2d_scratch_floats(const kd_conv_shape *s); /* for s->threads threads */
void kd_conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                       const kd_conv_shape *s, float *scratch);            /* out (B,Cout,Ho,Wo) */
void kd_conv2d_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                        const float *weight, const kd_conv_shape *s, float *scratch);

/* ---- pooling (src/nn/pool.c) ---- square window k, stride, symmetric padding pad <= k/2, as
 * PyTorch's MaxPool2d/AvgPool2d: padded positions never win a max; an average divides by the
 * window's size clipped to the padded input when count_pad (count_include_pad), else by the
 * number of input elements in it. Ho, Wo from kd_pool_out_size (ceil_mode or not). */
typedef struct kd_pool_shape {
    int B, C, H, W, k, stride, pad, Ho, Wo;
    int count_pad;  /* avgpool: padded zeros count in the divisor */
    int threads;
} kd_pool_shape;
/* PyTorch's output size: floor or (ceil_mode) ceil of (in + 2 pad - k) / stride + 1, minus one
 * when ceil_mode would start the last window past the input and its left padding; 0 when the
 * window does not fit. */
int kd_pool_out_size(int in, int k, int stride, int pad, int ceil_mode);
void kd_maxpool_forward(float *out, int32_t *argmax, const float *in, const kd_pool_shape *s); /* argmax (B,C,Ho,Wo) */
void kd_maxpool_backward(float *din, const float *dout, const int32_t *argmax, const kd_pool_shape *s);
void kd_avgpool_forward(float *out, const float *in, const kd_pool_shape *s);
void kd_avgpool_backward(float *din, const float *dout, const kd_pool_shape *s);
void kd_gap_forward(float *out, const float *in, int B, int C, int HW);   /* out (B,C); one thread */
void kd_gap_backward(float *din, const float *dout, int B, int C, int HW);

/* ---- batch norm (src/nn/norm.c) ---- over (B, C, HW); HW = 1 for features of linear layers.
 * Training: batch statistics (biased variance for normalising, unbiased for the running update,
 * as PyTorch), saves mean/invstd (C each) for backward, updates running stats with momentum.
 * Eval: uses running stats. */
void kd_batchnorm_forward_train(float *out, float *save_mean, float *save_invstd, float *running_mean,
                                float *running_var, const float *in, const float *gamma,
                                const float *beta, int B, int C, int HW, float eps, float momentum,
                                int threads);
void kd_batchnorm_forward_eval(float *out, const float *in, const float *gamma, const float *beta,
                               const float *running_mean, const float *running_var, int B, int C,
                               int HW, float eps, int threads);
void kd_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                           const float *gamma, const float *save_mean, const float *save_invstd, int B,
                           int C, int HW, int threads);
/* Synchronised batch norm across processes (kd_model_set_sync_bn): as above with the statistics of
 * the global batch. sum(buf, n, ctx) sums n doubles in place over the processes; tmp holds 2C + 1
 * doubles. Forward: the per-channel sums of x and the count, then the sums of squared deviations
 * from the global mean. Backward: the sums of dy and dy*x_hat for din; dgamma and dbeta get this
 * process's own sums (the gradient sum over processes adds them up). */
void kd_batchnorm_forward_train_sync(float *out, float *save_mean, float *save_invstd, float *running_mean,
                                     float *running_var, const float *in, const float *gamma, const float *beta,
                                     int B, int C, int HW, float eps, float momentum, int threads, double *tmp,
                                     void (*sum)(double *, size_t, void *), void *ctx);
void kd_batchnorm_backward_sync(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                                const float *gamma, const float *save_mean, const float *save_invstd, int B,
                                int C, int HW, int threads, double *tmp, void (*sum)(double *, size_t, void *),
                                void *ctx);

/* ---- elementwise (src/nn/activation.c) ---- n = element count; `threads` are used only when n
 * is large enough to pay for waking them (32768 elements) */
void kd_relu_forward(float *out, const float *in, size_t n, int threads);
void kd_relu_backward(float *din, const float *dout, const float *out, size_t n, int threads);
void kd_gelu_forward(float *out, const float *in, size_t n, int threads);              /* exact erf form */
void kd_gelu_backward(float *din, const float *dout, const float *in, size_t n, int threads);
/* Inverted dropout: mask holds 0 or 1/(1-p); generated by the caller's RNG. */
void kd_dropout_forward(float *out, const float *in, const float *mask, size_t n, int threads);
void kd_dropout_backward(float *din, const float *dout, const float *mask, size_t n, int threads);
void kd_add_forward(float *out, const float *a, const float *b, size_t n, int threads);
void kd_add_backward(float *da, float *db, const float *dout, size_t n, int threads);
/* Gradients at the kinks follow PyTorch: clip passes the gradient only strictly inside (lo, hi)
 * (hardtanh, ReLU6), leaky ReLU uses alpha at 0, hard sigmoid passes alpha only where
 * 0 < alpha x + beta < 1, hard swish takes x/3 + 1/2 on [-3, 3) (0 below, 1 from 3 on). */
void kd_clip_forward(float *out, const float *in, size_t n, float lo, float hi, int threads);
void kd_clip_backward(float *din, const float *dout, const float *in, size_t n, float lo, float hi, int threads);
void kd_leaky_relu_forward(float *out, const float *in, size_t n, float alpha, int threads);
void kd_leaky_relu_backward(float *din, const float *dout, const float *in, size_t n, float alpha, int threads);
void kd_sigmoid_forward(float *out, const float *in, size_t n, int threads);
void kd_sigmoid_backward(float *din, const float *dout, const float *out, size_t n, int threads);
void kd_hard_sigmoid_forward(float *out, const float *in, size_t n, float alpha, float beta, int threads);
void kd_hard_sigmoid_backward(float *din, const float *dout, const float *in, size_t n, float alpha, float beta,
                              int threads);
void kd_hard_swish_forward(float *out, const float *in, size_t n, int threads);
void kd_hard_swish_backward(float *din, const float *dout, const float *in, size_t n, int threads);

/* ---- broadcasting binary ops (src/nn/eltwise.c) ---- a (B, ca, ha, wa), b (B, cb, hb, wb), out
 * (B, c, h, w): each dimension of an input equals the output's or is 1 (repeated), as numpy/ONNX
 * broadcasting of two NCHW tensors with the same batch (squeeze-excitation: (C,H,W) * (C,1,1)).
 * Backward sums the gradient over the dimensions an input was repeated along. */
typedef struct kd_bcast_shape {
    int B;
    int ca, ha, wa, cb, hb, wb, c, h, w;
    int threads;
} kd_bcast_shape;
void kd_bcast_add_forward(float *out, const float *a, const float *b, const kd_bcast_shape *s);
void kd_bcast_add_backward(float *da, float *db, const float *dout, const kd_bcast_shape *s);
void kd_mul_forward(float *out, const float *a, const float *b, const kd_bcast_shape *s);
void kd_mul_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                     const kd_bcast_shape *s);

/* ---- shape ops and per-channel affine (src/nn/eltwise.c) ---- */
/* Constant padding of (B, C, H, W) by pads = top, left, bottom, right (>= 0) with value:
 * out (B, C, H + top + bottom, W + left + right). Backward takes the interior. */
void kd_pad_forward(float *out, const float *in, int B, int C, int H, int W, const int pads[4], float value,
                    int threads);
void kd_pad_backward(float *din, const float *dout, int B, int C, int H, int W, const int pads[4], int threads);
/* Channel concatenation of n inputs in[k] (B, c[k], HW) into out (B, sum c, HW); backward hands
 * each din[k] (NULL = skipped) its slice. */
void kd_concat_forward(float *out, const float *const *in, const int *c, int n, int B, int HW, int threads);
void kd_concat_backward(float *const *din, const float *dout, const int *c, int n, int B, int HW, int threads);
/* y = x * w[c] + b[c] over (B, C, HW); nw = C (per channel) or 1 (one scalar pair). */
void kd_scale_forward(float *out, const float *in, const float *w, const float *b, int B, int C, int HW, int nw,
                      int threads);
void kd_scale_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w, int B,
                       int C, int HW, int nw, int threads);

/* ---- softmax and losses (src/nn/loss.c) ---- logits (B, C) */
float kd_row_max(const float *z, int C); /* max of z[0..C), C >= 1: the shift for stable softmax */
void kd_softmax_forward(float *probs, const float *logits, int B, int C, float temperature);
void kd_log_softmax_forward(float *out, const float *logits, int B, int C, float temperature);
/* Mean cross-entropy with label smoothing eps in [0,1): target = (1-eps)*onehot + eps/C.
 * Returns the mean loss; writes probs (B,C) for backward. labels in [0, C). */
float kd_cross_entropy_forward(float *probs, const float *logits, const int32_t *labels, int B, int C,
                               float smoothing);
/* dlogits += scale * d(mean CE)/dlogits */
void kd_cross_entropy_backward(float *dlogits, const float *probs, const int32_t *labels, int B, int C,
                               float smoothing, float scale);
/* The same for mixed samples (mixup, CutMix: data.h kd_batch_mix): row b's target is lam[b] of
 * labels[b] and 1 - lam[b] of labels2[b], i.e. lam * CE(labels) + (1 - lam) * CE(labels2), each
 * label-smoothed. labels2 and lam NULL: exactly the unmixed functions above. */
float kd_cross_entropy_mix_forward(float *probs, const float *logits, const int32_t *labels, const int32_t *labels2,
                                   const float *lam, int B, int C, float smoothing);
void kd_cross_entropy_mix_backward(float *dlogits, const float *probs, const int32_t *labels, const int32_t *labels2,
                                   const float *lam, int B, int C, float smoothing, float scale);

#ifdef __cplusplus
}
#endif
#endif
