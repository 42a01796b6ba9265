/* Training throughput of the engine: samples/s of a full training step (forward, cross-entropy,
 * backward, SGD update) at batch 128 on real Fashion-MNIST batches, the GFLOP/s it reaches
 * (6 * MACs per sample), and that as a fraction of the machine's SGEMM peak measured in the same
 * run through the same kd_sgemm interface.
 * Usage: bench_train [--threads N] [--batch B] [--steps S] [models...]   (default: all zoo models)
 * S is the minimum number of timed steps; small models run more, for at least ~3 seconds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "distill/ops.h"
#include "distill/train.h"

static double sgemm_peak(int n, int threads) {
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
    omp_set_num_threads(threads);
    double best = 0;
    for (int r = 0; r < 6; r++) {
        double t0 = kd_now();
        kd_sgemm(0, 0, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
        double t = kd_now() - t0;
        double gf = 2.0 * n * n * (double)n / t / 1e9;
        if (r > 0 && gf > best) best = gf;
    }
    free(a); free(b); free(c);
    return best;
}

/* One epoch of c->max_steps_per_epoch steps over the first `images` images of ds (at most all);
 * 0 after printing the error. */
static int train_steps(kd_model *m, const kd_dataset *ds, int images, const kd_train_config *c, kd_train_result *r) {
    kd_error err;
    kd_dataset sub = *ds;
    sub.n = images > ds->n ? ds->n : images;
    if (kd_train(m, &sub, NULL, c, r, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    int threads = 2, batch = 128, steps = 30;
    const char *models[16];
    int nm = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (nm < 16) models[nm++] = argv[i];
    }
    if (!nm)
        for (int i = 0; kd_model_zoo_name(i) && nm < 16; i++) models[nm++] = kd_model_zoo_name(i);
    kd_error err;
    kd_dataset ds = {0};
    if (kd_dataset_load(&ds, "fashion-mnist", "train", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double peak = sgemm_peak(2048, threads);
    printf("GEMM backend: %s; SGEMM n=2048 peak with %d threads: %.1f GFLOP/s\n", kd_gemm_backend(), threads, peak);
    printf("%-12s %6s %8s %12s %10s %12s %8s\n", "model", "batch", "threads", "samples/s", "ms/step", "GFLOP/s", "%peak");
    for (int k = 0; k < nm; k++) {
        kd_model *m = NULL;
        if (kd_model_create(&m, models[k], 1, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            continue;
        }
        kd_train_config c;
        kd_train_config_default(&c);
        c.epochs = 1;
        c.batch = batch;
        c.threads = threads;
        c.progress = 0;
        c.max_steps_per_epoch = 5; /* warm-up run */
        kd_train_result r;
        if (!train_steps(m, &ds, batch * (steps + 5), &c, &r)) {
            kd_model_free(m);
            continue;
        }
        /* enough steps for at least ~3 s of measurement, so small models are not timed on noise */
        int want = (int)(3.0 * r.samples_per_sec / batch) + 1;
        int n_steps = want > steps ? want : steps;
        if (n_steps > ds.n / batch - 1) n_steps = ds.n / batch - 1;
        c.max_steps_per_epoch = n_steps;
        if (!train_steps(m, &ds, batch * (n_steps + 1), &c, &r)) {
            kd_model_free(m);
            continue;
        }
        double gflops = r.samples_per_sec * 6.0 * (double)kd_model_macs(m) / 1e9;
        printf("%-12s %6d %8d %12.0f %10.2f %12.1f %7.1f%%\n", m->name, batch, threads, r.samples_per_sec,
               1e3 * batch / r.samples_per_sec, gflops, 100 * gflops / peak);
        kd_model_free(m);
    }
    kd_dataset_free(&ds);
    return 0;
}
