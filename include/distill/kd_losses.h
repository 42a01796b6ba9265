/* Feature- and relation-based distillation losses, and logit standardisation, as pure functions
 * (src/distill/loss_feature.c). They allocate nothing, print nothing and never exit.
 *
 * Convention for every loss:
 *   float kd_X_loss(float *ds, const float *s, const float *t, <shapes>, float scale[, scratch])
 * returns the loss value (unscaled; accumulated in double, rounded to float at the end), and if ds
 * is non-NULL ADDS scale * dLoss/ds into ds (same shape as s): gradients accumulate, they never
 * overwrite. s is the student's tensor, t the teacher's, a constant (no gradient). Row-major,
 * batch first. Where scratch is needed the caller passes `float *scratch` holding at least
 * kd_X_scratch(...) floats (any alignment, contents on entry ignored, overwritten). The golden
 * values in tests/golden/kd_feature/ are these formulas evaluated by PyTorch in float64. */
#ifndef DISTILL_KD_LOSSES_H
#define DISTILL_KD_LOSSES_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* FitNets hint loss (Romero et al., ICLR 2015), PyTorch's MSELoss(reduction='mean'):
 *   loss = (1/n) sum_i (s_i - t_i)^2,   dloss/ds_i = 2 (s_i - t_i) / n.
 * s, t: n floats (the regressor, if any, is applied by the caller). n = 0 returns 0. */
float kd_mse_loss(float *ds, const float *s, const float *t, size_t n, float scale);

/* Attention transfer (Zagoruyko & Komodakis, ICLR 2017), as in the authors' code and torchdistill:
 *   a(x) = F.normalize(x.pow(2).mean(1).view(B, -1))    (row-wise L2, eps 1e-12 as F.normalize:
 *          a_b = q_b / max(||q_b||_2, 1e-12), q_b[j] = (1/C) sum_c x[b,c,j]^2)
 *   loss = (a(s) - a(t)).pow(2).mean()                  (mean over the B*HW entries)
 * s: (B, Cs, HW), t: (B, Ct, HW); the channel counts may differ, the spatial size HW may not.
 * (The paper's beta/2 weight and the sum over layer pairs are the caller's.)
 * scratch: kd_at_scratch(B, HW) = 2*HW floats. */
size_t kd_at_scratch(int B, int HW);
float kd_at_loss(float *ds, const float *s, const float *t, int B, int Cs, int Ct, int HW, float scale,
                 float *scratch);

/* DistilBERT's hidden-state loss (Sanh et al. 2019): nn.CosineEmbeddingLoss(reduction='mean') with
 * target +1, i.e. loss = (1/B) sum_b (1 - cos_b) over the rows of s, t: (B, D), where PyTorch 1.13's
 * cosine_embedding_loss computes
 *   cos_b = <s_b, t_b> / sqrt((||s_b||^2 + 1e-12) (||t_b||^2 + 1e-12)).
 * (Not F.cosine_similarity, which divides by max(||s_b||, 1e-8) max(||t_b||, 1e-8); the two agree
 * to ~1e-12 / ||x||^2 relative unless a row is nearly zero.) No scratch. */
float kd_cosine_loss(float *ds, const float *s, const float *t, int B, int D, float scale);

/* Similarity-preserving KD (Tung & Mori, ICCV 2019), as torchdistill's SPLoss: with f the features
 * flattened to (B, D),
 *   G = F.normalize(f f^T)   (B x B Gram matrix, each row divided by max(||row||_2, 1e-12))
 *   loss = ||G_s - G_t||_F^2 / B^2.
 * s: (B, Ds), t: (B, Dt); Ds and Dt may differ. Cost O(B^2 (Ds + Dt)).
 * scratch: kd_sp_scratch(B) = 2*B*B floats. */
size_t kd_sp_scratch(int B);
float kd_sp_loss(float *ds, const float *s, const float *t, int B, int Ds, int Dt, float scale, float *scratch);

/* Relational KD (Park et al., CVPR 2019), as the authors' code (lenscloth/RKD, RkdDistance and
 * RKdAngle): loss = w_dist * L_dist + w_angle * L_angle over the B rows of s: (B, Ds), t: (B, Dt).
 *   Distance: d_ij = sqrt(max(||x_i - x_j||^2, 1e-12)) for i != j, d_ii = 0; each matrix is divided
 *     by the mean of its positive entries (the B(B-1) off-diagonal ones), and
 *     L_dist = F.smooth_l1_loss(d_s, d_t) (beta 1, mean over all B*B entries).
 *   Angle: e_ij = F.normalize(x_j - x_i) (eps 1e-12; e_ii = 0), angle_ijk = <e_ij, e_ik> for all B^3
 *     triplets (the authors' torch.bmm of the normalised difference tensors), and
 *     L_angle = F.smooth_l1_loss(angle_s, angle_t) (beta 1, mean over the B^3 entries).
 *   smooth_l1(x) = x^2 / 2 if |x| < 1 else |x| - 1/2.
 * Cost: O(B^2 (Ds + Dt)) for the pairwise distances plus O(B^3) scalar work for the angles, which
 * come from the distances by the law of cosines, <x_j - x_i, x_k - x_i> = (q_ij + q_ik - q_jk) / 2
 * with q = squared distance (kept to ~2^-48 as a hi/lo float pair, so nothing cancels), instead
 * of the authors' O(B^3 D) bmm. B = 128, D = 256 with the gradient: ~3 ms on one core in the
 * Release build (-O3 -march=native, the angle loop vectorises), ~10 ms at plain -O2; the time is
 * printed by tests/unit/test_kd_feature.c. Computing only the loss (ds = NULL) costs about the same.
 * Differences from the authors' code, visible only for (near-)coincident rows: squared distances
 * are summed from x_i - x_j directly rather than as ||x_i||^2 + ||x_j||^2 - 2<x_i,x_j> (same value,
 * without the cancellation); pairs closer than 1e-12 have no angle (0, as torch gives for equal
 * rows) and no angle gradient (torch's is multiplied by 1e12 there). B < 2 returns 0.
 * scratch: kd_rkd_scratch(B, Ds, Dt) = 7*B*B floats (independent of Ds, Dt today). */
size_t kd_rkd_scratch(int B, int Ds, int Dt);
float kd_rkd_loss(float *ds, const float *s, const float *t, int B, int Ds, int Dt, float w_dist, float w_angle,
                  float scale, float *scratch);

/* Logit standardisation (Sun et al., CVPR 2024, "Logit Standardization in Knowledge Distillation"):
 * each row of x: (B, C) is z-scored before the temperature is applied,
 *   z = (x - mean) * inv_std,   inv_std = 1 / sqrt(var + 1e-7),   var = (1/C) sum_c (x_c - mean)^2
 * i.e. the population variance, torch.var(unbiased=False), with eps 1e-7 inside the sqrt. (The
 * authors' code divides by torch.std(unbiased=True) + 1e-7: z differs by the constant factor
 * sqrt((C-1)/C), which the temperature absorbs, and by where eps enters for near-constant rows.)
 * kd_zscore_forward writes z (B, C) and inv_std (B) (needed by backward). kd_zscore_backward ADDS
 * dx += inv_std * (dz - mean(dz) - z * mean(dz * z)) (row-wise), the exact gradient including eps. */
void kd_zscore_forward(float *z, float *inv_std, const float *x, int B, int C);
void kd_zscore_backward(float *dx, const float *dz, const float *z, const float *inv_std, int B, int C);

#ifdef __cplusplus
}
#endif
#endif
