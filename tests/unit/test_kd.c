/* Distillation: the Hinton loss against PyTorch golden values (KL at T with the T^2 factor) and
 * finite differences; alpha = 0 trains bit-identically to plain cross-entropy; cached teacher
 * outputs reproduce an online ensemble's soft targets; the .npy logits reader and its bad files. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distill/compress.h"
#include "distill/distill.h"
#include "distill/train.h"
#include "test.h"

static void test_golden(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/tests/golden/kd/%s.txt", KD_SOURCE_DIR, name);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "missing fixture %s", path);
    if (!f) return;
    int B, C;
    float T;
    CHECK(fscanf(f, "%d %d %f", &B, &C, &T) == 3);
    int n = B * C;
    float *s = malloc(sizeof(float) * n), *t = malloc(sizeof(float) * n), *g = malloc(sizeof(float) * n);
    float *pt = malloc(sizeof(float) * n), *ps = malloc(sizeof(float) * n), *d = calloc((size_t)n, sizeof(float));
    float loss_ref = 0;
    int ok = 1;
    for (int i = 0; i < n; i++) ok &= fscanf(f, "%f", &s[i]) == 1;
    for (int i = 0; i < n; i++) ok &= fscanf(f, "%f", &t[i]) == 1;
    ok &= fscanf(f, "%f", &loss_ref) == 1;
    for (int i = 0; i < n; i++) ok &= fscanf(f, "%f", &g[i]) == 1;
    fclose(f);
    CHECK_MSG(ok, "%s: truncated fixture", name);
    kd_soft_targets(pt, t, B, C, T);
    float loss = kd_kl_div_forward(ps, s, pt, B, C, T);
    kd_kl_div_backward(d, ps, pt, B, C, T, 1.f);
    CHECK_MSG(fabsf(loss - loss_ref) <= 1e-5f + 1e-5f * fabsf(loss_ref), "%s: loss %.8g vs PyTorch %.8g", name, loss,
              loss_ref);
    float worst = 0;
    for (int i = 0; i < n; i++) worst = fmaxf(worst, fabsf(d[i] - g[i]) / (1e-6f + 1e-5f * fabsf(g[i]) + 1e-6f));
    CHECK_MSG(worst <= 1.f, "%s: gradient off by %g of tolerance", name, worst);
    printf("golden %-16s loss %.6f (PyTorch %.6f)\n", name, loss, loss_ref);
    free(s); free(t); free(g); free(pt); free(ps); free(d);
}

/* Central differences (step 1e-2) of scale * loss(s) against the analytic gradient d, element by
 * element; returns how many differ by more than 2e-3 + 1e-2 |numeric| (each printed with label). */
typedef double (*logit_loss)(const void *ctx, const float *s);
static int fd_mismatches(float *s, const float *d, int n, double scale, logit_loss loss, const void *ctx,
                         const char *label) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        float save = s[i], h = 1e-2f;
        s[i] = save + h;
        double lp = loss(ctx, s);
        s[i] = save - h;
        double lm = loss(ctx, s);
        s[i] = save;
        double num = scale * (lp - lm) / (2 * h);
        if (fabs(num - d[i]) > 2e-3 + 1e-2 * fabs(num)) {
            bad++;
            fprintf(stderr, "  %sd[%d]: analytic %g numeric %g\n", label, i, d[i], num);
        }
    }
    return bad;
}

typedef struct kl_args {
    float *ps;
    const float *pt;
    const int32_t *y;
    int B, C;
    float T;
} kl_args;

static double kl_loss(const void *ctx, const float *s) {
    const kl_args *a = ctx;
    return kd_kl_div_forward(a->ps, s, a->pt, a->B, a->C, a->T);
}

static double dkd_loss(const void *ctx, const float *s) {
    const kl_args *a = ctx;
    return kd_dkd_forward_backward(NULL, s, a->pt, a->y, a->B, a->C, a->T, 1.f, 8.f, 1.f);
}

static void test_fd(void) {
    enum { B = 3, C = 6 };
    kd_rng r;
    kd_rng_seed(&r, 9, 0);
    float s[B * C], t[B * C], pt[B * C], ps[B * C], d[B * C] = {0};
    for (int i = 0; i < B * C; i++) s[i] = 2 * kd_rng_normal(&r), t[i] = 5 * kd_rng_normal(&r);
    float T = 3.f;
    kd_soft_targets(pt, t, B, C, T);
    kd_kl_div_forward(ps, s, pt, B, C, T);
    kd_kl_div_backward(d, ps, pt, B, C, T, 0.7f);
    const kl_args args = {ps, pt, NULL, B, C, T};
    int bad = fd_mismatches(s, d, B * C, 0.7, kl_loss, &args, "");
    CHECK(bad == 0);
    /* KL of identical distributions is 0 and so is its gradient */
    kd_soft_targets(pt, s, B, C, T);
    CHECK_NEAR(kd_kl_div_forward(ps, s, pt, B, C, T), 0.0, 1e-6);
}

/* DKD: the decomposition KL = TCKD + (1 - pt_target) * NCKD (Zhao et al., eq. 3) for the forward,
 * and finite differences for the gradient. */
static void test_dkd(void) {
    enum { B = 4, C = 7 };
    kd_rng r;
    kd_rng_seed(&r, 21, 0);
    float s[B * C], t[B * C], pt[B * C], ps[B * C];
    int32_t y[B] = {0, 3, 6, 2};
    for (int i = 0; i < B * C; i++) s[i] = 2 * kd_rng_normal(&r), t[i] = 4 * kd_rng_normal(&r);
    float T = 2.f;
    kd_soft_targets(pt, t, B, C, T);
    double kl = kd_kl_div_forward(ps, s, pt, B, C, T);
    /* per-sample weights (1 - t_g) differ, so check one sample at a time */
    double sum = 0;
    for (int b = 0; b < B; b++) {
        double tck = kd_dkd_forward_backward(NULL, s + b * C, pt + b * C, y + b, 1, C, T, 1.f, 0.f, 1.f);
        double nck = kd_dkd_forward_backward(NULL, s + b * C, pt + b * C, y + b, 1, C, T, 0.f, 1.f, 1.f);
        sum += tck + (1.0 - pt[b * C + y[b]]) * nck;
    }
    CHECK_MSG(fabs(sum / B - kl) < 1e-4 * (1 + kl), "TCKD + (1-t)NCKD = %g, KL = %g", sum / B, kl);
    float d[B * C] = {0};
    kd_dkd_forward_backward(d, s, pt, y, B, C, T, 1.f, 8.f, 0.5f);
    const kl_args args = {NULL, pt, y, B, C, T};
    int bad = fd_mismatches(s, d, B * C, 0.5, dkd_loss, &args, "dkd ");
    CHECK(bad == 0);
}

/* Small synthetic data set: random 8x8 images whose label depends on the image. */
static void make_data(kd_dataset *ds, int n) {
    memset(ds, 0, sizeof *ds);
    ds->n = n; ds->c = 1; ds->h = ds->w = 8; ds->n_classes = 4;
    ds->pixels = malloc((size_t)n * 64);
    ds->labels = malloc(sizeof(int32_t) * (size_t)n);
    kd_rng r;
    kd_rng_seed(&r, 1, 1);
    for (int i = 0; i < n; i++) {
        int sum = 0;
        for (int k = 0; k < 64; k++) sum += ds->pixels[i * 64 + k] = (uint8_t)kd_rng_below(&r, 256);
        ds->labels[i] = (sum / 64) % 4;
    }
    ds->mean = 0.5f;
    ds->std = 0.29f;
}

static const char *student_yaml = "name: s\ninput: [1, 8, 8]\nlayers:\n  - {type: conv2d, out: 4, kernel: 3, pad: 1}\n"
                                  "  - {type: relu}\n  - {type: dropout, p: 0.2}\n  - {type: linear, out: 4}\n";
static const char *teacher_yaml = "name: t\ninput: [1, 8, 8]\nlayers:\n  - {type: linear, out: 16}\n"
                                  "  - {type: batchnorm}\n  - {type: relu}\n  - {type: linear, out: 4}\n";

/* A distiller over terms given as specs, T and alpha filled in like the CLI does. */
static kd_distiller *make_distiller(const char *const *specs, int n, kd_model *student, kd_teacher *t) {
    kd_loss_term terms[8];
    kd_error err;
    for (int k = 0; k < n; k++) {
        CHECK_MSG(kd_loss_term_parse(&terms[k], specs[k], &err) == KD_STATUS_OK, "%s: %s", specs[k], err.msg);
        if (terms[k].T <= 0.f) terms[k].T = 4.f;
        if (terms[k].alpha < 0.f) terms[k].alpha = 0.9f;
    }
    kd_distiller *d = NULL;
    CHECK_MSG(kd_distiller_create(&d, terms, n, student, t, 11, &err) == KD_STATUS_OK, "%s", err.msg);
    return d;
}

static void test_alpha0_and_cache(void) {
    kd_dataset ds;
    make_data(&ds, 300);
    kd_error err;
    kd_model *a = NULL, *b = NULL, *t1 = NULL, *t2 = NULL;
    CHECK(kd_model_from_yaml(&a, student_yaml, "s", 5, &err) == KD_STATUS_OK);
    CHECK(kd_model_from_yaml(&b, student_yaml, "s", 5, &err) == KD_STATUS_OK);
    CHECK(kd_model_from_yaml(&t1, teacher_yaml, "t", 6, &err) == KD_STATUS_OK);
    CHECK(kd_model_from_yaml(&t2, teacher_yaml, "t", 7, &err) == KD_STATUS_OK);
    if (!a || !b || !t1 || !t2) return;
    kd_train_config c;
    kd_train_config_default(&c);
    c.epochs = 2; c.batch = 32; c.progress = 0; c.aug.translate = 1;
    kd_train_result r;
    CHECK(kd_train(a, &ds, NULL, &c, &r, &err) == KD_STATUS_OK);
    kd_model *ens[2] = {t1, t2};
    kd_teacher teacher = kd_teacher_online(ens, 2);
    const char *h0[] = {"hinton:alpha=0"}, *h5[] = {"hinton:alpha=0.5"};
    c.distiller = make_distiller(h0, 1, b, &teacher);
    CHECK_MSG(kd_train(b, &ds, NULL, &c, &r, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK_MSG(memcmp(a->params, b->params, sizeof(float) * a->n_params) == 0, "alpha=0 differs from plain CE");
    kd_distiller_free(c.distiller);
    /* alpha > 0 does change the result */
    c.distiller = make_distiller(h5, 1, b, &teacher);
    CHECK(kd_train(b, &ds, NULL, &c, &r, &err) == KD_STATUS_OK);
    CHECK(memcmp(a->params, b->params, sizeof(float) * a->n_params) != 0);
    kd_distiller_free(c.distiller);

    /* cached logits reproduce the ensemble's soft targets */
    float *tab = NULL;
    int rows = 0;
    CHECK(kd_teacher_cache(&teacher, 4.f, &ds, 64, 2, &tab, NULL, &rows, &err) == KD_STATUS_OK);
    CHECK(rows == ds.n);
    float x[8 * 64], lg_online[8 * 4], lg_cached[8 * 4], pt_online[8 * 4], pt_cached[8 * 4];
    uint8_t px[8 * 64];
    int32_t idx[8], y[8];
    for (int i = 0; i < 8; i++) idx[i] = 37 * i % ds.n;
    kd_batch_pixels(px, y, &ds, idx, 8, NULL, NULL);
    kd_batch_normalize(x, px, 8, &ds, NULL, NULL);
    kd_batch in = {&ds, px, x, NULL, NULL, NULL, NULL};
    CHECK(kd_teacher_forward(&teacher, 4.f, lg_online, NULL, &in, NULL, 8, &err) == KD_STATUS_OK);
    kd_teacher cached = teacher;
    cached.logits = tab;
    cached.n_samples = rows;
    CHECK(kd_teacher_forward(&cached, 4.f, lg_cached, NULL, NULL, idx, 8, &err) == KD_STATUS_OK);
    /* the ensemble's averaged probabilities, by hand */
    float p1[8 * 4], p2[8 * 4];
    kd_softmax_forward(p1, kd_model_forward(t1, x, 8, 0, NULL), 8, 4, 4.f);
    kd_softmax_forward(p2, kd_model_forward(t2, x, 8, 0, NULL), 8, 4, 4.f);
    kd_soft_targets(pt_online, lg_online, 8, 4, 4.f);
    kd_soft_targets(pt_cached, lg_cached, 8, 4, 4.f);
    float worst = 0, worst_avg = 0;
    for (int i = 0; i < 32; i++) {
        worst = fmaxf(worst, fabsf(pt_online[i] - pt_cached[i]));
        worst_avg = fmaxf(worst_avg, fabsf(pt_online[i] - 0.5f * (p1[i] + p2[i])));
    }
    CHECK_MSG(worst < 1e-6f, "cache differs by %g", worst);
    CHECK_MSG(worst_avg < 1e-6f, "ensemble targets differ from the mean of the members' by %g", worst_avg);
    idx[0] = rows; /* out of range row: an error, not a read past the table */
    CHECK(kd_teacher_forward(&cached, 4.f, lg_cached, NULL, NULL, idx, 1, &err) == KD_STATUS_MISMATCH);
    free(tab);
    kd_model_free(a); kd_model_free(b); kd_model_free(t1); kd_model_free(t2);
    kd_dataset_free(&ds);
}

/* Feature models: the student's conv output (4 x 8 x 8) and hidden vector (6) meet the teacher's
 * (8 x 8 x 8) and (10). No batch norm or dropout, so a training forward is a pure function. */
static const char *fs_yaml = "name: fs\ninput: [1, 8, 8]\nlayers:\n"
                             "  - {name: conv, type: conv2d, out: 4, kernel: 3, pad: 1}\n  - {name: act, type: relu}\n"
                             "  - {name: flat, type: flatten}\n  - {name: fc1, type: linear, out: 6}\n"
                             "  - {name: h, type: gelu}\n  - {name: out, type: linear, out: 4}\n";
static const char *ft_yaml = "name: ft\ninput: [1, 8, 8]\nlayers:\n"
                             "  - {name: conv, type: conv2d, out: 8, kernel: 3, pad: 1}\n  - {name: act, type: relu}\n"
                             "  - {name: flat, type: flatten}\n  - {name: fc1, type: linear, out: 10}\n"
                             "  - {name: h, type: gelu}\n  - {name: out, type: linear, out: 4}\n";

static double total_loss(kd_model *s, kd_distiller *d, const kd_batch *in, const int32_t *idx, const int32_t *y, int B) {
    float dl[16 * 4], loss = 0;
    kd_error err;
    const float *logits = kd_model_forward(s, in->x, B, 1, NULL);
    CHECK(kd_distiller_loss(d, logits, in, idx, y, B, 0.f, dl, &loss, &err) == KD_STATUS_OK);
    return loss;
}

static void fd_case(kd_model *s, kd_teacher *teacher, const kd_dataset *ds, const char *const *specs, int n,
                    const char *what) {
    kd_error err;
    kd_distiller *d = make_distiller(specs, n, s, teacher);
    if (!d) return;
    kd_optim_config oc;
    kd_optim_config_default(&oc);
    enum { B = 6 };
    CHECK(kd_model_set_batch(s, B, 1, &err) == KD_STATUS_OK);
    CHECK(kd_distiller_prepare(d, B, 1, &oc, &err) == KD_STATUS_OK);
    float x[B * 64], dl[B * 4], loss;
    uint8_t px[B * 64];
    int32_t idx[B], y[B];
    for (int i = 0; i < B; i++) idx[i] = i;
    kd_batch_pixels(px, y, ds, idx, B, NULL, NULL);
    kd_batch_normalize(x, px, B, ds, NULL, NULL);
    kd_batch in = {ds, px, x, NULL, NULL, NULL, NULL};
    const float *logits = kd_model_forward(s, x, B, 1, NULL);
    CHECK(kd_distiller_loss(d, logits, &in, idx, y, B, 0.f, dl, &loss, &err) == KD_STATUS_OK);
    kd_model_zero_grad(s);
    kd_distiller_backward(d, dl);
    float *g = malloc(sizeof(float) * s->n_params);
    memcpy(g, s->grads, sizeof(float) * s->n_params);
    double worst = 0;
    int checked = 0;
    for (size_t i = 0; i < s->n_params; i += 7) {
        /* small steps: ReLU kinks make larger ones cross non-smooth points */
        float keep = s->params[i], h = 3e-4f;
        s->params[i] = keep + h;
        double lp = total_loss(s, d, &in, idx, y, B);
        s->params[i] = keep - h;
        double lm = total_loss(s, d, &in, idx, y, B);
        s->params[i] = keep;
        double num = (lp - lm) / (2 * h), err_rel = fabs(num - g[i]) / (1e-3 + 0.05 * fabs(num));
        if (err_rel > worst) worst = err_rel;
        checked++;
    }
    CHECK_MSG(worst <= 1.0, "%s: gradient off finite differences: worst %.3g of tolerance", what, worst);
    printf("distiller fd %-40s %d parameters, loss %.5f, worst %.3f of tolerance\n", what, checked, loss, worst);
    double sum = 0;
    for (int k = 0; k < n; k++) sum += kd_distiller_term_loss(d, k);
    CHECK_MSG(fabs(sum - loss) <= 1e-5 * (1 + fabs(loss)), "%s: the terms' losses do not add up", what);
    free(g);
    kd_distiller_free(d);

}

/* The whole distiller, every term kind together (feature gradients entering mid-network through
 * kd_model_backward_ex, regressors handing back d/d(feature)), against finite differences of the
 * total loss in the student's parameters. */
static void test_distiller_fd(void) {
    kd_dataset ds;
    make_data(&ds, 16);
    kd_error err;
    kd_model *s = NULL, *t = NULL;
    CHECK(kd_model_from_yaml(&s, fs_yaml, "s", 3, &err) == KD_STATUS_OK);
    CHECK(kd_model_from_yaml(&t, ft_yaml, "t", 4, &err) == KD_STATUS_OK);
    if (!s || !t) return;
    kd_teacher teacher = kd_teacher_online(&t, 1);
    const char *specs[] = {"hinton:T=2,alpha=0.7,standardize=1", "dkd:T=3,alpha=1,beta=2,weight=0.3",
                           "fitnet:student=act,teacher=act,weight=0.5", "at:student=act,teacher=act,weight=20",
                           "cosine:student=h,teacher=h,weight=0.4", "rkd:weight=0.2", "sp:student=h,teacher=h,weight=3",
                           "ce:weight=0.1"};
    /* each term alone (a failure names it), then all together */
    for (int only = 0; only <= 8; only++) {
        fd_case(s, &teacher, &ds, only < 8 ? specs + only : specs, only < 8 ? 1 : 8, only < 8 ? specs[only] : "all 8");
    }

    /* errors name the term and the layer */
    kd_loss_term bad;
    kd_distiller *d2 = NULL;
    CHECK(kd_loss_term_parse(&bad, "fitnet:student=nope", &err) == KD_STATUS_OK);
    CHECK(kd_distiller_create(&d2, &bad, 1, s, &teacher, 1, &err) == KD_STATUS_BAD_ARG && strstr(err.msg, "nope"));
    CHECK(kd_loss_term_parse(&bad, "at:student=h,teacher=h", &err) == KD_STATUS_OK);
    CHECK(kd_distiller_create(&d2, &bad, 1, s, &teacher, 1, &err) == KD_STATUS_MISMATCH && strstr(err.msg, "at"));
    CHECK(kd_loss_term_parse(&bad, "cosine:student=h,teacher=h,project=0", &err) == KD_STATUS_OK);
    CHECK(kd_distiller_create(&d2, &bad, 1, s, &teacher, 1, &err) == KD_STATUS_MISMATCH && strstr(err.msg, "cosine"));
    kd_teacher logits_only = {0};
    logits_only.n_classes = 4;
    CHECK(kd_loss_term_parse(&bad, "sp", &err) == KD_STATUS_OK);
    CHECK(kd_distiller_create(&d2, &bad, 1, s, &logits_only, 1, &err) == KD_STATUS_BAD_ARG &&
          strstr(err.msg, "checkpoint"));
    CHECK(d2 == NULL);
    kd_model_free(s);
    kd_model_free(t);
    kd_dataset_free(&ds);
}

/* A run with a FitNets regressor, killed after one epoch and resumed, ends bit-identical to the
 * uninterrupted run: the regressor and its optimizer state are checkpointed beside the student. */
static int stop_after_first(void *ctx, int epoch, const kd_eval_result *val) {
    (void)ctx; (void)val;
    return epoch == 1;
}

static void test_regressor_resume(void) {
    kd_dataset ds;
    make_data(&ds, 200);
    kd_error err;
    kd_model *a = NULL, *b = NULL, *t = NULL;
    CHECK(kd_model_from_yaml(&a, fs_yaml, "s", 3, &err) == KD_STATUS_OK);
    CHECK(kd_model_from_yaml(&b, fs_yaml, "s", 3, &err) == KD_STATUS_OK);
    CHECK(kd_model_from_yaml(&t, ft_yaml, "t", 4, &err) == KD_STATUS_OK);
    if (!a || !b || !t) return;
    kd_teacher teacher = kd_teacher_online(&t, 1);
    const char *specs[] = {"hinton", "fitnet:student=act,teacher=act"};
    kd_train_config c;
    kd_train_config_default(&c);
    c.epochs = 2; c.batch = 32; c.progress = 0;
    kd_train_result r;
    c.distiller = make_distiller(specs, 2, a, &teacher);
    CHECK(kd_train(a, &ds, NULL, &c, &r, &err) == KD_STATUS_OK);
    kd_distiller_free(c.distiller);
    remove("kd_reg.ckpt");
    remove("kd_reg.ckpt.kd2");
    c.checkpoint_path = "kd_reg.ckpt";
    c.on_epoch = stop_after_first; /* "killed" after epoch 1 of 2 */
    c.distiller = make_distiller(specs, 2, b, &teacher);
    CHECK(kd_train(b, &ds, NULL, &c, &r, &err) == KD_STATUS_OK);
    kd_distiller_free(c.distiller);
    FILE *f = fopen("kd_reg.ckpt.kd2", "rb");
    CHECK_MSG(f != NULL, "the regressor of term 2 was not checkpointed");
    if (f) fclose(f);
    /* a fresh process: new student, new distiller (new regressor), resumed from the files */
    kd_model_free(b);
    b = NULL;
    CHECK(kd_model_from_yaml(&b, fs_yaml, "s", 99, &err) == KD_STATUS_OK);
    c.on_epoch = NULL;
    c.resume = 1;
    c.distiller = make_distiller(specs, 2, b, &teacher);
    CHECK_MSG(kd_train(b, &ds, NULL, &c, &r, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK_MSG(memcmp(a->params, b->params, sizeof(float) * a->n_params) == 0, "resumed run differs");
    kd_distiller_free(c.distiller);
    /* a regressor file from another step is refused */
    c.distiller = make_distiller(specs, 2, b, &teacher);
    CHECK(kd_distiller_prepare(c.distiller, 32, 1, &c.optim, &err) == KD_STATUS_OK);
    CHECK_MSG(kd_distiller_save(c.distiller, "kd_reg.ckpt", 3, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(kd_train(b, &ds, NULL, &c, &r, &err) == KD_STATUS_MISMATCH && strstr(err.msg, "step"));
    kd_distiller_free(c.distiller);
    remove("kd_reg.ckpt");
    remove("kd_reg.ckpt.kd2");
    kd_model_free(a); kd_model_free(b); kd_model_free(t);
    kd_dataset_free(&ds);
}

/* Gradual (AGP) pruning inside kd_train: the final sparsity is the target, the masked weights are
 * exactly zero, and a run interrupted after epoch 1 and resumed (mask rebuilt from the zeros)
 * ends bit-identical to the uninterrupted run. */
static void test_prune_in_training(void) {
    kd_dataset ds;
    make_data(&ds, 200);
    kd_error err;
    kd_model *a = NULL, *b = NULL;
    CHECK(kd_model_from_yaml(&a, fs_yaml, "s", 3, &err) == KD_STATUS_OK);
    CHECK(kd_model_from_yaml(&b, fs_yaml, "s", 3, &err) == KD_STATUS_OK);
    if (!a || !b) return;
    kd_train_config c;
    kd_train_config_default(&c);
    c.epochs = 2; c.batch = 32; c.progress = 0;
    kd_prune_schedule pa = {0}, pb = {0};
    CHECK(kd_prune_mask_init(&pa.mask, a, &err) == KD_STATUS_OK);
    pa.s_final = 0.5f;
    pa.end = 8; /* 7 steps per epoch: the ramp ends inside epoch 2 */
    pa.every = 3;
    pb = pa;
    CHECK(kd_prune_mask_init(&pb.mask, b, &err) == KD_STATUS_OK);
    c.prune = &pa;
    kd_train_result r;
    CHECK_MSG(kd_train(a, &ds, NULL, &c, &r, &err) == KD_STATUS_OK, "%s", err.msg);
    double sp = kd_model_weight_sparsity(a);
    CHECK_MSG(fabs(sp - 0.5) < 0.01, "sparsity %.4f after the schedule, want 0.5", sp);
    size_t bad = 0;
    for (size_t k = 0; k < a->n_params; k++) bad += !pa.mask.keep[k] && a->params[k] != 0.f;
    CHECK_MSG(bad == 0, "%zu masked weights are not zero", bad);
    remove("kd_prune.ckpt");
    c.prune = &pb;
    c.checkpoint_path = "kd_prune.ckpt";
    c.on_epoch = stop_after_first;
    CHECK(kd_train(b, &ds, NULL, &c, &r, &err) == KD_STATUS_OK);
    kd_model_free(b);
    b = NULL;
    CHECK(kd_model_from_yaml(&b, fs_yaml, "s", 77, &err) == KD_STATUS_OK);
    kd_prune_mask_free(&pb.mask);
    CHECK(kd_prune_mask_init(&pb.mask, b, &err) == KD_STATUS_OK);
    c.on_epoch = NULL;
    c.resume = 1;
    CHECK_MSG(kd_train(b, &ds, NULL, &c, &r, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK_MSG(memcmp(a->params, b->params, sizeof(float) * a->n_params) == 0, "resumed pruning run differs");
    printf("pruning in training: sparsity %.4f, resumed run bit-identical\n", sp);
    remove("kd_prune.ckpt");
    kd_prune_mask_free(&pa.mask);
    kd_prune_mask_free(&pb.mask);
    kd_model_free(a);
    kd_model_free(b);
    kd_dataset_free(&ds);
}

static void test_terms_and_init(void) {
    kd_loss_term t, u;
    kd_error err;
    char buf[256];
    const char *specs[] = {"hinton:T=3,alpha=0.5,standardize=1", "dkd:T=2,alpha=1,beta=6,weight=0.9", "ce:weight=0.1",
                           "fitnet:student=a,teacher=b,weight=0.5", "rkd:distance=25,angle=50", "cosine:project=1"};
    for (int i = 0; i < 6; i++) {
        CHECK_MSG(kd_loss_term_parse(&t, specs[i], &err) == KD_STATUS_OK, "%s: %s", specs[i], err.msg);
        kd_loss_term_format(&t, buf, sizeof buf);
        CHECK_MSG(kd_loss_term_parse(&u, buf, &err) == KD_STATUS_OK && !memcmp(&t, &u, sizeof t), "%s -> %s", specs[i], buf);
    }
    CHECK(kd_loss_term_parse(&t, "hinto", &err) == KD_STATUS_BAD_ARG && strstr(err.msg, "unknown loss"));
    CHECK(kd_loss_term_parse(&t, "hinton:beta=2", &err) == KD_STATUS_BAD_ARG && strstr(err.msg, "beta"));
    CHECK(kd_loss_term_parse(&t, "hinton:alpha=1.5", &err) == KD_STATUS_BAD_ARG);
    CHECK(kd_loss_term_parse(&t, "sp:weight", &err) == KD_STATUS_BAD_ARG && strstr(err.msg, "key=value"));

    kd_model *s = NULL, *te = NULL;
    CHECK(kd_model_from_yaml(&s, fs_yaml, "s", 3, &err) == KD_STATUS_OK);
    CHECK(kd_model_from_yaml(&te, "name: t\ninput: [1, 8, 8]\nlayers:\n  - {name: conv, type: conv2d, out: 4, kernel: 3, pad: 1}\n"
                             "  - {name: act, type: relu}\n  - {name: flat, type: flatten}\n  - {name: big, type: linear, out: 6}\n"
                             "  - {name: h, type: gelu}\n  - {name: out, type: linear, out: 4}\n", "t", 4, &err) == KD_STATUS_OK);
    if (!s || !te) return;
    char rep[256];
    CHECK_MSG(kd_init_from_teacher(s, te, "auto", rep, sizeof rep, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK_MSG(!strcmp(rep, "conv<-conv out<-out"), "auto map: %s", rep);
    const kd_layer *sc = &s->layers[0], *tc = &te->layers[0];
    CHECK(!memcmp(s->params + sc->w_off, te->params + tc->w_off, sizeof(float) * sc->w_size));
    CHECK(kd_init_from_teacher(s, te, "fc1=big", rep, sizeof rep, &err) == KD_STATUS_OK && !strcmp(rep, "fc1<-big"));
    CHECK(kd_init_from_teacher(s, te, "fc1=conv", rep, sizeof rep, &err) == KD_STATUS_MISMATCH && strstr(err.msg, "fc1"));
    CHECK(kd_init_from_teacher(s, te, "fc1=zz", rep, sizeof rep, &err) == KD_STATUS_BAD_ARG && strstr(err.msg, "zz"));
    kd_model_free(s);
    kd_model_free(te);
}

static void write_npy(const char *path, const char *header, const void *data, size_t len, int truncate_by) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    char h[256];
    int n = snprintf(h, sizeof h, "%s", header);
    int total = 10 + n + 1, pad = (64 - total % 64) % 64;
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    uint16_t hl = (uint16_t)(n + pad + 1);
    fputc(hl & 0xff, f);
    fputc(hl >> 8, f);
    fwrite(h, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    fwrite(data, 1, len - (size_t)truncate_by, f);
    fclose(f);
}

static void expect_npy_error(const char *path, const char *needle) {
    float *d = NULL;
    int n, c;
    kd_error err = {0};
    kd_status st = kd_npy_load_logits(path, 0, &d, &n, &c, &err);
    CHECK_MSG(st == KD_STATUS_BAD_FILE, "%s: status %d", needle, st);
    CHECK_MSG(strstr(err.msg, needle) && strstr(err.msg, path), "'%s' not in '%s'", needle, err.msg);
    CHECK(d == NULL);
    free(d);
}

static void test_npy(void) {
    float v[6] = {1.5f, -2.f, 0.25f, 3.f, 1e-3f, -7.f};
    write_npy("kd_ok.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", v, sizeof v, 0);
    float *d = NULL;
    int n = 0, c = 0;
    kd_error err;
    CHECK_MSG(kd_npy_load_logits("kd_ok.npy", 0, &d, &n, &c, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(n == 3 && c == 2 && d && memcmp(d, v, sizeof v) == 0);
    free(d);
    /* float16: 1.0 = 0x3c00, -2.0 = 0xc000, 0.5 = 0x3800, 65504 = 0x7bff, 2^-24 = 0x0001 (subnormal), 0 */
    uint16_t h[6] = {0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x0000};
    write_npy("kd_f16.npy", "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }", h, sizeof h, 0);
    CHECK(kd_npy_load_logits("kd_f16.npy", 0, &d, &n, &c, &err) == KD_STATUS_OK);
    if (d) {
        CHECK(n == 2 && c == 3);
        CHECK(d[0] == 1.f && d[1] == -2.f && d[2] == 0.5f && d[3] == 65504.f && d[4] == ldexpf(1.f, -24) && d[5] == 0.f);
    }
    free(d);
    /* our writer round-trips through our reader */
    float big[5 * 13];
    for (int i = 0; i < 65; i++) big[i] = (float)i * 0.37f - 9.f;
    CHECK(kd_npy_save("kd_rt.npy", big, 5, 13, &err) == KD_STATUS_OK);
    CHECK(kd_npy_load_logits("kd_rt.npy", 0, &d, &n, &c, &err) == KD_STATUS_OK);
    CHECK(d && n == 5 && c == 13 && memcmp(d, big, sizeof big) == 0);
    free(d);
    remove("kd_rt.npy");
    write_npy("kd_bad1.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }", v, sizeof v, 0);
    expect_npy_error("kd_bad1.npy", "dtype");
    write_npy("kd_bad2.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 1), }", v, sizeof v, 0);
    expect_npy_error("kd_bad2.npy", "shape [N, classes]");
    write_npy("kd_bad3.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", v, sizeof v, 4);
    expect_npy_error("kd_bad3.npy", "truncated");
    float nanv[6] = {1, 2, 3, NAN, 5, 6};
    write_npy("kd_bad4.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", nanv, sizeof nanv, 0);
    expect_npy_error("kd_bad4.npy", "NaN");
    write_npy("kd_bad5.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }", v, sizeof v, 0);
    expect_npy_error("kd_bad5.npy", "Fortran");
    FILE *f = fopen("kd_bad6.npy", "wb");
    if (f) {
        fputs("PK\x03\x04 this is a zip", f);
        fclose(f);
    }
    expect_npy_error("kd_bad6.npy", "magic");
    const char *files[] = {"kd_ok.npy", "kd_f16.npy", "kd_bad1.npy", "kd_bad2.npy", "kd_bad3.npy", "kd_bad4.npy",
                           "kd_bad5.npy", "kd_bad6.npy"};
    for (int i = 0; i < 8; i++) remove(files[i]);
}

/* The temperature has one owner, the loss term: an ensemble averages its members' probabilities at
 * the T of the term that consumes them (here hinton:T=3, the run's -T never reaches the teacher),
 * so the loss is 9 * KL(mean_k softmax(t_k / 3) || softmax(s / 3)). An ensemble's response terms
 * must agree on T; a single teacher's need not. */
static void test_ensemble_term_T(void) {
    kd_dataset ds;
    make_data(&ds, 16);
    kd_error err;
    kd_model *s = NULL, *t1 = NULL, *t2 = NULL;
    CHECK(kd_model_from_yaml(&s, student_yaml, "s", 5, &err) == KD_STATUS_OK);
    CHECK(kd_model_from_yaml(&t1, teacher_yaml, "t", 6, &err) == KD_STATUS_OK);
    CHECK(kd_model_from_yaml(&t2, teacher_yaml, "t", 7, &err) == KD_STATUS_OK);
    if (!s || !t1 || !t2) return;
    kd_model *ens[2] = {t1, t2};
    kd_teacher teacher = kd_teacher_online(ens, 2);
    const char *spec[] = {"hinton:T=3,alpha=1"};
    kd_distiller *d = make_distiller(spec, 1, s, &teacher);
    CHECK(kd_distiller_teacher_T(d) == 3.f);
    enum { B = 8, C = 4 };
    kd_optim_config oc;
    kd_optim_config_default(&oc);
    CHECK(kd_model_set_batch(s, B, 1, &err) == KD_STATUS_OK);
    CHECK(kd_model_set_batch(t1, B, 1, &err) == KD_STATUS_OK);
    CHECK(kd_model_set_batch(t2, B, 1, &err) == KD_STATUS_OK);
    CHECK(kd_distiller_prepare(d, B, 1, &oc, &err) == KD_STATUS_OK);
    float x[B * 64], logits[B * C], dl[B * C], p1[B * C], p2[B * C], ps[B * C], loss = 0.f;
    uint8_t px[B * 64];
    int32_t idx[B], y[B];
    for (int i = 0; i < B; i++) idx[i] = i;
    kd_batch_pixels(px, y, &ds, idx, B, NULL, NULL);
    kd_batch_normalize(x, px, B, &ds, NULL, NULL);
    kd_batch in = {&ds, px, x, NULL, NULL, NULL, NULL};
    memcpy(logits, kd_model_forward(s, x, B, 0, NULL), sizeof logits);
    CHECK_MSG(kd_distiller_loss(d, logits, &in, idx, y, B, 0.f, dl, &loss, &err) == KD_STATUS_OK, "%s", err.msg);
    kd_softmax_forward(p1, kd_model_forward(t1, x, B, 0, NULL), B, C, 3.f);
    kd_softmax_forward(p2, kd_model_forward(t2, x, B, 0, NULL), B, C, 3.f);
    kd_softmax_forward(ps, logits, B, C, 3.f);
    double kl = 0.0;
    for (int i = 0; i < B * C; i++) {
        double pt = 0.5 * ((double)p1[i] + p2[i]);
        kl += pt * (log(pt) - log((double)ps[i]));
    }
    double want = 9.0 * kl / B;
    CHECK_MSG(fabs(loss - want) <= 1e-5 * (1 + fabs(want)), "ensemble at the term's T: loss %g, want %g", loss, want);
    kd_distiller_free(d);

    kd_loss_term two[2];
    kd_distiller *d2 = NULL;
    CHECK(kd_loss_term_parse(&two[0], "hinton:T=2,alpha=0.9", &err) == KD_STATUS_OK);
    CHECK(kd_loss_term_parse(&two[1], "dkd:T=4", &err) == KD_STATUS_OK);
    CHECK(kd_distiller_create(&d2, two, 2, s, &teacher, 1, &err) == KD_STATUS_BAD_ARG && strstr(err.msg, "T=4"));
    kd_teacher single = kd_teacher_online(ens, 1);
    CHECK(kd_distiller_create(&d2, two, 2, s, &single, 1, &err) == KD_STATUS_OK);
    kd_distiller_free(d2);
    kd_model_free(s); kd_model_free(t1); kd_model_free(t2);
    kd_dataset_free(&ds);
}

/* The library's recipe gives a program what `distill kd` does: Hinton at T=2, alpha 0.95, clipped
 * at 2 (DKD + CE with dkd_beta), the user's values kept; QAT 3 epochs at lr / 10; AdamW 1e-3. */
static void test_recipe(void) {
    kd_recipe r;
    kd_train_config c;
    kd_loss_term terms[KD_MAX_LOSS_TERMS];
    int n = 0;
    kd_recipe_default(&r);
    r.distill = 1;
    kd_train_config_default(&c);
    kd_recipe_apply(&r, &c, terms, &n);
    CHECK(n == 1 && terms[0].kind == KD_LOSS_HINTON && terms[0].T == 2.f && terms[0].alpha == 0.95f);
    CHECK(c.clip_grad_norm == 2.f);
    kd_error err;
    n = 0;
    r.dkd_beta = 8.f;
    r.user_set = KD_RECIPE_SET_CLIP;
    kd_train_config_default(&c);
    c.clip_grad_norm = 0.f;
    kd_recipe_apply(&r, &c, terms, &n);
    CHECK(n == 2 && terms[0].kind == KD_LOSS_DKD && terms[0].dkd_beta == 8.f && terms[1].kind == KD_LOSS_CE);
    CHECK(c.clip_grad_norm == 0.f);
    CHECK(kd_loss_term_parse(&terms[0], "hinton:T=5", &err) == KD_STATUS_OK);
    n = 1;
    kd_recipe_apply(&r, &c, terms, &n);
    CHECK(n == 1 && terms[0].T == 5.f && terms[0].alpha == 0.95f);
    kd_recipe_default(&r);
    r.qat_bits = 8;
    kd_train_config_default(&c);
    float lr = c.optim.lr;
    kd_recipe_apply(&r, &c, terms, &n);
    CHECK(c.epochs == 3 && c.optim.lr == lr * 0.1f && c.clip_grad_norm == 0.f);
    kd_recipe_default(&r);
    kd_train_config_default(&c);
    c.optim.type = KD_OPT_ADAMW;
    kd_recipe_apply(&r, &c, terms, &n);
    CHECK(c.optim.lr == 1e-3f && c.optim.weight_decay == 0.01f);
    /* kd_train's steps per epoch: a last batch of one sample is dropped */
    kd_train_config_default(&c);
    c.batch = 10;
    CHECK(kd_train_steps_per_epoch(100, &c) == 10 && kd_train_steps_per_epoch(101, &c) == 10 &&
          kd_train_steps_per_epoch(102, &c) == 11);
    c.max_steps_per_epoch = 4;
    CHECK(kd_train_steps_per_epoch(102, &c) == 4);
}

/* kd_search: the rung schedule; then on synthetic data the reports: the survivors of each rung are
 * its best, the winner is the last rung's best, the same seed repeats every accuracy; a teacher of
 * tables alone does not search augmentation, a cached teacher with its model does (online); a
 * budget of one trains nothing. */
typedef struct {
    kd_search_plan plan;
    kd_search_candidate rep[64];
    int n;
} search_log;

static void log_plan(void *ctx, const kd_search_plan *p) { ((search_log *)ctx)->plan = *p; }
static void log_candidate(void *ctx, const kd_search_candidate *c) {
    search_log *l = ctx;
    if (l->n < 64) l->rep[l->n++] = *c;
}

/* Reports of rung r in l (ids and ranking scores), ranked as kd_search ranks: accuracy (a diverged
 * one below any), ties by id. Returns their count. */
static int ranked_rung(const search_log *l, int r, int *ids) {
    int n = 0;
    for (int i = 0; i < l->n; i++)
        if (l->rep[i].rung == r) ids[n++] = i;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0; j--) {
            const kd_search_candidate *a = &l->rep[ids[j]], *b = &l->rep[ids[j - 1]];
            float sa = a->diverged ? -1.f : a->val_acc, sb = b->diverged ? -1.f : b->val_acc;
            if (!(sa > sb || (sa == sb && a->id < b->id))) break;
            int t = ids[j];
            ids[j] = ids[j - 1], ids[j - 1] = t;
        }
    for (int i = 0; i < n; i++) ids[i] = l->rep[ids[i]].id;
    return n;
}

static kd_status run_search(kd_model *init, uint64_t seed, const char *spec, const kd_teacher *t, const kd_dataset *tr,
                            const kd_dataset *va, int budget, search_log *l, kd_search_result *res, kd_error *err) {
    kd_loss_term term;
    CHECK(kd_loss_term_parse(&term, spec, err) == KD_STATUS_OK);
    if (term.T <= 0.f) term.T = 4.f;
    if (term.alpha < 0.f) term.alpha = 0.9f;
    kd_train_config c;
    kd_train_config_default(&c);
    c.epochs = 9; c.batch = 32; c.progress = 0; c.max_steps_per_epoch = 3;
    kd_search_config sc;
    kd_search_config_default(&sc);
    sc.budget = budget;
    sc.on_plan = log_plan;
    sc.on_candidate = log_candidate;
    sc.ctx = l;
    memset(l, 0, sizeof *l);
    return kd_search(init, seed, &term, 1, t, tr, va, &c, &sc, res, err);
}

static void test_search(void) {
    kd_search_plan p;
    kd_search_schedule(9, 1, 3, 100, &p);
    CHECK(p.n_rungs == 3 && p.candidates[0] == 9 && p.candidates[1] == 3 && p.candidates[2] == 1 && p.epochs[0] == 1 &&
          p.epochs[1] == 3 && p.epochs[2] == 9 && p.final_run && p.search_epochs == 18);
    kd_search_schedule(9, 2, 3, 10, &p); /* the last rung capped by max_epochs */
    CHECK(p.n_rungs == 3 && p.epochs[0] == 2 && p.epochs[1] == 6 && p.epochs[2] == 10 && p.final_run &&
          p.search_epochs == 36);
    kd_search_schedule(9, 1, 3, 2, &p); /* max_epochs reached with 3 left: they are the last rung */
    CHECK(p.n_rungs == 2 && p.candidates[1] == 3 && p.epochs[1] == 2 && !p.final_run && p.search_epochs == 15);
    kd_search_schedule(10, 1, 2, 100, &p); /* 10, 5, 3, 2, 1 */
    CHECK(p.n_rungs == 5 && p.candidates[2] == 3 && p.candidates[3] == 2 && p.epochs[4] == 16 && p.final_run);
    kd_search_schedule(1, 3, 3, 2, &p);
    CHECK(p.n_rungs == 1 && p.candidates[0] == 1 && p.epochs[0] == 2 && p.final_run && p.search_epochs == 0);

    kd_dataset tr, va;
    kd_error err;
    make_data(&tr, 400);
    CHECK(kd_dataset_split(&tr, &va, 100, 1, &err) == KD_STATUS_OK);
    kd_model *s = NULL, *t = NULL;
    CHECK(kd_model_from_yaml(&s, student_yaml, "s", 5, &err) == KD_STATUS_OK);
    CHECK(kd_model_from_yaml(&t, teacher_yaml, "t", 6, &err) == KD_STATUS_OK);
    if (!s || !t) return;
    kd_teacher online = kd_teacher_online(&t, 1);
    static search_log l, l2;
    kd_search_result res, res2;
    kd_status st = run_search(s, 7, "hinton", &online, &tr, &va, 9, &l, &res, &err);
    CHECK_MSG(st == KD_STATUS_OK, "%s", err.msg);
    CHECK(l.plan.dims == (KD_SEARCH_T | KD_SEARCH_ALPHA | KD_SEARCH_MIXUP | KD_SEARCH_TRANSLATE) && l.plan.space == 72 &&
          !l.plan.aug_fixed && l.plan.n_rungs == 3);
    int ids0[64], ids1[64];
    int n0 = ranked_rung(&l, 0, ids0), n1 = ranked_rung(&l, 1, ids1);
    CHECK_MSG(n0 == 9 && n1 == 3 && l.n == 12, "rungs of %d and %d candidates", n0, n1);
    /* the second rung ran the first's best three, best first */
    for (int i = 0; i < 3 && n1 == 3; i++)
        CHECK_MSG(l.rep[9 + i].id == ids0[i], "rung 1 candidate %d is %d, the first rung's #%d is %d", i, l.rep[9 + i].id,
                  i, ids0[i]);
    int augments = 0;
    for (int i = 0; i < l.n; i++) augments += l.rep[i].mixup > 0.f || l.rep[i].translate > 0;
    CHECK(augments > 0);
    /* the winner: the second rung's best, its recipe for the last rung's 9 epochs */
    CHECK(res.best.id == ids1[0] && res.best.rung == 1 && res.epochs == 9);
    CHECK(res.terms[0].T == res.best.T && res.terms[0].alpha == res.best.alpha && res.aug.mixup == res.best.mixup &&
          res.aug.translate == res.best.translate);
    /* the same seed: the same candidates, accuracies and winner; another seed draws others */
    CHECK(run_search(s, 7, "hinton", &online, &tr, &va, 9, &l2, &res2, &err) == KD_STATUS_OK);
    CHECK_MSG(l2.n == l.n && !memcmp(l2.rep, l.rep, sizeof(kd_search_candidate) * (size_t)l.n),
              "two searches with one seed differ");
    CHECK(!memcmp(&res2.best, &res.best, sizeof res.best) && !memcmp(res2.terms, res.terms, sizeof res.terms[0]) &&
          !memcmp(&res2.aug, &res.aug, sizeof res.aug) && res2.epochs == res.epochs);
    CHECK(run_search(s, 8, "hinton", &online, &tr, &va, 9, &l2, &res2, &err) == KD_STATUS_OK);
    int same_draw = 1;
    for (int i = 0; i < 9; i++)
        same_draw &= l2.rep[i].T == l.rep[i].T && l2.rep[i].alpha == l.rep[i].alpha && l2.rep[i].mixup == l.rep[i].mixup;
    CHECK(!same_draw);

    /* a budget of one trains nothing: the first drawn is the winner, for the first rung's epochs */
    CHECK(run_search(s, 7, "hinton", &online, &tr, &va, 1, &l2, &res2, &err) == KD_STATUS_OK);
    CHECK(l2.n == 0 && l2.plan.n_rungs == 1 && res2.best.id == 0 && res2.best.val_acc < 0.f && res2.epochs == 1);
    /* a budget beyond the space: dkd has T only, so with mixup and translate 4 x 3 x 2 = 24 candidates */
    CHECK(run_search(s, 7, "dkd", &online, &tr, &va, 1000, &l2, &res2, &err) == KD_STATUS_OK);
    CHECK(l2.plan.space == 24 && l2.plan.candidates[0] == 24 && !(l2.plan.dims & KD_SEARCH_ALPHA));

    /* a teacher of tables alone (logits from a file): augmentation is not searched */
    float *tab = NULL;
    int rows = 0;
    CHECK(kd_teacher_cache(&online, 4.f, &tr, 64, 2, &tab, NULL, &rows, &err) == KD_STATUS_OK);
    kd_teacher table = {0};
    table.logits = tab;
    table.n_samples = rows;
    table.n_classes = 4;
    CHECK_MSG(run_search(s, 7, "hinton", &table, &tr, &va, 4, &l2, &res2, &err) == KD_STATUS_OK, "%s", err.msg);
    CHECK(l2.plan.aug_fixed && l2.plan.dims == (KD_SEARCH_T | KD_SEARCH_ALPHA) && l2.plan.space == 12);
    for (int i = 0; i < l2.n; i++) CHECK(l2.rep[i].mixup == 0.f && l2.rep[i].translate == 0);
    /* the same tables beside the model (the CLI's cache): augmenting candidates run it online */
    online.logits = tab;
    online.n_samples = rows;
    CHECK_MSG(run_search(s, 7, "hinton", &online, &tr, &va, 9, &l2, &res2, &err) == KD_STATUS_OK, "%s", err.msg);
    augments = 0;
    for (int i = 0; i < l2.n; i++) augments += l2.rep[i].mixup > 0.f || l2.rep[i].translate > 0;
    CHECK(!l2.plan.aug_fixed && augments > 0);
    free(tab);
    kd_model_free(s);
    kd_model_free(t);
    kd_dataset_free(&tr);
    kd_dataset_free(&va);
}

int main(void) {
    test_golden("hinton_T1");
    test_golden("hinton_T4");
    test_golden("hinton_T20_big");
    test_fd();
    test_dkd();
    test_alpha0_and_cache();
    test_distiller_fd();
    test_regressor_resume();
    test_terms_and_init();
    test_prune_in_training();
    test_npy();
    test_ensemble_term_T();
    test_recipe();
    test_search();
    TEST_DONE();
}
