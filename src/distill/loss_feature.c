/* Feature- and relation-based distillation losses (FitNets' hint MSE, attention transfer,
 * DistilBERT's cosine loss, similarity-preserving KD, relational KD) and logit standardisation, as
 * pure functions; the formulas and papers are in include/distill/kd_losses.h. Sums run in double;
 * the only memory used besides the arguments is the caller's scratch. */
#include <math.h>
#include <stddef.h>

#include "distill/kd_losses.h"

#define KD_NORM_EPS 1e-12 /* F.normalize's eps, on the L2 norm */
#define KD_BLK 32         /* columns kept in double accumulators at a time */

/* ---- helpers ---- */

static double dot_d(const float *a, const float *b, int n) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double sqdist_d(const float *a, const float *b, int n) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        s += d * d;
    }
    return s;
}

static double smooth_l1(double x) {
    double ax = fabs(x);
    return ax < 1.0 ? 0.5 * x * x : ax - 0.5;
}

/* d smooth_l1 / dx, as PyTorch: x for |x| <= 1, else its sign */
static double smooth_l1_grad(double x) { return x > 1.0 ? 1.0 : x < -1.0 ? -1.0 : x; }

/* g (B, B) = x x^T for x (B, D), dot products in double. */
static void gram(float *g, const float *x, int B, int D) {
    for (int i = 0; i < B; i++)
        for (int j = 0; j <= i; j++) {
            float v = (float)dot_d(x + (size_t)i * D, x + (size_t)j * D, D);
            g[(size_t)i * B + j] = g[(size_t)j * B + i] = v;
        }
}

/* w (B, B) <- w + w^T: the gradient of a function of x x^T or of pairwise distances, when each
 * entry (a, b) was differentiated as a separate variable. */
static void symmetrize(float *w, int B) {
    for (int a = 0; a < B; a++)
        for (int b = 0; b <= a; b++) {
            float v = w[(size_t)a * B + b] + w[(size_t)b * B + a];
            w[(size_t)a * B + b] = w[(size_t)b * B + a] = v;
        }
}

/* ds[a, :] += k * sum_b w[a, b] * (diff ? x[a, :] - x[b, :] : x[b, :]) for x, ds (B, D), w (B, B).
 * KD_BLK columns at a time in double accumulators, reading rows of x contiguously. */
static void add_pair_grad(float *ds, const float *w, const float *x, int B, int D, double k, int diff) {
    for (int a = 0; a < B; a++) {
        const float *xa = x + (size_t)a * D, *wa = w + (size_t)a * B;
        float *da = ds + (size_t)a * D;
        for (int d0 = 0; d0 < D; d0 += KD_BLK) {
            int n = D - d0 < KD_BLK ? D - d0 : KD_BLK;
            double acc[KD_BLK] = {0};
            for (int b = 0; b < B; b++) {
                double wb = wa[b];
                if (wb == 0.0) continue;
                const float *xb = x + (size_t)b * D + d0;
                if (diff)
                    for (int e = 0; e < n; e++) acc[e] += wb * ((double)xa[d0 + e] - xb[e]);
                else
                    for (int e = 0; e < n; e++) acc[e] += wb * xb[e];
            }
            for (int e = 0; e < n; e++) da[d0 + e] += (float)(k * acc[e]);
        }
    }
}

/* ---- FitNets: MSE ---- */

float kd_mse_loss(float *ds, const float *s, const float *t, size_t n, float scale) {
    if (n == 0) return 0.f;
    double sum = 0.0, k = 2.0 * scale / (double)n;
    for (size_t i = 0; i < n; i++) {
        double d = (double)s[i] - t[i];
        sum += d * d;
        if (ds) ds[i] += (float)(k * d);
    }
    return (float)(sum / (double)n);
}

/* ---- normalised-difference core of attention transfer and similarity-preserving KD ---- */

/* With a = u / max(|u|, eps) and b = v / max(|v|, eps) (F.normalize), x = a - b: returns
 * loss + sum_j x_j^2, added term by term in j order (so a caller summing over rows keeps one running
 * sum). With g, also writes the gradient of k/2 * that sum w.r.t. u, times mul / div:
 * g[j] = k (x_j - a_j <a, x>) / max(|u|, eps) * mul / div (the Jacobian of u / |u| when |u| > eps,
 * else 1 / eps); g may be u or v (each element is read before it is overwritten). */
static double normalized_dist(double loss, float *g, const float *u, const float *v, int n, double k, double mul,
                              double div) {
    double nu = sqrt(dot_d(u, u, n)), nv = sqrt(dot_d(v, v, n));
    double iu = 1.0 / fmax(nu, KD_NORM_EPS), iv = 1.0 / fmax(nv, KD_NORM_EPS);
    double adot = 0.0; /* <a, a - b> */
    for (int j = 0; j < n; j++) {
        double a = u[j] * iu, x = a - v[j] * iv;
        loss += x * x;
        adot += a * x;
    }
    if (!g) return loss;
    if (!(nu > KD_NORM_EPS)) adot = 0.0;
    for (int j = 0; j < n; j++) {
        double a = u[j] * iu, x = a - v[j] * iv;
        g[j] = (float)(k * (x - a * adot) * iu * mul / div);
    }
    return loss;
}

/* ---- attention transfer ---- */

size_t kd_at_scratch(int B, int HW) { return B > 0 && HW > 0 ? 2 * (size_t)HW : 0; }

/* q[j] = (1/C) sum_c x[c, j]^2 for x (C, HW) */
static void channel_mean_sq(float *q, const float *x, int C, int HW) {
    for (int j0 = 0; j0 < HW; j0 += KD_BLK) {
        int n = HW - j0 < KD_BLK ? HW - j0 : KD_BLK;
        double acc[KD_BLK] = {0};
        for (int c = 0; c < C; c++) {
            const float *xr = x + (size_t)c * HW + j0;
            for (int e = 0; e < n; e++) acc[e] += (double)xr[e] * xr[e];
        }
        for (int e = 0; e < n; e++) q[j0 + e] = (float)(acc[e] / C);
    }
}

/* With a = q / max(|q|, eps) and the upstream gradient g = dL/da:
 * dL/dq = (g - a <a, g>) / |q| when |q| > eps (the Jacobian of q/|q|), else g / eps. */
float kd_at_loss(float *ds, const float *s, const float *t, int B, int Cs, int Ct, int HW, float scale,
                 float *scratch) {
    if (B <= 0 || Cs <= 0 || Ct <= 0 || HW <= 0) return 0.f;
    float *qs = scratch, *qt = scratch + HW; /* (HW) each, one sample at a time */
    double loss = 0.0, k = 2.0 * scale / ((double)B * HW);
    for (int b = 0; b < B; b++) {
        const float *xs = s + (size_t)b * Cs * HW, *xt = t + (size_t)b * Ct * HW;
        channel_mean_sq(qs, xs, Cs, HW);
        channel_mean_sq(qt, xt, Ct, HW);
        /* dL/dx[c, j] = dL/dq[j] * 2 x[c, j] / Cs; qt becomes dL/dq * 2 / Cs */
        loss = normalized_dist(loss, ds ? qt : NULL, qs, qt, HW, k, 2.0, Cs);
        if (!ds) continue;
        float *d = ds + (size_t)b * Cs * HW;
        for (int c = 0; c < Cs; c++)
            for (int j = 0; j < HW; j++) d[(size_t)c * HW + j] += qt[j] * xs[(size_t)c * HW + j];
    }
    return (float)(loss / ((double)B * HW));
}

/* ---- DistilBERT: cosine embedding loss with target +1 ---- */

/* cos = p / sqrt(ms mt), ms = |s|^2 + e, mt = |t|^2 + e:  dcos/ds = t / sqrt(ms mt) - cos s / ms */
float kd_cosine_loss(float *ds, const float *s, const float *t, int B, int D, float scale) {
    if (B <= 0) return 0.f;
    const double e = 1e-12; /* EPSILON in ATen's cosine_embedding_loss, added to the squared norms */
    double loss = 0.0, k = -(double)scale / B;
    for (int b = 0; b < B; b++) {
        const float *x = s + (size_t)b * D, *y = t + (size_t)b * D;
        double p = dot_d(x, y, D), ms = dot_d(x, x, D) + e, mt = dot_d(y, y, D) + e;
        double den = sqrt(ms * mt), cos = p / den;
        loss += 1.0 - cos;
        if (!ds) continue;
        float *d = ds + (size_t)b * D;
        double kt = k / den, ks = -k * cos / ms;
        for (int i = 0; i < D; i++) d[i] += (float)(kt * y[i] + ks * x[i]);
    }
    return (float)(loss / B);
}

/* ---- similarity-preserving KD ---- */

size_t kd_sp_scratch(int B) { return B > 0 ? 2 * (size_t)B * B : 0; }

/* A = row-normalised G: dL/dG_i = (R_i - A_i <A_i, R_i>) / n_i with R = dL/dA = 2 (A_s - A_t) / B^2,
 * then G = f f^T gives dL/df = (P + P^T) f. */
float kd_sp_loss(float *ds, const float *s, const float *t, int B, int Ds, int Dt, float scale, float *scratch) {
    if (B <= 0) return 0.f;
    float *gs = scratch, *gt = scratch + (size_t)B * B; /* (B, B) each */
    gram(gs, s, B, Ds);
    gram(gt, t, B, Dt);
    double loss = 0.0, k = 2.0 * scale / ((double)B * B);
    for (int i = 0; i < B; i++) {
        float *rs = gs + (size_t)i * B;
        const float *rt = gt + (size_t)i * B;
        /* row i of gs becomes row i of P (only row i reads it) */
        loss = normalized_dist(loss, ds ? rs : NULL, rs, rt, B, k, 1.0, 1.0);
    }
    if (ds) {
        symmetrize(gs, B);
        add_pair_grad(ds, gs, s, B, Ds, 1.0, 0);
    }
    return (float)(loss / ((double)B * B));
}

/* ---- relational KD ---- */

size_t kd_rkd_scratch(int B, int Ds, int Dt) { return B > 0 ? 7 * (size_t)B * B : 0; }

/* Squared distances q (B, B) of the rows of x (B, D) as a float pair q = hi + lo (exact to ~2^-48,
 * so the law of cosines below does not cancel), and inverse distances for the angles (0 on the
 * diagonal and for pairs closer than KD_NORM_EPS, whose normalised difference is taken as 0). */
static void rkd_pairs(float *hi, float *lo, float *inv, const float *x, int B, int D) {
    for (int i = 0; i < B; i++) {
        size_t ii = (size_t)i * B + i;
        hi[ii] = lo[ii] = inv[ii] = 0.f;
        for (int j = i + 1; j < B; j++) {
            double q = sqdist_d(x + (size_t)i * D, x + (size_t)j * D, D);
            float h = (float)q, l = (float)(q - h), v = q >= KD_NORM_EPS * KD_NORM_EPS ? (float)(1.0 / sqrt(q)) : 0.f;
            size_t ij = (size_t)i * B + j, ji = (size_t)j * B + i;
            hi[ij] = hi[ji] = h;
            lo[ij] = lo[ji] = l;
            inv[ij] = inv[ji] = v;
        }
    }
}

/* Distance part: returns sum_ij smooth_l1(d_s/mu_s - d_t/mu_t) and adds k * dL/dq_s to gq, where
 * d = sqrt(max(q, 1e-12)) off the diagonal and mu = mean of the B(B-1) off-diagonal d. Through the
 * student's mean: dL/dd_ab = g_ab / mu - sum_ij g_ij d_ij / (mu^2 B(B-1)); then dd/dq = 1 / 2d
 * where the clamp passes (q >= 1e-12, as torch's clamp backward). */
static double rkd_distance(float *gq, const float *sh, const float *sl, const float *th, const float *tl, int B,
                           double k) {
    const double eps = 1e-12; /* the authors' pdist clamps the squared distance here */
    double M = (double)B * (B - 1), sum_s = 0.0, sum_t = 0.0;
    for (size_t i = 0; i < (size_t)B * B; i++) {
        if (i % ((size_t)B + 1) == 0) continue; /* diagonal */
        sum_s += sqrt(fmax((double)sh[i] + sl[i], eps));
        sum_t += sqrt(fmax((double)th[i] + tl[i], eps));
    }
    double mu_s = sum_s / M, mu_t = sum_t / M, loss = 0.0, gd = 0.0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < (size_t)B * B; i++) {
            if (i % ((size_t)B + 1) == 0) continue;
            double q = (double)sh[i] + sl[i], d = sqrt(fmax(q, eps));
            double x = d / mu_s - sqrt(fmax((double)th[i] + tl[i], eps)) / mu_t, g = smooth_l1_grad(x);
            if (pass == 0) {
                loss += smooth_l1(x);
                gd += g * d;
            } else if (q >= eps) {
                gq[i] += (float)(k * (g / mu_s - gd / (mu_s * mu_s * M)) / (2.0 * d));
            }
        }
    }
    return loss;
}

/* Angle part: returns sum over ordered triplets of smooth_l1(angle_s - angle_t) and adds k * dL/dq_s
 * to gq. angle_ijk = P v_ij v_ik with P = (q_ij + q_ik - q_jk) / 2 (law of cosines) and v = 1/d, so
 *   da/dq_jk = -v_ij v_ik / 2,   da/dq_ij = v_ij v_ik / 2 - a v_ij^2 / 2   (and alike for q_ik).
 * angle_ijk = angle_ikj, so only j < k is visited and counted twice; j == k gives <e_ij, e_ij> = 1
 * (0 for a coincident pair) with no gradient, a constant; i == j or i == k gives v = 0, angle 0 for
 * both tensors, no term. */
static double rkd_angle(float *gq, const float *sh, const float *sl, const float *sv, const float *th,
                        const float *tl, const float *tv, int B, double k) {
    double loss = 0.0, diag = 0.0;
    for (int i = 0; i < B; i++) {
        const size_t ri = (size_t)i * B;
        const float *shi = sh + ri, *sli = sl + ri, *svi = sv + ri, *thi = th + ri, *tli = tl + ri, *tvi = tv + ri;
        float *gi = gq + ri;
        for (int j = 0; j < B; j++) {
            if (j == i || (svi[j] == 0.f && tvi[j] == 0.f)) continue;
            const size_t rj = (size_t)j * B;
            const float *shj = sh + rj, *slj = sl + rj, *thj = th + rj, *tlj = tl + rj;
            float *gj = gq + rj;
            const double sqij = (double)shi[j] + sli[j], tqij = (double)thi[j] + tli[j];
            const double svij = svi[j], tvij = tvi[j];
            double lsum = 0.0, gij = 0.0;
            diag += smooth_l1((double)(svij != 0.0) - (tvij != 0.0));
#pragma omp simd reduction(+ : lsum, gij)
            for (int k2 = j + 1; k2 < B; k2++) {
                double ws = svij * svi[k2], wt = tvij * tvi[k2];
                /* hi and lo parts summed apart: the cancellation leaves ~2^-48 of the largest q */
                double ps = (sqij + shi[k2] - shj[k2]) + ((double)sli[k2] - slj[k2]);
                double pt = (tqij + thi[k2] - thj[k2]) + ((double)tli[k2] - tlj[k2]);
                double a = 0.5 * ps * ws, x = a - 0.5 * pt * wt;
                lsum += smooth_l1(x);
                double g = k * smooth_l1_grad(x), gw = 0.5 * g * ws;
                gj[k2] -= (float)gw;                                         /* q_jk */
                gi[k2] += (float)(gw - 0.5 * g * a * (double)svi[k2] * svi[k2]); /* q_ik */
                gij += gw - 0.5 * g * a * svij * svij;                       /* q_ij */
            }
            loss += lsum;
            gi[j] += (float)gij;
        }
    }
    return 2.0 * loss + diag;
}

float kd_rkd_loss(float *ds, const float *s, const float *t, int B, int Ds, int Dt, float w_dist, float w_angle,
                  float scale, float *scratch) {
    if (B < 2) return 0.f;
    size_t BB = (size_t)B * B;
    float *sh = scratch, *sl = sh + BB, *sv = sl + BB; /* student: q hi, q lo, 1/d   (B, B) each */
    float *th = sv + BB, *tl = th + BB, *tv = tl + BB; /* teacher */
    float *gq = tv + BB;                              /* scale * dLoss/dq_student */
    rkd_pairs(sh, sl, sv, s, B, Ds);
    rkd_pairs(th, tl, tv, t, B, Dt);
    for (size_t i = 0; i < BB; i++) gq[i] = 0.f;
    double loss = 0.0, b2 = (double)B * B, b3 = b2 * B;
    if (w_dist != 0.f) loss += w_dist * rkd_distance(gq, sh, sl, th, tl, B, (double)w_dist * scale / b2) / b2;
    if (w_angle != 0.f) loss += w_angle * rkd_angle(gq, sh, sl, sv, th, tl, tv, B, 2.0 * w_angle * scale / b3) / b3;
    if (ds) {
        /* q_ab = |x_a - x_b|^2: dq_ab/dx_a = 2 (x_a - x_b) */
        symmetrize(gq, B);
        add_pair_grad(ds, gq, s, B, Ds, 2.0, 1);
    }
    return (float)loss;
}

/* ---- logit standardisation ---- */

void kd_zscore_forward(float *z, float *inv_std, const float *x, int B, int C) {
    if (C <= 0) return;
    for (int b = 0; b < B; b++) {
        const float *r = x + (size_t)b * C;
        float *o = z + (size_t)b * C;
        double m = 0.0, v = 0.0;
        for (int c = 0; c < C; c++) m += r[c];
        m /= C;
        for (int c = 0; c < C; c++) v += ((double)r[c] - m) * ((double)r[c] - m);
        double is = 1.0 / sqrt(v / C + 1e-7);
        inv_std[b] = (float)is;
        for (int c = 0; c < C; c++) o[c] = (float)(((double)r[c] - m) * is);
    }
}

/* z = (x - m) r, r = (var + eps)^(-1/2):  dz_i/dx_j = r (delta_ij - 1/C) - z_i z_j r / C, hence
 * dx = r (dz - mean(dz) - z mean(dz z)), exact with eps too. */
void kd_zscore_backward(float *dx, const float *dz, const float *z, const float *inv_std, int B, int C) {
    if (C <= 0) return;
    for (int b = 0; b < B; b++) {
        const float *g = dz + (size_t)b * C, *zr = z + (size_t)b * C;
        float *o = dx + (size_t)b * C;
        double mg = 0.0, mgz = 0.0;
        for (int c = 0; c < C; c++) {
            mg += g[c];
            mgz += (double)g[c] * zr[c];
        }
        mg /= C;
        mgz /= C;
        double r = inv_std[b];
        for (int c = 0; c < C; c++) o[c] += (float)(r * (g[c] - mg - zr[c] * mgz));
    }
}
