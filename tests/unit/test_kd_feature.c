/* Feature- and relation-based distillation losses and logit standardisation (kd_losses.h): the
 * gradient of every function against finite differences, loss and gradient 0 when the student
 * equals the teacher, PyTorch golden values (tests/golden/gen_kd_feature.py), gradients that scale
 * with `scale` and accumulate, finite values on degenerate inputs, RKD against a direct float64
 * evaluation of the authors' formulas on badly conditioned inputs, and the time of RKD at B = 128,
 * D = 256 (printed, not checked). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "distill/kd_losses.h"
#include "distill/rng.h"
#include "test.h"

typedef enum { L_MSE, L_AT, L_COSINE, L_SP, L_RKD } loss_kind;

/* One call shape. MSE: n = B * ds. AT: s (B, ds, hw), t (B, dt, hw). COSINE: (B, ds) both.
 * SP, RKD: s (B, ds), t (B, dt); w1, w2 = RKD's distance and angle weights. */
typedef struct {
    const char *name;
    loss_kind kind;
    int B, ds, dt, hw;
    float w1, w2;
} lcase;

static size_t n_s(const lcase *c) { return (size_t)c->B * c->ds * (c->kind == L_AT ? c->hw : 1); }
static size_t n_t(const lcase *c) {
    switch (c->kind) {
    case L_MSE:
    case L_COSINE: return (size_t)c->B * c->ds;
    case L_AT: return (size_t)c->B * c->dt * c->hw;
    default: return (size_t)c->B * c->dt;
    }
}
static size_t n_scratch(const lcase *c) {
    switch (c->kind) {
    case L_AT: return kd_at_scratch(c->B, c->hw);
    case L_SP: return kd_sp_scratch(c->B);
    case L_RKD: return kd_rkd_scratch(c->B, c->ds, c->dt);
    default: return 0;
    }
}

/* Runs the loss with a freshly malloc'd scratch of exactly the documented size (so ASan catches
 * an overrun), filled with NaN (so nothing may depend on its contents on entry). */
static float eval(const lcase *c, float *ds, const float *s, const float *t, float scale) {
    size_t ns = n_scratch(c);
    float *scr = ns ? malloc(sizeof(float) * ns) : NULL;
    for (size_t i = 0; i < ns; i++) scr[i] = NAN;
    float l = 0.f;
    switch (c->kind) {
    case L_MSE: l = kd_mse_loss(ds, s, t, n_s(c), scale); break;
    case L_AT: l = kd_at_loss(ds, s, t, c->B, c->ds, c->dt, c->hw, scale, scr); break;
    case L_COSINE: l = kd_cosine_loss(ds, s, t, c->B, c->ds, scale); break;
    case L_SP: l = kd_sp_loss(ds, s, t, c->B, c->ds, c->dt, scale, scr); break;
    case L_RKD: l = kd_rkd_loss(ds, s, t, c->B, c->ds, c->dt, c->w1, c->w2, scale, scr); break;
    }
    free(scr);
    return l;
}

/* N(0, 1) * scale rounded to a multiple of 2^-14, so that x +- h and x +- 2h with h = 2^-7 are exact
 * in float and the finite-difference stencil is exactly equispaced. */
static void fill(float *x, size_t n, kd_rng *r, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = roundf(kd_rng_normal(r) * scale * 16384.f) / 16384.f;
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

/* Fourth-order central differences, (f(-2h) - 8 f(-h) + 8 f(h) - f(2h)) / 12h with h = 2^-7, the
 * differences taken in double: truncation is O(h^4) and negligible; what limits them is the float
 * rounding of the returned loss, which the stencil amplifies by up to 18/12h. Tolerance per entry:
 *   |analytic - numeric| <= FD_TOL * (max |gradient| + |numeric|) + FD_ULPS * 2^-24 * |L| * 18/12h. */
#define FD_TOL 1e-4
#define FD_ULPS 4.0
#define FD_H (1.0f / 128.f)
typedef float (*fd_fn)(const void *ctx, float *grad, const float *x); /* grad may be NULL */

static void fd_check(const char *name, fd_fn f, const void *ctx, float *x, size_t n) {
    float *g = calloc(n, sizeof(float));
    double l0 = f(ctx, g, x), gmax = max_abs(g, n), worst = 0, worst_abs = 0;
    for (size_t i = 0; i < n; i++) {
        float save = x[i];
        double v[4], lmax = fabs(l0);
        const float off[4] = {-2 * FD_H, -FD_H, FD_H, 2 * FD_H};
        for (int k = 0; k < 4; k++) {
            x[i] = save + off[k];
            v[k] = f(ctx, NULL, x);
            lmax = fmax(lmax, fabs(v[k]));
        }
        x[i] = save;
        double num = (v[0] - 8 * v[1] + 8 * v[2] - v[3]) / (12.0 * FD_H), err = fabs(num - g[i]);
        double tol = FD_TOL * (gmax + fabs(num)) + FD_ULPS * ldexp(lmax, -24) * 18.0 / (12.0 * FD_H);
        worst_abs = fmax(worst_abs, err);
        worst = fmax(worst, err / tol);
        if (err > tol) fprintf(stderr, "  %s d[%zu]: analytic %.8g numeric %.8g\n", name, i, g[i], num);
    }
    CHECK_MSG(worst <= 1.0, "%s: finite differences off by %.3g of the tolerance", name, worst);
    printf("fd     %-14s max |analytic - numeric| %.1e = %.1e of max |grad| %.3g (%.2f of tolerance)\n", name,
           worst_abs, gmax > 0 ? worst_abs / gmax : 0.0, gmax, worst);
    free(g);
}

typedef struct {
    const lcase *c;
    const float *t;
} loss_ctx;

static float fd_loss(const void *ctx, float *grad, const float *x) {
    const loss_ctx *l = ctx;
    return eval(l->c, grad, x, l->t, 1.f);
}

/* FD, zero at s == t, scale linearity and accumulation, for one shape. */
static void test_case(const lcase *c, uint64_t seed) {
    kd_rng r;
    kd_rng_seed(&r, seed, 0);
    size_t ns = n_s(c), nt = n_t(c);
    float *s = malloc(sizeof(float) * ns), *t = malloc(sizeof(float) * nt);
    float *g1 = calloc(ns, sizeof(float)), *g3 = malloc(sizeof(float) * ns);
    fill(s, ns, &r, 1.f);
    fill(t, nt, &r, 1.5f);

    loss_ctx ctx = {c, t};
    fd_check(c->name, fd_loss, &ctx, s, ns);

    /* scale 1 into zeros, then scale 2 on top: 3x, and the loss never depends on scale or ds */
    float l1 = eval(c, g1, s, t, 1.f);
    memcpy(g3, g1, sizeof(float) * ns);
    float l2 = eval(c, g3, s, t, 2.f), l0 = eval(c, NULL, s, t, 1.f);
    double gmax = max_abs(g1, ns), worst = 0;
    for (size_t i = 0; i < ns; i++) worst = fmax(worst, fabs(g3[i] - 3.0 * g1[i]));
    CHECK_MSG(l1 == l2 && l1 == l0, "%s: loss %g / %g / %g with scale 1, scale 2, no gradient", c->name, l1, l2, l0);
    CHECK_MSG(gmax > 0 && worst <= 1e-6 * gmax, "%s: g(1) + g(2) - 3 g(1) = %g (max |g| %g)", c->name, worst, gmax);

    /* the student equals the teacher: loss 0, gradient 0 */
    if (nt == ns) {
        memset(g1, 0, sizeof(float) * ns);
        float l = eval(c, g1, s, s, 1.f);
        double gm = max_abs(g1, ns);
        CHECK_MSG(fabsf(l) <= 1e-7f && gm <= 1e-7, "%s: s == t gives loss %g, max |grad| %g", c->name, l, gm);
    }
    free(s); free(t); free(g1); free(g3);
}

static void test_cases(void) {
    const lcase cases[] = {
        {"mse", L_MSE, 4, 7, 7, 1, 0, 0},
        {"at", L_AT, 4, 5, 5, 9, 0, 0},
        {"at_cs!=ct", L_AT, 5, 3, 6, 9, 0, 0},
        {"cosine", L_COSINE, 5, 9, 9, 1, 0, 0},
        {"sp", L_SP, 6, 7, 7, 1, 0, 0},
        {"sp_ds!=dt", L_SP, 5, 6, 9, 1, 0, 0},
        {"rkd", L_RKD, 5, 6, 6, 1, 1.f, 2.f},
        {"rkd_ds!=dt", L_RKD, 6, 5, 8, 1, 1.f, 2.f},
        {"rkd_dist", L_RKD, 6, 5, 5, 1, 1.f, 0.f},
        {"rkd_angle", L_RKD, 6, 5, 5, 1, 0.f, 1.f},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) test_case(&cases[k], 100 + k);
}

/* Degenerate inputs give finite values: an all-zero sample (AT, cosine, SP: norms below eps), two
 * equal rows (RKD: a zero distance and no direction), a constant logit row (z-score). */
static void test_degenerate(void) {
    enum { B = 4, D = 6 };
    kd_rng r;
    kd_rng_seed(&r, 3, 0);
    float s[B * D], t[B * D], g[B * D] = {0}, z[B * D], inv[B];
    fill(s, B * D, &r, 1.f);
    fill(t, B * D, &r, 1.f);
    for (int k = 0; k < D; k++) s[k] = 0.f, s[D + k] = s[2 * D + k], t[3 * D + k] = 0.f;
    const lcase cases[] = {{"at", L_AT, B, 2, 2, 3, 0, 0}, {"cosine", L_COSINE, B, D, D, 1, 0, 0},
                           {"sp", L_SP, B, D, D, 1, 0, 0}, {"rkd", L_RKD, B, D, D, 1, 1.f, 2.f}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memset(g, 0, sizeof g);
        float l = eval(&cases[k], g, s, t, 1.f);
        int finite = isfinite(l);
        for (int i = 0; i < B * D; i++) finite &= isfinite(g[i]);
        CHECK_MSG(finite, "%s: degenerate input gives loss %g or a non-finite gradient", cases[k].name, l);
    }
    kd_zscore_forward(z, inv, s, B, D); /* row 0 is constant */
    memset(g, 0, sizeof g);
    kd_zscore_backward(g, t, z, inv, B, D);
    int finite = 1;
    for (int i = 0; i < B * D; i++) finite &= isfinite(z[i]) && isfinite(g[i]);
    CHECK_MSG(finite && z[0] == 0.f, "zscore: a constant row gives z %g", z[0]);
}

/* ---- logit standardisation ---- */

typedef struct {
    int B, C;
    const float *w; /* L = sum(w * z) */
} zs_ctx;

static float fd_zscore(const void *ctx, float *grad, const float *x) {
    const zs_ctx *c = ctx;
    size_t n = (size_t)c->B * c->C;
    float *z = malloc(sizeof(float) * n), *inv = malloc(sizeof(float) * (size_t)c->B);
    kd_zscore_forward(z, inv, x, c->B, c->C);
    double l = 0;
    for (size_t i = 0; i < n; i++) l += (double)c->w[i] * z[i];
    if (grad) kd_zscore_backward(grad, c->w, z, inv, c->B, c->C);
    free(z); free(inv);
    return (float)l;
}

static void test_zscore(void) {
    enum { B = 4, C = 7 };
    kd_rng r;
    kd_rng_seed(&r, 77, 0);
    float x[B * C], w[B * C], z[B * C], inv[B];
    fill(x, B * C, &r, 2.f);
    fill(w, B * C, &r, 1.f);
    for (int c = 0; c < C; c++) x[3 * C + c] = x[3 * C + c] * 0.0625f + 3.f; /* a narrow row */
    zs_ctx ctx = {B, C, w};
    fd_check("zscore", fd_zscore, &ctx, x, B * C);
    /* rows come out with mean 0 and population variance var / (var + eps) */
    kd_zscore_forward(z, inv, x, B, C);
    double worst = 0;
    for (int b = 0; b < B; b++) {
        double m = 0, v = 0, mx = 0;
        for (int c = 0; c < C; c++) m += z[b * C + c], mx += x[b * C + c];
        m /= C, mx /= C;
        for (int c = 0; c < C; c++) v += (z[b * C + c] - m) * (z[b * C + c] - m);
        double vx = (double)inv[b] * inv[b];
        vx = 1.0 / vx - 1e-7; /* var of x */
        worst = fmax(worst, fabs(m) + fabs(v / C - vx / (vx + 1e-7)));
    }
    CHECK_MSG(worst < 1e-6, "zscore rows: mean/variance off by %g", worst);
    /* backward accumulates */
    float d1[B * C] = {0}, d2[B * C];
    kd_zscore_backward(d1, w, z, inv, B, C);
    memcpy(d2, d1, sizeof d1);
    kd_zscore_backward(d2, w, z, inv, B, C);
    worst = 0;
    for (int i = 0; i < B * C; i++) worst = fmax(worst, fabs(d2[i] - 2.0 * d1[i]));
    CHECK_MSG(worst <= 1e-6 * max_abs(d1, B * C), "zscore backward does not accumulate: %g", worst);
}

/* ---- PyTorch golden values ---- */

static int read_doubles(FILE *f, double *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (fscanf(f, "%lf", &v[i]) != 1) return 0;
    return 1;
}

/* Tolerances against PyTorch's float64 values on the same float32 inputs: loss relative, gradient
 * per entry relative to the largest entry. */
#define GOLD_LOSS_TOL 2e-6
#define GOLD_GRAD_TOL 2e-6

static void test_golden(const char *name) {
    char path[512], kind[16];
    snprintf(path, sizeof path, "%s/tests/golden/kd_feature/%s.txt", KD_SOURCE_DIR, name);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "missing fixture %s", path);
    if (!f) return;
    double p[5] = {0};
    int ok = fscanf(f, "%15s", kind) == 1;
    lcase c = {name, L_MSE, 0, 0, 0, 1, 0, 0};
    size_t n_out = 1;
    if (!strcmp(kind, "mse")) {
        ok &= read_doubles(f, p, 1);
        c.B = 1, c.ds = c.dt = (int)p[0];
    } else if (!strcmp(kind, "at")) {
        ok &= read_doubles(f, p, 4);
        c.kind = L_AT, c.B = (int)p[0], c.ds = (int)p[1], c.dt = (int)p[2], c.hw = (int)p[3];
    } else if (!strcmp(kind, "cosine")) {
        ok &= read_doubles(f, p, 2);
        c.kind = L_COSINE, c.B = (int)p[0], c.ds = c.dt = (int)p[1];
    } else if (!strcmp(kind, "sp")) {
        ok &= read_doubles(f, p, 3);
        c.kind = L_SP, c.B = (int)p[0], c.ds = (int)p[1], c.dt = (int)p[2];
    } else if (!strcmp(kind, "rkd")) {
        ok &= read_doubles(f, p, 5);
        c.kind = L_RKD, c.B = (int)p[0], c.ds = (int)p[1], c.dt = (int)p[2], c.w1 = (float)p[3], c.w2 = (float)p[4];
    } else if (!strcmp(kind, "zscore")) {
        ok &= read_doubles(f, p, 2);
        c.B = (int)p[0], c.ds = c.dt = (int)p[1]; /* x and dz (B, C) like MSE's shapes */
        n_out = (size_t)c.B * c.ds;
    } else {
        ok = 0;
    }
    ok = ok && c.B > 0 && c.B <= 64 && c.ds > 0 && c.ds <= 4096 && c.dt > 0 && c.dt <= 4096 && c.hw > 0 && c.hw <= 4096;
    CHECK_MSG(ok, "%s: bad header", name);
    if (!ok) {
        fclose(f);
        return;
    }
    size_t ns = n_s(&c), nt = n_t(&c);
    double *sd = malloc(sizeof(double) * ns), *td = malloc(sizeof(double) * nt);
    double *out_ref = malloc(sizeof(double) * n_out), *g_ref = malloc(sizeof(double) * ns);
    float *s = malloc(sizeof(float) * ns), *t = malloc(sizeof(float) * nt), *g = calloc(ns, sizeof(float));
    float *out = malloc(sizeof(float) * n_out);
    ok = read_doubles(f, sd, ns) && read_doubles(f, td, nt) && read_doubles(f, out_ref, n_out) &&
         read_doubles(f, g_ref, ns);
    fclose(f);
    CHECK_MSG(ok, "%s: truncated fixture", name);
    for (size_t i = 0; ok && i < ns; i++) s[i] = (float)sd[i];
    for (size_t i = 0; ok && i < nt; i++) t[i] = (float)td[i];
    if (ok) {
        if (!strcmp(kind, "zscore")) {
            float *inv = malloc(sizeof(float) * (size_t)c.B);
            kd_zscore_forward(out, inv, s, c.B, c.ds);
            kd_zscore_backward(g, t, out, inv, c.B, c.ds);
            free(inv);
        } else {
            out[0] = eval(&c, g, s, t, 1.f);
        }
        double omax = 0, oerr = 0, gmax = 0, gerr = 0;
        for (size_t i = 0; i < n_out; i++)
            omax = fmax(omax, fabs(out_ref[i])), oerr = fmax(oerr, fabs(out[i] - out_ref[i]));
        for (size_t i = 0; i < ns; i++) gmax = fmax(gmax, fabs(g_ref[i])), gerr = fmax(gerr, fabs(g[i] - g_ref[i]));
        CHECK_MSG(oerr <= GOLD_LOSS_TOL * omax, "%s: output off by %.3g relative", name, oerr / omax);
        CHECK_MSG(gerr <= GOLD_GRAD_TOL * gmax, "%s: gradient off by %.3g of its largest entry", name, gerr / gmax);
        if (n_out == 1)
            printf("golden %-14s loss %.8g (PyTorch %.8g): loss rel err %.1e, grad err %.1e of max\n", name, out[0],
                   out_ref[0], oerr / omax, gerr / gmax);
        else
            printf("golden %-14s z rel err %.1e of max, dx err %.1e of max\n", name, oerr / omax, gerr / gmax);
    }
    free(sd); free(td); free(out_ref); free(g_ref); free(s); free(t); free(g); free(out);
}

/* ---- RKD against a direct float64 evaluation of the authors' formulas (normalised difference
 * vectors, B^3 dot products), on points that make the law of cosines work hard: tight clusters
 * (distances 1e-3) far from the origin (100) next to distances of 10. ---- */

static double sl1(double x) { return fabs(x) < 1 ? 0.5 * x * x : fabs(x) - 0.5; }

static void pdist_ref(double *d, const double *x, int B, int D) {
    double sum = 0;
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) {
            double q = 0;
            for (int k = 0; k < D; k++) q += (x[i * D + k] - x[j * D + k]) * (x[i * D + k] - x[j * D + k]);
            d[i * B + j] = i == j ? 0 : sqrt(fmax(q, 1e-12));
            sum += d[i * B + j];
        }
    for (int i = 0; i < B * B; i++) d[i] /= sum / (B * (B - 1.0));
}

static void angles_ref(double *a, const double *x, int B, int D) {
    double *e = malloc(sizeof(double) * (size_t)B * B * D);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) {
            double *v = e + ((size_t)i * B + j) * D, n = 0;
            for (int k = 0; k < D; k++) v[k] = x[j * D + k] - x[i * D + k], n += v[k] * v[k];
            for (int k = 0; k < D; k++) v[k] /= fmax(sqrt(n), 1e-12);
        }
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++)
            for (int k = 0; k < B; k++) {
                double p = 0;
                for (int m = 0; m < D; m++) p += e[((size_t)i * B + j) * D + m] * e[((size_t)i * B + k) * D + m];
                a[((size_t)i * B + j) * B + k] = p;
            }
    free(e);
}

static double rkd_ref(const double *s, const double *t, int B, int D, double wd, double wa) {
    double *ds = malloc(sizeof(double) * B * B), *dt = malloc(sizeof(double) * B * B);
    double *as = malloc(sizeof(double) * B * B * B), *at = malloc(sizeof(double) * B * B * B);
    pdist_ref(ds, s, B, D), pdist_ref(dt, t, B, D), angles_ref(as, s, B, D), angles_ref(at, t, B, D);
    double ld = 0, la = 0;
    for (int i = 0; i < B * B; i++) ld += sl1(ds[i] - dt[i]);
    for (int i = 0; i < B * B * B; i++) la += sl1(as[i] - at[i]);
    free(ds); free(dt); free(as); free(at);
    return wd * ld / (B * B) + wa * la / ((double)B * B * B);
}

static void test_rkd_conditioning(void) {
    enum { B = 8, D = 6 };
    kd_rng r;
    kd_rng_seed(&r, 5, 0);
    float s[B * D], t[B * D], g[B * D] = {0};
    double sd[B * D], td[B * D], gref[B * D];
    for (int i = 0; i < B; i++)
        for (int k = 0; k < D; k++) {
            float centre = 100.f + (i < 4 ? 0.f : 10.f) * (k == 0);
            s[i * D + k] = centre + 1e-3f * kd_rng_normal(&r);
            t[i * D + k] = kd_rng_normal(&r);
        }
    for (int i = 0; i < B * D; i++) sd[i] = s[i], td[i] = t[i];
    double ref = rkd_ref(sd, td, B, D, 1, 2);
    float scr[7 * B * B];
    CHECK(kd_rkd_scratch(B, D, D) == 7 * B * B);
    float l = kd_rkd_loss(g, s, t, B, D, D, 1.f, 2.f, 1.f, scr);
    /* gradient: central differences of the float64 reference, h small against the 1e-3 clusters */
    double gmax = 0, err = 0;
    for (int i = 0; i < B * D; i++) {
        double save = sd[i], h = 1e-7;
        sd[i] = save + h;
        double lp = rkd_ref(sd, td, B, D, 1, 2);
        sd[i] = save - h;
        double lm = rkd_ref(sd, td, B, D, 1, 2);
        sd[i] = save;
        gref[i] = (lp - lm) / (2 * h);
        gmax = fmax(gmax, fabs(gref[i]));
    }
    for (int i = 0; i < B * D; i++) err = fmax(err, fabs(g[i] - gref[i]));
    CHECK_MSG(fabs(l - ref) <= 1e-6 * ref, "rkd conditioning: loss %.9g vs float64 reference %.9g", l, ref);
    CHECK_MSG(err <= 1e-4 * gmax, "rkd conditioning: gradient off by %.3g of max %.3g", err / gmax, gmax);
    printf("rkd    clustered at 100  loss %.8g (float64 ref %.8g, rel err %.1e), grad err %.1e of max %.3g\n", l,
           ref, fabs(l - ref) / ref, err / gmax, gmax);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static void time_rkd(void) {
    enum { B = 128, D = 256 };
    kd_rng r;
    kd_rng_seed(&r, 11, 0);
    float *s = malloc(sizeof(float) * B * D), *t = malloc(sizeof(float) * B * D), *g = calloc(B * D, sizeof(float));
    float *scr = malloc(sizeof(float) * kd_rkd_scratch(B, D, D));
    for (int i = 0; i < B * D; i++) s[i] = kd_rng_normal(&r), t[i] = kd_rng_normal(&r);
    double best = 1e30, best_nograd = 1e30;
    float l = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_ms();
        l = kd_rkd_loss(g, s, t, B, D, D, 1.f, 2.f, 1.f, scr);
        double t1 = now_ms();
        kd_rkd_loss(NULL, s, t, B, D, D, 1.f, 2.f, 1.f, scr);
        best = fmin(best, t1 - t0), best_nograd = fmin(best_nograd, now_ms() - t1);
    }
    CHECK(isfinite(l) && l > 0);
    printf("time   kd_rkd_loss B=%d D=%d: %.2f ms with gradient, %.2f ms loss only (best of 3, 1 thread)\n", B, D,
           best, best_nograd);
    free(s); free(t); free(g); free(scr);
}

int main(void) {
    test_cases();
    test_zscore();
    test_degenerate();
    const char *golden[] = {"mse", "at_same", "at_diff", "cosine", "cosine_tiny", "sp", "sp_square", "rkd",
                            "rkd_outlier", "rkd_dist_only", "zscore"};
    for (size_t k = 0; k < sizeof golden / sizeof golden[0]; k++) test_golden(golden[k]);
    test_rkd_conditioning();
    time_rkd();
    TEST_DONE();
}
