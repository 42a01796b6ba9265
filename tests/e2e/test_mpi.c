/* Data-parallel training under mpirun (dist.h, docs/DISTRIBUTED.md), end to end through the CLI:
 * 2 ranks against one process for train (with and without batch norm, synchronised), kd (a cached
 * teacher with a learned FitNets regressor, an online teacher) and lm train; bit-identical repeats;
 * resume across a change of the rank count; a killed rank, a stopped rank and Ctrl-C. Skips (77) where mpirun or
 * an MPI build is missing. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "distill/checkpoint.h"
#include "distill/dist.h"
#include "distill/lm.h"
#include "cli_run.h"

#define DIR KD_BINARY_DIR "/mpi_test_dir"
/* Two ranks on this machine: as root (CI), with more ranks than cores allowed. The sanitizers'
 * leak check is off for the ranks: Open MPI keeps allocations until exit by design. */
#define MPIRUN "mpirun --allow-run-as-root --oversubscribe -np 2 -x ASAN_OPTIONS -x UBSAN_OPTIONS -x OMP_NUM_THREADS " \
               "-x KD_DIST_TIMEOUT "
/* The tolerance on weights, N ranks against one process: summation order only (measured about
 * 1e-7 for these runs; a wrong share, scale or missing sum gives 1e-3 and more). */
#define TOL 1e-5

static void nap(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* A shell command in DIR, printf-style with one string argument. */
static int sh(const char *fmt, const char *a) {
    char line[3072];
    snprintf(line, sizeof line, fmt, a ? a : "");
    return run_sh(line);
}

static int distill(const char *prefix, const char *args) {
    char line[3072];
    snprintf(line, sizeof line, "%s%s %s", prefix, KD_CLI_PATH, args);
    int rc = sh("%s", line);
    if (rc) fprintf(stderr, "`%s` exited %d:\n%s\n", line, rc, out);
    return rc;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* Largest |a - b| over the parameters (and buffers) of two classifier checkpoints; -1 if either
 * cannot be read or their shapes differ. */
static double ckpt_diff(const char *a, const char *b) {
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, DIR "/%s", a);
    snprintf(pb, sizeof pb, DIR "/%s", b);
    kd_model *ma = NULL, *mb = NULL;
    kd_error err;
    double d = -1;
    if (!kd_checkpoint_load(pa, &ma, &err) && !kd_checkpoint_load(pb, &mb, &err) && ma->n_params == mb->n_params &&
        ma->n_buffers == mb->n_buffers) {
        d = fmax(max_diff(ma->params, mb->params, ma->n_params), max_diff(ma->buffers, mb->buffers, ma->n_buffers));
    } else {
        fprintf(stderr, "cannot compare %s and %s: %s\n", a, b, err.msg);
    }
    kd_model_free(ma);
    kd_model_free(mb);
    return d;
}

static double lm_diff(const char *a, const char *b) {
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, DIR "/%s", a);
    snprintf(pb, sizeof pb, DIR "/%s", b);
    kd_lm *ma = NULL, *mb = NULL;
    kd_error err;
    double d = -1;
    if (!kd_lm_load(pa, &ma, &err) && !kd_lm_load(pb, &mb, &err) && ma->n_params == mb->n_params) {
        d = max_diff(ma->params, mb->params, ma->n_params);
    }
    kd_lm_free(ma);
    kd_lm_free(mb);
    return d;
}

#define SAME(a, b, tol, what)                                                                              \
    do {                                                                                                   \
        double d_ = ckpt_diff(a, b);                                                                       \
        CHECK_MSG(d_ >= 0 && d_ <= (tol), "%s: max |%s - %s| = %g (tolerance %g)", what, a, b, d_, (double)(tol)); \
        printf("%s: max weight difference %g\n", what, d_);                                               \
    } while (0)

/* A run that mpirun starts in the background; the test then kills a rank or mpirun itself once
 * the first checkpoint exists, and checks the job ends, how, and how soon. */
static void fault(const char *name, const char *signal_target) {
    char args[1024];
    snprintf(args, sizeof args,
             "rm -f %s.*; (" MPIRUN "%s train -m cnn-s -d fashion-mnist --limit 4000 --val 100 -b 64 -j 1 -e 200 "
             "-o %s.safetensors > %s.log 2>&1 & echo $! > %s.pid; wait $!; echo $? > %s.rc) > /dev/null 2>&1 &",
             name, KD_CLI_PATH, name, name, name, name);
    CHECK(sh("%s", args) == 0);
    char ck[512], rcp[512];
    snprintf(ck, sizeof ck, DIR "/%s.safetensors.ckpt", name);
    snprintf(rcp, sizeof rcp, DIR "/%s.rc", name);
    int waited = 0;
    while (access(ck, F_OK) != 0 && access(rcp, F_OK) != 0 && waited < 1200) nap(100000), waited++;
    CHECK_MSG(access(ck, F_OK) == 0, "%s: no checkpoint after %d s", name, waited / 10);
    nap(300000); /* into the second epoch */
    /* the signal: SIGKILL to one rank (a distill process whose command line names this run), or
     * SIGINT to mpirun (what Ctrl-C in its terminal sends) */
    char kill_cmd[1024];
    const char *rank_sig = !strcmp(signal_target, "rank") ? "-9" : !strcmp(signal_target, "stop") ? "-STOP" : NULL;
    if (rank_sig) /* the rank: the last distill process whose command line names this run */
        snprintf(kill_cmd, sizeof kill_cmd,
                 "for p in $(pgrep -x distill); do grep -q %s.safetensors /proc/$p/cmdline && echo $p; done | tail -1 "
                 "> %s.victim; kill %s $(cat %s.victim)", name, name, rank_sig, name);
    else
        snprintf(kill_cmd, sizeof kill_cmd, "kill -INT $(cat %s.pid)", name);
    double t = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    CHECK(sh("%s", kill_cmd) == 0);
    while (access(rcp, F_OK) != 0 && t < 90) {
        nap(50000);
        clock_gettime(CLOCK_MONOTONIC, &b);
        t = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    }
    printf("%s: the job ended %.1f s after the signal\n", name, t);
    CHECK_MSG(access(rcp, F_OK) == 0, "%s: the job still runs %.0f s after the signal (a hang)", name, t);
    nap(200000);
    sh("cat %s.rc", name);
    int rc = atoi(out);
    CHECK_MSG(rc != 0, "%s: the job exited 0 after the signal", name);
    sh("cat %s.log", name);
    if (!strcmp(signal_target, "rank"))
        CHECK_MSG(strstr(out, "rank") && strstr(out, "signal 9"), "%s: the job's output does not name the killed "
                  "rank:\n%s", name, out);
    else if (!strcmp(signal_target, "stop")) {
        CHECK_MSG(strstr(out, "stopped or hangs") && t > 14, "%s: no watchdog message (or before its 15 s):\n%s",
                  name, out);
        sh("kill -9 $(cat %s.victim)", name); /* the stopped rank itself stays stopped: gone now */
    } else
        CHECK_MSG(strstr(out, "interrupted at epoch") && strstr(out, "state saved to"),
                  "%s: no interruption message:\n%s", name, out);
    /* whatever happened, the checkpoint left behind is whole: it loads and resumes */
    char ckname[256];
    snprintf(ckname, sizeof ckname, "%s.safetensors.ckpt", name);
    CHECK_MSG(ckpt_diff(ckname, ckname) == 0, "%s: the checkpoint left behind does not load", name);
}

int main(void) {
    if (!kd_dist_built()) {
        printf("SKIP: this build has no MPI (libopenmpi-dev was not found at configure time)\n");
        return 77;
    }
    if (system("command -v mpirun >/dev/null 2>&1") != 0) {
        printf("SKIP: mpirun is not installed (openmpi-bin)\n");
        return 77;
    }
    if (system("rm -rf " DIR " && mkdir -p " DIR) != 0) return 1;
    cli_dir = DIR;
    setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
    setenv("OMP_NUM_THREADS", "1", 1);
    setenv("KD_DIST_TIMEOUT", "15", 1); /* the watchdog: a stopped rank ends the job after 15 s */
    setenv("UBSAN_OPTIONS", getenv("UBSAN_OPTIONS") ? getenv("UBSAN_OPTIONS") : "print_stacktrace=1", 1);
    /* Shared memory without the kernel's cross-memory attach, which containers often forbid
     * (ptrace restrictions); the sums only get a little slower. */
    setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 0);
    /* Can this machine start 2 MPI processes at all (a launcher that cannot, e.g. without a
     * network interface, is the environment's problem, not distill's)? */
    if (run_sh(MPIRUN "true") != 0) {
        printf("SKIP: mpirun cannot start 2 processes here:\n%s\n", out);
        return 77;
    }

    /* train: a model without batch norm; then one with it, synchronised; a share that does not
     * divide (batch 61 over 2 ranks: 30 and 31) */
    const char *mlp = "train -m mlp-s -d fashion-mnist --limit 1500 --val 200 -e 2 -b 61 -j 1 -q";
    char args[1024];
    snprintf(args, sizeof args, "%s -o one.safetensors", mlp);
    CHECK(distill("", args) == 0);
    snprintf(args, sizeof args, "%s -o two.safetensors", mlp);
    CHECK(distill(MPIRUN, args) == 0);
    CHECK_MSG(strstr(out, "on 2 ranks") != NULL, "no rank count in:\n%s", out);
    SAME("one.safetensors", "two.safetensors", TOL, "train mlp-s, 2 ranks vs 1 process");
    /* the sums started during the backward pass, in buckets of 4 KB (1024 floats: mlp-s's first
     * layer is a bucket of 100,480 floats, the rest one of 1,290) */
    snprintf(args, sizeof args, "%s --bucket-kb 4 -o twob.safetensors", mlp);
    CHECK(distill(MPIRUN, args) == 0);
    SAME("one.safetensors", "twob.safetensors", TOL, "train mlp-s, 2 ranks, --bucket-kb 4");

    const char *bn = "train -m mobilenet-s -d fashion-mnist --limit 800 --val 100 -e 1 -b 50 -j 1 -q --max-steps 4";
    snprintf(args, sizeof args, "%s -o bn1.safetensors", bn);
    CHECK(distill("", args) == 0);
    snprintf(args, sizeof args, "%s --sync-bn -o bn2s.safetensors", bn);
    CHECK(distill(MPIRUN, args) == 0);
    SAME("bn1.safetensors", "bn2s.safetensors", TOL, "train mobilenet-s --sync-bn, 2 ranks vs 1 process");
    /* per-rank batch norm is another model (statistics over 25 samples): same N, same bits */
    snprintf(args, sizeof args, "%s -o bn2a.safetensors", bn);
    CHECK(distill(MPIRUN, args) == 0);
    snprintf(args, sizeof args, "%s -o bn2b.safetensors", bn);
    CHECK(distill(MPIRUN, args) == 0);
    SAME("bn2a.safetensors", "bn2b.safetensors", 0, "mobilenet-s per-rank batch norm, 2 ranks twice");
    double per_rank = ckpt_diff("bn1.safetensors", "bn2a.safetensors");
    CHECK_MSG(per_rank > 1e-4, "per-rank batch norm should differ from the global batch's (%g)", per_rank);

    /* kd: a cached teacher with a FitNets regressor (its gradients are summed too), then online */
    CHECK(distill("", "train -m cnn-s -d fashion-mnist --limit 1000 --val 0 -e 1 -b 50 -j 1 -q -o t.safetensors") == 0);
    const char *kd = "kd --teacher t.safetensors -s cnn-s -d fashion-mnist --limit 1000 --val 100 -e 1 -b 50 -j 1 -q "
                     "--loss hinton --loss fitnet:student=relu1,teacher=relu1,weight=0.5";
    snprintf(args, sizeof args, "%s -o k1.safetensors", kd);
    CHECK(distill("", args) == 0);
    snprintf(args, sizeof args, "%s -o k2.safetensors", kd);
    CHECK(distill(MPIRUN, args) == 0);
    SAME("k1.safetensors", "k2.safetensors", TOL, "kd cached teacher + fitnet, 2 ranks vs 1 process");
    const char *online = "kd --teacher t.safetensors -s mlp-s -d fashion-mnist --limit 1000 --val 100 -e 1 -b 50 -j 1 -q "
                         "--no-cache --translate 2";
    snprintf(args, sizeof args, "%s -o o1.safetensors", online);
    CHECK(distill("", args) == 0);
    snprintf(args, sizeof args, "%s -o o2.safetensors", online);
    CHECK(distill(MPIRUN, args) == 0);
    SAME("o1.safetensors", "o2.safetensors", TOL, "kd online teacher with shifts, 2 ranks vs 1 process");

    /* resume across a change of N: 1 epoch on 2 ranks, the second in one process, against 2
     * epochs in one process (a constant schedule: a run's length does not change its steps) */
    const char *rs = "train -m mlp-s -d fashion-mnist --limit 1500 --val 100 -b 64 -j 1 -q --schedule const";
    snprintf(args, sizeof args, "%s -e 2 -o r1.safetensors", rs);
    CHECK(distill("", args) == 0);
    snprintf(args, sizeof args, "%s -e 1 -o r2.safetensors", rs);
    CHECK(distill(MPIRUN, args) == 0);
    snprintf(args, sizeof args, "%s -e 2 --resume -o r2.safetensors", rs);
    CHECK(distill("", args) == 0);
    CHECK(strstr(out, "resumed") != NULL);
    SAME("r1.safetensors", "r2.safetensors", TOL, "train resumed from 2 ranks in 1 process");

    /* lm train: 2 ranks against one process, and resumed from 1 process on 2 ranks */
    FILE *f = fopen(DIR "/text.txt", "w");
    for (int i = 0; f && i < 1500; i++) fprintf(f, "and the lord said unto moses %d, go.\n", (i * 7) % 23);
    if (f) fclose(f);
    const char *lm = "lm train --text text.txt --layers 1 --dim 32 --heads 2 --ctx 16 -b 6 -q --ckpt-every 0 "
                     "--warmup 2 --schedule const";
    snprintf(args, sizeof args, "%s --steps 12 -o l1.safetensors", lm);
    CHECK(distill("", args) == 0);
    snprintf(args, sizeof args, "%s --steps 12 -o l2.safetensors", lm);
    CHECK(distill(MPIRUN, args) == 0);
    double dl = lm_diff("l1.safetensors", "l2.safetensors");
    printf("lm train, 2 ranks vs 1 process: max weight difference %g\n", dl);
    CHECK_MSG(dl >= 0 && dl <= TOL, "lm: %g", dl);
    snprintf(args, sizeof args, "%s --steps 6 -o l3.safetensors", lm);
    CHECK(distill("", args) == 0);
    snprintf(args, sizeof args, "%s --steps 12 --resume -o l3.safetensors", lm);
    CHECK(distill(MPIRUN, args) == 0);
    dl = lm_diff("l1.safetensors", "l3.safetensors");
    printf("lm train resumed on 2 ranks from 1 process: max weight difference %g\n", dl);
    CHECK_MSG(dl >= 0 && dl <= TOL, "lm resume: %g", dl);

    /* lm kd from the 1-process teacher: the teacher runs on each rank's share */
    const char *lmkd = "lm kd --teacher l1.safetensors --text text.txt --layers 1 --dim 32 --heads 2 -b 6 -q "
                       "--ckpt-every 0 --warmup 2 --steps 6";
    snprintf(args, sizeof args, "%s -o lk1.safetensors", lmkd);
    CHECK(distill("", args) == 0);
    snprintf(args, sizeof args, "%s -o lk2.safetensors", lmkd);
    CHECK(distill(MPIRUN, args) == 0);
    dl = lm_diff("lk1.safetensors", "lk2.safetensors");
    printf("lm kd, 2 ranks vs 1 process: max weight difference %g\n", dl);
    CHECK_MSG(dl >= 0 && dl <= TOL, "lm kd: %g", dl);

    /* refusals: per-rank batch norm on a share of 1 sample (batch 3: 1 and 2); a command that
     * does not spread */
    CHECK(distill(MPIRUN, "train -m mobilenet-s -d fashion-mnist --limit 100 --val 0 -e 1 -b 3 -q -o x.safetensors") != 0);
    CHECK_MSG(strstr(out, "leaves a rank 1") && strstr(out, "--sync-bn"), "%s", out);
    CHECK(distill(MPIRUN, "info cnn-s") != 0);
    CHECK_MSG(strstr(out, "runs in one process") != NULL, "%s", out);

    /* faults: a rank killed ends the job naming it; Ctrl-C stops every rank with the state saved;
     * a rank stopped (alive, silent) ends the job by the others' watchdog */
    fault("victim", "rank");
    fault("ctrlc", "mpirun");
    fault("stall", "stop"); /* a rank stopped, not dead: the others' watchdog ends the job */
    TEST_DONE();
}
