/* `distill`: entry point, subcommand dispatch and the helpers every subcommand shares. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "distill/dist.h"
#include "distill/fileio.h"
#include "distill/onnx.h"
#include "distill/version.h"

volatile int kd_cli_stop = 0;
static volatile int graceful_stop = 0;

/* Ctrl-C / SIGTERM without signal handlers. A handler's frame is pushed wherever the interrupted
 * thread's stack pointer points, and oneDNN's JIT GEMM kernels run with the stack pointer inside a
 * heap buffer: an asynchronous handler corrupted the heap (seen: SIGINT during training, 3 of 30
 * runs, "corrupted size vs. prev_size"; the core showed the kernel's signal frame, eflags 0x206 and
 * cs/ss 0x33/0x2b, written over a malloc chunk). So SIGINT and SIGTERM are blocked in every thread
 * (before any is created: threads inherit the mask) and one thread takes them with sigwait: the
 * first one asks a command that supports it (kd_cli_install_signals) to stop after the current step
 * and save; otherwise, or on the second, the process exits with 130. */
static void *signal_thread(void *arg) {
    const sigset_t *set = arg;
    for (;;) {
        int sig;
        if (sigwait(set, &sig)) continue;
        if (!graceful_stop || kd_cli_stop) _exit(KD_EXIT_INTERRUPTED);
        kd_cli_stop = 1;
    }
    return NULL;
}

static void start_signal_thread(void) {
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL)) return;
    pthread_t t;
    if (pthread_create(&t, NULL, signal_thread, &set)) {
        pthread_sigmask(SIG_UNBLOCK, &set, NULL); /* no thread: default actions, as before */
        return;
    }
    pthread_detach(t);
}

void kd_cli_install_signals(void) { graceful_stop = 1; }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void kd_cli_threads(int n) { omp_set_num_threads(n > 0 ? n : 1); }

int kd_cli_latency(kd_model *m, const kd_dataset *ds, int n, double *median_us, double *p99_us) {
    kd_error err;
    if (n > ds->n) n = ds->n;
    if (n < 1 || kd_model_set_batch(m, 1, 1, &err)) return -1;
    size_t in_size = (size_t)ds->c * ds->h * ds->w;
    float *x = malloc(in_size * sizeof(float));
    double *t = malloc((size_t)n * sizeof(double));
    if (!x || !t) {
        free(x);
        free(t);
        return -1;
    }
    int threads = omp_get_max_threads(); /* the command's -j, restored below */
    kd_cli_threads(1);
    int32_t y;
    for (int i = -20; i < n; i++) {
        int32_t idx = i < 0 ? 0 : i;
        kd_batch_fill(x, &y, ds, m->norm_mean, m->norm_std, &idx, 1);
        double t0 = kd_now();
        kd_model_forward(m, x, 1, 0, NULL);
        if (i >= 0) t[i] = (kd_now() - t0) * 1e6;
    }
    kd_cli_threads(threads);
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    *median_us = t[n / 2];
    *p99_us = t[(int)(n * 0.99)];
    free(x);
    free(t);
    return 0;
}

/* Under mpirun an error names its rank; an interruption, which every rank shares, is rank 0's to
 * report. */
static int rank_tag(char *buf, size_t n, const kd_error *err) {
    buf[0] = 0;
    if (kd_dist_size() < 2) return 1;
    if (err->status == KD_STATUS_INTERRUPTED) return kd_dist_rank() == 0;
    snprintf(buf, n, " (rank %d of %d)", kd_dist_rank(), kd_dist_size());
    return 1;
}

int kd_cli_fail_about(const char *cmd, const char *value, const kd_error *err) {
    char tag[48];
    if (rank_tag(tag, sizeof tag, err))
        fprintf(stderr, "distill %s%s: error: %s%s\n", cmd, tag, kd_cli_config_where(value), err->msg);
    return err->status == KD_STATUS_INTERRUPTED ? KD_EXIT_INTERRUPTED : KD_EXIT_ERROR;
}

int kd_cli_fail(const char *cmd, const kd_error *err) { return kd_cli_fail_about(cmd, NULL, err); }

void kd_cli_note(const char *fmt, ...) {
    if (kd_dist_rank() != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

int kd_cli_fail_in(const char *cmd, const char *path, const kd_error *err) {
    char tag[48];
    if (rank_tag(tag, sizeof tag, err)) fprintf(stderr, "distill %s%s: error: %s: %s\n", cmd, tag, path, err->msg);
    return err->status == KD_STATUS_INTERRUPTED ? KD_EXIT_INTERRUPTED : KD_EXIT_ERROR;
}

/* Two paths name the same file: the same inode when both exist, else the same string. */
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return strcmp(a, b) == 0;
}

int kd_cli_check_outputs(const char *cmd, const char *const *outs, int n_out, const char *const *ins, int n_in) {
    kd_error err;
    for (int i = 0; i < n_out; i++) {
        if (!outs[i]) continue;
        if (kd_check_output_path(outs[i], &err)) return kd_cli_fail(cmd, &err);
        for (int j = 0; j < i; j++)
            if (outs[j] && same_file(outs[i], outs[j])) {
                fprintf(stderr, "distill %s: error: %s is named for two outputs; give each its own file\n", cmd, outs[i]);
                return KD_EXIT_ERROR;
            }
        for (int j = 0; j < n_in; j++)
            if (ins[j] && same_file(outs[i], ins[j])) {
                fprintf(stderr, "distill %s: error: %s is both an input and an output of this command; writing it "
                                "would replace the input (name another output file)\n", cmd, outs[i]);
                return KD_EXIT_ERROR;
            }
    }
    return 0;
}

int kd_cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "distill %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'distill %s --help'.\n", cmd);
    va_end(ap);
    return KD_EXIT_USAGE;
}

int kd_cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, int *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        kd_cli_usage_error(cmd, "%s%s expects an integer in [%ld, %ld], got '%s'", kd_cli_config_where(s), opt, lo, hi, s);
        return 0;
    }
    *out = (int)v;
    return 1;
}

int kd_cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi, float *out) {
    char *end = NULL;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= lo && v <= hi)) {
        kd_cli_usage_error(cmd, "%s%s expects a number in [%g, %g], got '%s'", kd_cli_config_where(s), opt, lo, hi, s);
        return 0;
    }
    *out = (float)v;
    return 1;
}

/* The one parser of --mean / --std (train, kd, predict, import): cli.h. */
int kd_cli_norm_list(const char *C, const char *opt, const char *arg, float *v, int c) {
    float buf[KD_CLI_NORM_MAX];
    int n = 0;
    const char *p = arg;
    for (;;) {
        char *end;
        double x = strtod(p, &end);
        if (end == p || (*end && *end != ',') || !isfinite(x) || (!strcmp(opt, "--std") && !(x > 0)) || n == KD_CLI_NORM_MAX) {
            kd_cli_usage_error(C, "%s%s expects one number or one per channel (at most %d), comma-separated%s, got '%s'",
                               kd_cli_config_where(arg), opt, KD_CLI_NORM_MAX, strcmp(opt, "--std") ? "" : ", each > 0",
                               arg);
            return 0;
        }
        buf[n++] = (float)x;
        if (!*end) break;
        p = end + 1;
    }
    if (!v) return n;
    if (c == 0) { /* as given: the caller checks the count (import: against the model it reads) */
        memcpy(v, buf, sizeof(float) * (size_t)n);
        return n;
    }
    if (n != 1 && n != c) {
        kd_cli_usage_error(C, "%s%s has %d values; the input has %d channels (give 1 value or %d)",
                           kd_cli_config_where(arg), opt, n, c, c);
        return 0;
    }
    for (int i = 0; i < c; i++) v[i] = buf[n == 1 ? 0 : i];
    return n;
}

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), ns = strlen(suffix);
    return n > ns && strcmp(s + n - ns, suffix) == 0;
}

int kd_cli_model_is_trained(const char *what) {
    return has_suffix(what, ".safetensors") || has_suffix(what, ".ckpt") || kd_onnx_is_path(what);
}

int kd_cli_load_model_seeded(const char *cmd, const char *what, uint64_t seed, kd_model **m) {
    kd_error err;
    kd_status st = kd_onnx_is_path(what)                                         ? kd_onnx_import(what, NULL, m, NULL, &err)
                   : has_suffix(what, ".safetensors") || has_suffix(what, ".ckpt") ? kd_checkpoint_load(what, m, &err)
                                                                                   : kd_model_create(m, what, seed, &err);
    return st ? kd_cli_fail_about(cmd, what, &err) : 0;
}

int kd_cli_load_model(const char *cmd, const char *what, kd_model **m) { return kd_cli_load_model_seeded(cmd, what, 1, m); }

void kd_cli_bytes(char *buf, size_t n, double b) {
    if (b >= 1e6) snprintf(buf, n, "%.2f MB", b / 1e6);
    else if (b >= 1e3) snprintf(buf, n, "%.1f KB", b / 1e3);
    else snprintf(buf, n, "%.0f B", b);
}

const char *kd_cli_class_name(const char *spec, int n_classes, int c) {
    static const char *fashion[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    if (spec && strcmp(spec, "fashion-mnist") == 0 && n_classes == 10 && c >= 0 && c < 10) return fashion[c];
    return NULL;
}

static void usage(FILE *f) {
    fprintf(f,
            "distill: knowledge distillation and model compression\n\n"
            "Usage: distill <command> [options]    (distill <command> --help for details)\n\n"
            "Commands:\n"
            "  train     train a model (teacher or student) with cross-entropy\n"
            "  kd        distill a student from a teacher (checkpoint, ensemble or logits file)\n"
            "  eval      accuracy and loss of a checkpoint on a data set\n"
            "  info      parameters, MACs, bytes, memory and the layer table of a model\n"
            "  predict   classify images with a checkpoint\n"
            "  prune     prune a checkpoint (weights or whole channels) with a per-layer report\n"
            "  pipeline  teacher -> distilled student -> pruned -> int8 (PTQ, QAT) -> .kdm -> report, from a YAML file\n"
            "  quantize  int8 post-training quantization, evaluated with integer arithmetic\n"
            "  export    the deployable model of the kdrt runtime (.kdm file or C header)\n"
            "  import    an ONNX model (a teacher from PyTorch, Keras, ...) as a distill checkpoint\n"
            "  bench     batch-1 latency, throughput, arena and accuracy of a .kdm on the runtime\n"
            "  lm        language models: train, distill (kd), eval, generate (distill lm --help)\n"
            "  models    list the built-in models\n\n"
            "Data: 'fashion-mnist' (Debian package dataset-fashion-mnist), a directory of MNIST-format\n"
            "IDX files or IMAGES,LABELS paths, an image folder (DIR/train/<class>/*.png ...), CIFAR binary\n"
            "batches, NumPy .npz/.npy, or CSV/TSV tables (--data-format and the other data options:\n"
            "docs/DATA.md). Models: a built-in name, a YAML file, a checkpoint or a .onnx file.\n"
            "Files read and written are regular files: a FIFO, device (also /dev/stdout), socket or\n"
            "directory is refused, and outputs are checked before a command starts its work.\n"
            "On several processes (MPI): mpirun -np N distill train|kd|lm train|lm kd ...\n"
            "(docs/DISTRIBUTED.md).\n");
}

static int dispatch(int argc, char **argv);

/* A rank that stopped (SIGSTOP, a node swapping to death) or hangs is not dead, so MPI's runtime
 * does not end the job and the other ranks wait in their next sum forever. This thread ends such a
 * rank's wait after KD_DIST_TIMEOUT seconds (default 600; 0 = never) with a message, and its exit
 * makes mpirun end the job. Legitimate waits (rank 0 writing a checkpoint) last seconds. */
static void *watchdog(void *arg) {
    double limit = *(const double *)arg;
    for (;;) {
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
        double w = kd_dist_waiting_seconds();
        if (w > limit) {
            fprintf(stderr, "distill (rank %d of %d): error: waited %.0f s for the other ranks in a gradient sum: "
                    "one of them stopped or hangs (KD_DIST_TIMEOUT=%.0f); ending the job\n", kd_dist_rank(),
                    kd_dist_size(), w, limit);
            _exit(KD_EXIT_ERROR);
        }
    }
    return NULL;
}

static void start_watchdog(void) {
    static double limit = 600;
    const char *e = getenv("KD_DIST_TIMEOUT");
    if (e) limit = atof(e);
    pthread_t t;
    if (limit > 0 && !pthread_create(&t, NULL, watchdog, &limit)) pthread_detach(t);
}

/* Under mpirun (dist.h) every rank runs this same program: the training commands share the work;
 * the others, which would only repeat one another, are refused. Ranks other than 0 keep their
 * stderr (a failure on one rank must be seen) and drop stdout, which repeats rank 0's results. */
static int distributed(int argc, char **argv) {
    const char *cmd = argv[1], *sub = argc > 2 ? argv[2] : "";
    int lm_train = !strcmp(cmd, "lm") && (!strcmp(sub, "train") || !strcmp(sub, "kd"));
    if (strcmp(cmd, "train") && strcmp(cmd, "kd") && !lm_train) {
        if (kd_dist_rank() == 0)
            fprintf(stderr, "distill %s: error: this command runs in one process; under mpirun (%d ranks) only "
                    "train, kd, lm train and lm kd share their work: run it without mpirun\n", cmd, kd_dist_size());
        return KD_EXIT_USAGE;
    }
    if (kd_dist_rank() != 0 && !freopen("/dev/null", "w", stdout)) return KD_EXIT_ERROR;
    start_watchdog();
    return -1;
}

int main(int argc, char **argv) {
    start_signal_thread(); /* first: MPI's threads inherit the blocked SIGINT and SIGTERM */
    kd_error err;
    if (kd_dist_init(&argc, &argv, &err)) {
        fprintf(stderr, "distill: error: %s\n", err.msg);
        return KD_EXIT_ERROR;
    }
    int rc = argc >= 2 && kd_dist_size() > 1 ? distributed(argc, argv) : -1;
    if (rc < 0) rc = dispatch(argc, argv);
    fflush(stdout);
    fflush(stderr);
    /* A run that failed on some ranks only would leave the others waiting in their next sum: end
     * the job. (A failure every rank shares, like Ctrl-C, which the ranks agree on, ends normally.) */
    if (rc && rc != KD_EXIT_INTERRUPTED && rc != KD_EXIT_USAGE) kd_dist_abort(rc);
    kd_dist_finalize();
    return rc;
}

static int dispatch(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return KD_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("distill %s (GEMM: %s)\n", kd_version(), kd_gemm_backend());
        return 0;
    }
    if (!strcmp(cmd, "train")) return kd_cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "kd")) return kd_cmd_kd(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return kd_cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return kd_cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "predict")) return kd_cmd_predict(argc - 1, argv + 1);
    if (!strcmp(cmd, "prune")) return kd_cmd_prune(argc - 1, argv + 1);
    if (!strcmp(cmd, "pipeline")) return kd_cmd_pipeline(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize")) return kd_cmd_quantize(argc - 1, argv + 1);
    if (!strcmp(cmd, "export")) return kd_cmd_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "import")) return kd_cmd_import(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return kd_cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "lm")) return kd_cmd_lm(argc - 1, argv + 1);
    if (!strcmp(cmd, "models")) return kd_cmd_models(argc - 1, argv + 1);
    fprintf(stderr, "distill: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return KD_EXIT_USAGE;
}
