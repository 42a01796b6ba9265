/* `distill train` and `distill kd`: train a model with cross-entropy, or distill a student from
 * teacher(s), checkpointing every epoch to OUT.ckpt (with optimizer state, for --resume) and
 * writing the final model-only checkpoint to OUT. Both share every training option. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "distill/compress.h"
#include "distill/distill.h"
#include "distill/quantize.h"

static void help(int kd) {
    if (kd)
        printf("Usage: distill kd --teacher T.safetensors [--student NAME] [options] -o OUT.safetensors\n\n"
               "Distill a student from a teacher (Hinton et al. 2015):\n"
               "  loss = alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE\n\n"
               "Distillation:\n"
               "      --teacher FILE      teacher checkpoint (repeat for an ensemble: soft targets averaged)\n"
               "      --teacher-logits F  or: a NumPy .npy of teacher logits, float32/float16, shape\n"
               "                          [N, classes], one row per training image in file order\n"
               "  -s, --student NAME|FILE student model (default cnn-s)\n"
               "  -T, --temperature X     softmax temperature (default 2)\n"
               "  -a, --alpha X           weight of the distillation term (default 0.95)\n"
               "      --standardize       z-score the logits before /T (logit standardisation, Sun et al. 2024)\n"
               "      --dkd-beta X        use decoupled KD (Zhao et al. 2022) as the distillation term:\n"
               "                          T^2 * (TCKD + X * NCKD); the paper uses X = 8\n"
               "      --loss SPEC         a loss term (repeat to combine; replaces the Hinton default):\n"
               "                          ce | hinton[:T=,alpha=,standardize=] | dkd[:T=,alpha=,beta=]\n"
               "                          fitnet | at | cosine[:project=] | rkd[:distance=,angle=] | sp\n"
               "                          with student=LAYER,teacher=LAYER for the last five (default: the\n"
               "                          input of each model's last layer) and weight=W for any, e.g.\n"
               "                          --loss hinton --loss at:student=relu2,teacher=relu3,weight=1000\n"
               "      --init-from-teacher MAP  copy teacher layers into the student first: 'auto' (same\n"
               "                          name and shape) or student_layer=teacher_layer,...\n"
               "      --search            try a grid of T, alpha and loss weights (--search-budget runs of\n"
               "                          --search-epochs on the validation split, early-stopped), then\n"
               "                          train with the best\n"
               "      --search-epochs N   epochs per search run (default 2)\n"
               "      --search-budget N   at most N search runs (default 8)\n"
               "      --no-cache          run the teacher every step even without augmentation\n"
               "                          (by default its outputs are computed once and cached)\n"
               "Gradients are clipped to norm 2 unless --clip-grad is given.\n"
               "Prints teacher and student test accuracy and their top-1 agreement at the end.\n\n");
    else
        printf("Usage: distill train [options] -o OUT.safetensors\n\n"
               "Train a model with cross-entropy (a teacher, or a student baseline).\n\n");
    printf(
        "Model and data:\n"
        "  -m, --model NAME|FILE   built-in model (distill models), YAML file, or a checkpoint\n"
        "                          to continue from (default: cnn-t for train)\n"
        "  -d, --data SPEC         fashion-mnist (default), a directory of IDX files, or IMAGES,LABELS\n"
        "      --val N             hold out N training images for validation (default 5000; 0 = none)\n"
        "      --limit N           train on the first N training images only\n"
        "  -o, --output FILE       final checkpoint (default model.safetensors); the training state\n"
        "                          goes to FILE.ckpt after every epoch\n"
        "Schedule:\n"
        "  -e, --epochs N          epochs (default 15)\n"
        "  -b, --batch N           batch size (default 128)\n"
        "      --lr X              peak learning rate (default 0.05 SGD, 0.001 AdamW)\n"
        "      --optimizer NAME    sgd (momentum 0.9, Nesterov; default) or adamw\n"
        "      --momentum X        SGD momentum (default 0.9)\n"
        "      --no-nesterov       plain momentum\n"
        "      --weight-decay X    on conv/linear weights (default 5e-4 SGD, 0.01 AdamW)\n"
        "      --schedule NAME     cosine (default), step or const\n"
        "      --warmup E          linear warmup over E epochs (default 0)\n"
        "      --step-epochs N     step schedule: decay every N epochs (default 5)\n"
        "      --step-gamma X      step schedule: decay factor (default 0.1)\n"
        "      --label-smoothing X cross-entropy label smoothing (default 0)\n"
        "      --clip-grad X       clip the global gradient norm to X (default off)\n"
        "Augmentation:\n"
        "      --translate N       random shifts of up to N pixels (Hinton's jitter; default 0)\n"
        "      --hflip             random horizontal flips\n"
        "Pruning while training (gradual magnitude pruning, Zhu & Gupta's AGP schedule):\n"
        "      --prune-sparsity S  prune conv/linear weights to sparsity S (e.g. 0.8), ramping from 0\n"
        "      --prune-scope X     layer (every layer reaches S; default) or global (one threshold)\n"
        "      --prune-end F       the ramp ends after fraction F of the steps (default 0.75)\n"
        "      --prune-every N     update the mask every N steps (default 20)\n"
        "                          (start from a trained checkpoint: --model/--student FILE)\n"
        "%s"
        "Run:\n"
        "      --seed N            seed for init, shuffling, augmentation, dropout (default 1)\n"
        "  -j, --threads N         threads (default 2)\n"
        "      --resume            continue from OUT.ckpt if it exists\n"
        "      --log FILE          append one JSON object per epoch to FILE\n"
        "      --max-steps N       at most N steps per epoch (smoke tests)\n"
        "  -q, --quiet             no progress display\n"
        "      --config FILE       read options from a YAML run file: one key per long option, lists\n"
        "                          for repeated ones (e.g. loss:); the command line overrides it.\n"
        "                          See examples/kd-fitnet.yaml\n\n"
        "Same seed and thread count give bit-identical weights; so does a run resumed after a kill.\n"
        "Example: distill %s\n",
        kd ? "Quantization-aware distillation (start from a trained checkpoint):\n"
             "      --qat BITS          8 or 4: fold batch norm, calibrate int8 activations on the training\n"
             "                          split, then train with fake-quantized weights (int8 per channel, or\n"
             "                          int4 in groups) and activations and the teacher's soft targets;\n"
             "                          writes OUT (fp32, folded) and OUT's .int8.safetensors, evaluated with\n"
             "                          integer arithmetic. Defaults become --epochs 3, --lr 0.005\n"
             "      --qat-group N       int4 weights per group (default 32)\n"
           : "",
        kd ? "kd --teacher teacher.safetensors --student cnn-s -o student.safetensors"
           : "train --model cnn-t --epochs 15 -o teacher.safetensors");
}

enum {
    O_VAL = 256, O_LIMIT, O_LR, O_OPT, O_MOM, O_NONEST, O_WD, O_SCHED, O_WARM, O_STEPE, O_STEPG, O_LS, O_CLIP,
    O_TRANS, O_HFLIP, O_SEED, O_RESUME, O_LOG, O_MAXSTEPS, O_TEACHER, O_TLOGITS, O_NOCACHE, O_DKD, O_LOSS, O_STD,
    O_INIT, O_SEARCH, O_SEARCH_E, O_SEARCH_B, O_CONFIG, O_PRUNE, O_PRUNE_SCOPE, O_PRUNE_END, O_PRUNE_EVERY,
    O_QAT, O_QAT_GROUP
};

#define KD_MAX_TEACHERS 16
#define KD_MAX_LOSS 16

static const struct option opts[] = {
    {"model", 1, 0, 'm'}, {"data", 1, 0, 'd'}, {"output", 1, 0, 'o'}, {"epochs", 1, 0, 'e'},
    {"batch", 1, 0, 'b'}, {"threads", 1, 0, 'j'}, {"quiet", 0, 0, 'q'}, {"help", 0, 0, 'h'},
    {"val", 1, 0, O_VAL}, {"limit", 1, 0, O_LIMIT}, {"lr", 1, 0, O_LR}, {"optimizer", 1, 0, O_OPT},
    {"momentum", 1, 0, O_MOM}, {"no-nesterov", 0, 0, O_NONEST}, {"weight-decay", 1, 0, O_WD},
    {"schedule", 1, 0, O_SCHED}, {"warmup", 1, 0, O_WARM}, {"step-epochs", 1, 0, O_STEPE},
    {"step-gamma", 1, 0, O_STEPG}, {"label-smoothing", 1, 0, O_LS}, {"clip-grad", 1, 0, O_CLIP},
    {"translate", 1, 0, O_TRANS}, {"hflip", 0, 0, O_HFLIP}, {"seed", 1, 0, O_SEED},
    {"resume", 0, 0, O_RESUME}, {"log", 1, 0, O_LOG}, {"max-steps", 1, 0, O_MAXSTEPS}, {"config", 1, 0, O_CONFIG},
    {"dkd-beta", 1, 0, O_DKD}, {"teacher", 1, 0, O_TEACHER}, {"teacher-logits", 1, 0, O_TLOGITS},
    {"no-cache", 0, 0, O_NOCACHE}, {"loss", 1, 0, O_LOSS}, {"standardize", 0, 0, O_STD},
    {"init-from-teacher", 1, 0, O_INIT}, {"search", 0, 0, O_SEARCH}, {"search-epochs", 1, 0, O_SEARCH_E},
    {"search-budget", 1, 0, O_SEARCH_B}, {"prune-sparsity", 1, 0, O_PRUNE}, {"prune-scope", 1, 0, O_PRUNE_SCOPE},
    {"prune-end", 1, 0, O_PRUNE_END}, {"prune-every", 1, 0, O_PRUNE_EVERY},
    {"qat", 1, 0, O_QAT}, {"qat-group", 1, 0, O_QAT_GROUP}, {"student", 1, 0, 's'}, {"temperature", 1, 0, 'T'}, {"alpha", 1, 0, 'a'},
    {0, 0, 0, 0}};

static int run(int argc, char **argv, int kd);
int kd_cmd_train(int argc, char **argv) { return run(argc, argv, 0); }
int kd_cmd_kd(int argc, char **argv) { return run(argc, argv, 1); }

/* Test-set accuracy of teacher and student and the share of images where their top-1 agree. */
static void report_kd(const char *data, kd_model *student, kd_model **teachers, int n_teachers, int threads) {
    kd_dataset test = {0};
    if (kd_cli_load_data("kd", data, "test", &test)) return;
    kd_error err;
    int32_t *ps = malloc(sizeof(int32_t) * (size_t)test.n), *pt = malloc(sizeof(int32_t) * (size_t)test.n);
    kd_eval_result rs, rt;
    if (ps && pt && !kd_evaluate(student, &test, 256, threads, &rs, ps, &err)) {
        if (n_teachers == 1 && !kd_evaluate(teachers[0], &test, 256, threads, &rt, pt, &err)) {
            int agree = 0;
            for (int i = 0; i < test.n; i++) agree += ps[i] == pt[i];
            printf("test accuracy: teacher %s %.2f%%, student %s %.2f%%; top-1 agreement %.2f%%\n", teachers[0]->name,
                   100 * rt.accuracy, student->name, 100 * rs.accuracy, 100.0 * agree / test.n);
        } else {
            printf("test accuracy: student %s %.2f%%\n", student->name, 100 * rs.accuracy);
        }
    }
    free(ps);
    free(pt);
    kd_dataset_free(&test);
}

/* After quantization-aware training: the integer model with the ranges training used, evaluated
 * on the test set with integer arithmetic beside the post-training one it started from, written
 * next to OUT as OUT.int8.safetensors. */
static int qat_finish(const char *C, const char *data, const char *out, const kd_model *m, const kd_calib_ranges *r,
                      const kd_calib_config *qc, const kd_int8_model *q_ptq) {
    kd_dataset test = {0};
    kd_int8_model *q = NULL;
    kd_error err;
    double acc_ptq = 0, acc_qat = 0;
    int rc = 0;
    size_t n = strlen(out);
    char *path = malloc(n + 32);
    if (!path) return KD_EXIT_ERROR;
    if (n > 12 && !strcmp(out + n - 12, ".safetensors")) snprintf(path, n + 32, "%.*s.int8.safetensors", (int)(n - 12), out);
    else snprintf(path, n + 32, "%s.int8", out);
    if (kd_cli_load_data(C, data, "test", &test)) rc = KD_EXIT_ERROR;
    else if (kd_int8_build(m, r, qc, &q, &err) || kd_int8_evaluate(q_ptq, &test, 256, qc->threads, &acc_ptq, NULL, &err) ||
             kd_int8_evaluate(q, &test, 256, qc->threads, &acc_qat, NULL, &err) || kd_int8_save(path, q, &err))
        rc = kd_cli_fail(C, &err);
    else
        printf("integer test accuracy (%s weights): %.2f%% after quantization-aware training, %.2f%% post-training "
               "(%+.2f); wrote %s\n", qc->weight_bits == 4 ? "int4" : "int8", 100 * acc_qat, 100 * acc_ptq,
               100 * (acc_qat - acc_ptq), path);
    kd_int8_free(q);
    kd_dataset_free(&test);
    free(path);
    return rc;
}

/* ---- budgeted search (--search) ----
 * A grid over T, alpha and a common scale of the non-response terms' weights, cut to the budget by
 * taking evenly spaced points; each candidate trains --search-epochs epochs from the same
 * initialisation on the training split and is scored on the validation split held out of the
 * training set. A candidate stops early when, after an epoch, it trails the best validation
 * accuracy any earlier candidate had at that epoch by more than 2 points. */
typedef struct {
    float best_at[64];
    int n_epochs;
    float acc_at[64];
} search_ctx;

static int search_on_epoch(void *ctx, int epoch, const kd_eval_result *val) {
    search_ctx *c = ctx;
    if (epoch > 64) return 0;
    c->acc_at[epoch - 1] = (float)val->accuracy;
    c->n_epochs = epoch;
    return c->best_at[epoch - 1] > 0.f && val->accuracy < c->best_at[epoch - 1] - 0.02f;
}

static void apply_candidate(kd_loss_term *dst, const kd_loss_term *src, int n, float T, float alpha, float fscale) {
    for (int k = 0; k < n; k++) {
        dst[k] = src[k];
        if (dst[k].kind == KD_LOSS_HINTON || dst[k].kind == KD_LOSS_DKD) dst[k].T = T;
        if (dst[k].kind == KD_LOSS_HINTON) dst[k].alpha = alpha;
        if (dst[k].kind >= KD_LOSS_FITNET) dst[k].weight *= fscale;
    }
}

static int has_kind(const kd_loss_term *t, int n, int lo, int hi) {
    for (int k = 0; k < n; k++)
        if ((int)t[k].kind >= lo && (int)t[k].kind <= hi) return 1;
    return 0;
}

/* Returns 0 and sets the best terms, or an exit code. */
static int run_search(const char *C, const kd_model *init, uint64_t seed, const kd_loss_term *terms, int n_terms,
                      kd_teacher *teacher, const kd_dataset *train, const kd_dataset *val, const kd_train_config *base,
                      int search_epochs, int budget, kd_loss_term *best_terms) {
    static const float Ts[] = {1, 2, 4, 8}, alphas[] = {0.5f, 0.9f}, fscales[] = {1.f, 0.1f, 10.f};
    int nT = 4, nA = has_kind(terms, n_terms, KD_LOSS_HINTON, KD_LOSS_HINTON) ? 2 : 1;
    int nF = has_kind(terms, n_terms, KD_LOSS_FITNET, KD_LOSS_SP) ? 3 : 1;
    int total = nT * nA * nF, runs = budget < total ? budget : total;
    if (!val || val->n == 0) return kd_cli_usage_error(C, "--search needs a validation split (--val N > 0)");
    fprintf(stderr, "distill kd: search: %d of %d candidates (T x alpha x feature-weight scale), %d epoch%s each, "
                    "scored on %d held-out training images\n", runs, total, search_epochs, search_epochs > 1 ? "s" : "", val->n);
    search_ctx ctx = {0};
    float best = -1.f;
    printf("search: %-4s %-6s %-7s %-9s %s\n", "T", "alpha", "fscale", "val acc", "epochs");
    for (int r = 0; r < runs; r++) {
        int g = (int)((long long)r * total / runs);
        float T = Ts[g % nT], alpha = alphas[(g / nT) % nA], fs = fscales[g / (nT * nA)];
        kd_loss_term cand[KD_MAX_LOSS];
        apply_candidate(cand, terms, n_terms, T, alpha, fs);
        kd_model *m = NULL;
        kd_distiller *d = NULL;
        kd_error err;
        kd_teacher t = *teacher;
        t.T = T;
        /* every candidate starts from the final run's initial weights */
        if (kd_model_from_yaml(&m, init->yaml, init->name, seed, &err) ||
            kd_distiller_create(&d, cand, n_terms, m, &t, seed, &err)) {
            kd_model_free(m);
            return kd_cli_fail(C, &err);
        }
        memcpy(m->params, init->params, sizeof(float) * init->n_params);
        memcpy(m->buffers, init->buffers, sizeof(float) * init->n_buffers);
        kd_train_config c = *base;
        c.epochs = search_epochs;
        c.distiller = d;
        c.checkpoint_path = NULL;
        c.log_path = NULL;
        c.resume = 0;
        c.progress = 0;
        c.on_epoch = search_on_epoch;
        c.on_epoch_ctx = &ctx;
        ctx.n_epochs = 0;
        kd_train_result res;
        kd_status st = kd_train(m, train, val, &c, &res, &err);
        kd_distiller_free(d);
        kd_model_free(m);
        if (st == KD_STATUS_INTERRUPTED) return kd_cli_fail(C, &err);
        float acc = st ? 0.f : ctx.acc_at[ctx.n_epochs - 1];
        char accs[32];
        snprintf(accs, sizeof accs, st ? "diverged" : "%.2f%%", 100.0 * acc);
        printf("search: %-4g %-6g %-7g %-9s %d%s\n", (double)T, nA > 1 ? (double)alpha : (double)terms[0].alpha,
               (double)fs, accs, ctx.n_epochs, ctx.n_epochs < search_epochs ? " (stopped early)" : "");
        fflush(stdout);
        if (!st && ctx.n_epochs == search_epochs && acc > best) {
            best = acc;
            memcpy(best_terms, cand, sizeof(kd_loss_term) * (size_t)n_terms);
        }
        for (int e = 0; !st && e < ctx.n_epochs; e++)
            if (ctx.acc_at[e] > ctx.best_at[e]) ctx.best_at[e] = ctx.acc_at[e];
    }
    if (best < 0.f) {
        fprintf(stderr, "distill kd: error: every search candidate diverged\n");
        return KD_EXIT_ERROR;
    }
    char spec[256];
    printf("search: best (validation %.2f%%):", 100.0 * best);
    for (int k = 0; k < n_terms; k++) {
        kd_loss_term_format(&best_terms[k], spec, sizeof spec);
        printf(" --loss %s", spec);
    }
    printf("\n");
    return 0;
}

static int run(int argc, char **argv, int kd) {
    const char *C = kd ? "kd" : "train", *model_arg = kd ? "cnn-s" : "cnn-t", *data = "fashion-mnist";
    const char *out = kd ? "student.safetensors" : "model.safetensors";
    const char *teacher_paths[KD_MAX_TEACHERS], *logits_path = NULL, *init_map = NULL;
    kd_loss_term terms[KD_MAX_LOSS];
    int n_teacher_paths = 0, n_terms = 0, no_cache = 0, clip_set = 0, standardize = 0, search = 0;
    int search_epochs = 2, search_budget = 8, n_file = 0, cli_loss = 0, cli_teacher = 0;
    /* T = 2, alpha 0.95, gradient norm clipped at 2: the highest mean validation accuracy of the
     * recipes tried on mlp-s from cnn-t (10 seeds, 10 epochs; also higher than T = 2, alpha 0.9,
     * clip 5 on cnn-s), docs/BENCHMARKS.md "Choosing the default". */
    float dkd_beta = 0.f, T = 2.f, alpha = 0.95f;
    float prune_s = 0.f, prune_end = 0.75f;
    int prune_every = 20;
    kd_prune_scope prune_scope = KD_PRUNE_PER_LAYER;
    kd_prune_schedule prune = {0};
    char **args = NULL;
    kd_train_config cfg;
    kd_train_config_default(&cfg);
    int n_val = 5000, limit = 0, lr_set = 0, wd_set = 0, seed = 1, epochs_set = 0;
    kd_calib_config qat;
    kd_calib_config_default(&qat);
    qat.weight_bits = 0; /* 0 = no --qat */
    /* a run file first: its options come before the command line's, which so override them */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--config") || !strncmp(argv[i], "--config=", 9)) {
            const char *path = argv[i][8] == '=' ? argv[i] + 9 : i + 1 < argc ? argv[i + 1] : NULL;
            if (!path) return kd_cli_usage_error(C, "--config needs a file");
            if (!kd_cli_config_args(C, path, opts, &argc, &argv, &n_file)) return KD_EXIT_USAGE;
            args = argv;
            break;
        }
    int rc = 0;
#define USAGE(...) do { rc = __VA_ARGS__; goto out_args; } while (0)
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "m:d:o:e:b:j:qhs:T:a:", opts, NULL)) != -1;) {
        int from_cli = optind > n_file;
        if (!kd && (c == 's' || c == 'T' || c == 'a' || (c >= O_TEACHER && c <= O_SEARCH_B) || c == O_QAT ||
                    c == O_QAT_GROUP))
            USAGE(kd_cli_usage_error(C, "this is a distillation option: use 'distill kd'"));
        switch (c) {
        case 'm': case 's': model_arg = optarg; break;
        case 'T': if (!kd_cli_float(C, "--temperature", optarg, 0.01, 1000, &T)) USAGE(KD_EXIT_USAGE); break;
        case 'a': if (!kd_cli_float(C, "--alpha", optarg, 0, 1, &alpha)) USAGE(KD_EXIT_USAGE); break;
        case O_TEACHER:
            if (from_cli && !cli_teacher++) n_teacher_paths = 0; /* the command line's list replaces the file's */
            if (n_teacher_paths == KD_MAX_TEACHERS) USAGE(kd_cli_usage_error(C, "at most %d teachers", KD_MAX_TEACHERS));
            teacher_paths[n_teacher_paths++] = optarg;
            break;
        case O_LOSS: {
            if (from_cli && !cli_loss++) n_terms = 0;
            if (n_terms == KD_MAX_LOSS) USAGE(kd_cli_usage_error(C, "at most %d loss terms", KD_MAX_LOSS));
            kd_error e;
            if (kd_loss_term_parse(&terms[n_terms], optarg, &e)) USAGE(kd_cli_usage_error(C, "--loss: %s", e.msg));
            n_terms++;
            break;
        }
        case O_STD: standardize = 1; break;
        case O_INIT: init_map = optarg; break;
        case O_SEARCH: search = 1; break;
        case O_SEARCH_E: if (!kd_cli_int(C, "--search-epochs", optarg, 1, 64, &search_epochs)) USAGE(KD_EXIT_USAGE); break;
        case O_SEARCH_B: if (!kd_cli_int(C, "--search-budget", optarg, 1, 1000, &search_budget)) USAGE(KD_EXIT_USAGE); break;
        case O_CONFIG: break; /* read above */
        case O_PRUNE: if (!kd_cli_float(C, "--prune-sparsity", optarg, 0, 0.999, &prune_s)) USAGE(KD_EXIT_USAGE); break;
        case O_PRUNE_SCOPE:
            if (!strcmp(optarg, "layer")) prune_scope = KD_PRUNE_PER_LAYER;
            else if (!strcmp(optarg, "global")) prune_scope = KD_PRUNE_GLOBAL;
            else USAGE(kd_cli_usage_error(C, "--prune-scope must be layer or global, got '%s'", optarg));
            break;
        case O_PRUNE_END: if (!kd_cli_float(C, "--prune-end", optarg, 0, 1, &prune_end)) USAGE(KD_EXIT_USAGE); break;
        case O_PRUNE_EVERY: if (!kd_cli_int(C, "--prune-every", optarg, 1, 1 << 30, &prune_every)) USAGE(KD_EXIT_USAGE); break;
        case O_QAT:
            if (!strcmp(optarg, "8") || !strcmp(optarg, "int8")) qat.weight_bits = 8;
            else if (!strcmp(optarg, "4") || !strcmp(optarg, "int4")) qat.weight_bits = 4;
            else USAGE(kd_cli_usage_error(C, "--qat must be 8 or 4, got '%s'", optarg));
            break;
        case O_QAT_GROUP: if (!kd_cli_int(C, "--qat-group", optarg, 1, 1 << 20, &qat.weight_group)) USAGE(KD_EXIT_USAGE); break;
        case O_TLOGITS: logits_path = optarg; break;
        case O_NOCACHE: no_cache = 1; break;
        case O_DKD: if (!kd_cli_float(C, "--dkd-beta", optarg, 0, 1000, &dkd_beta)) USAGE(KD_EXIT_USAGE); break;
        case 'd': data = optarg; break;
        case 'o': out = optarg; break;
        case 'e': if (!kd_cli_int(C, "--epochs", optarg, 1, 100000, &cfg.epochs)) USAGE(KD_EXIT_USAGE); epochs_set = 1; break;
        case 'b': if (!kd_cli_int(C, "--batch", optarg, 2, 65536, &cfg.batch)) USAGE(KD_EXIT_USAGE); break;
        case 'j': if (!kd_cli_int(C, "--threads", optarg, 1, 256, &cfg.threads)) USAGE(KD_EXIT_USAGE); break;
        case 'q': cfg.progress = 0; break;
        case 'h': help(kd); USAGE(0);
        case O_VAL: if (!kd_cli_int(C, "--val", optarg, 0, 1 << 30, &n_val)) USAGE(KD_EXIT_USAGE); break;
        case O_LIMIT: if (!kd_cli_int(C, "--limit", optarg, 2, 1 << 30, &limit)) USAGE(KD_EXIT_USAGE); break;
        case O_LR: if (!kd_cli_float(C, "--lr", optarg, 1e-9, 100, &cfg.optim.lr)) USAGE(KD_EXIT_USAGE); lr_set = 1; break;
        case O_OPT:
            if (!strcmp(optarg, "sgd")) cfg.optim.type = KD_OPT_SGD;
            else if (!strcmp(optarg, "adamw")) cfg.optim.type = KD_OPT_ADAMW;
            else USAGE(kd_cli_usage_error(C, "--optimizer must be sgd or adamw, got '%s'", optarg));
            break;
        case O_MOM: if (!kd_cli_float(C, "--momentum", optarg, 0, 0.999, &cfg.optim.momentum)) USAGE(KD_EXIT_USAGE); break;
        case O_NONEST: cfg.optim.nesterov = 0; break;
        case O_WD: if (!kd_cli_float(C, "--weight-decay", optarg, 0, 1, &cfg.optim.weight_decay)) USAGE(KD_EXIT_USAGE); wd_set = 1; break;
        case O_SCHED:
            if (!strcmp(optarg, "cosine")) cfg.optim.sched = KD_SCHED_COSINE;
            else if (!strcmp(optarg, "step")) cfg.optim.sched = KD_SCHED_STEP;
            else if (!strcmp(optarg, "const")) cfg.optim.sched = KD_SCHED_CONST;
            else USAGE(kd_cli_usage_error(C, "--schedule must be cosine, step or const, got '%s'", optarg));
            break;
        case O_WARM: if (!kd_cli_float(C, "--warmup", optarg, 0, 1000, &cfg.optim.warmup_epochs)) USAGE(KD_EXIT_USAGE); break;
        case O_STEPE: if (!kd_cli_int(C, "--step-epochs", optarg, 1, 100000, &cfg.optim.step_epochs)) USAGE(KD_EXIT_USAGE); break;
        case O_STEPG: if (!kd_cli_float(C, "--step-gamma", optarg, 0, 1, &cfg.optim.step_gamma)) USAGE(KD_EXIT_USAGE); break;
        case O_LS: if (!kd_cli_float(C, "--label-smoothing", optarg, 0, 0.999, &cfg.label_smoothing)) USAGE(KD_EXIT_USAGE); break;
        case O_CLIP: if (!kd_cli_float(C, "--clip-grad", optarg, 0, 1e9, &cfg.clip_grad_norm)) USAGE(KD_EXIT_USAGE); clip_set = 1; break;
        case O_TRANS: if (!kd_cli_int(C, "--translate", optarg, 0, 16, &cfg.aug.translate)) USAGE(KD_EXIT_USAGE); break;
        case O_HFLIP: cfg.aug.hflip = 1; break;
        case O_SEED: if (!kd_cli_int(C, "--seed", optarg, 0, 2147483647, &seed)) USAGE(KD_EXIT_USAGE); break;
        case O_RESUME: cfg.resume = 1; break;
        case O_LOG: cfg.log_path = optarg; break;
        case O_MAXSTEPS: if (!kd_cli_int(C, "--max-steps", optarg, 1, 1 << 30, &cfg.max_steps_per_epoch)) USAGE(KD_EXIT_USAGE); break;
        default: USAGE(kd_cli_usage_error(C, "unknown option"));
        }
    }
    if (optind < argc) USAGE(kd_cli_usage_error(C, "unexpected argument '%s'", argv[optind]));
    kd_cli_threads(cfg.threads);
    if (kd && !n_teacher_paths == !logits_path)
        USAGE(kd_cli_usage_error(C, "give either --teacher (one or more) or --teacher-logits"));
    if (cfg.optim.type == KD_OPT_ADAMW) {
        if (!lr_set) cfg.optim.lr = 1e-3f;
        if (!wd_set) cfg.optim.weight_decay = 0.01f;
    }
    cfg.seed = (uint64_t)seed;
    if (qat.weight_bits) { /* a short fine-tune of a trained model */
        if (!epochs_set) cfg.epochs = 3;
        if (!lr_set) cfg.optim.lr *= 0.1f;
    }
    if (kd) {
        /* Without --loss: Hinton's loss (or DKD + CE with --dkd-beta) from -T, -a, --standardize. */
        if (!n_terms && dkd_beta > 0.f) {
            kd_loss_term_default(&terms[0], KD_LOSS_DKD);
            terms[0].weight = alpha;
            terms[0].dkd_beta = dkd_beta;
            terms[0].standardize = standardize;
            kd_loss_term_default(&terms[1], KD_LOSS_CE);
            terms[1].weight = 1.f - alpha;
            n_terms = 2;
        } else if (!n_terms) {
            kd_loss_term_default(&terms[0], KD_LOSS_HINTON);
            terms[0].standardize = standardize;
            n_terms = 1;
        }
        for (int k = 0; k < n_terms; k++) {
            if (terms[k].T <= 0.f) terms[k].T = T;
            if (terms[k].alpha < 0.f) terms[k].alpha = alpha;
        }
        /* Distillation is clipped by default: a confident teacher (logits ~30+) makes the T^2-scaled
         * term act like a several times larger learning rate, and a student without batch norm then
         * collapses to chance (seen here: cnn-s from cnn-t at T=4, alpha=0.9 -> 10%; clipped at 5 ->
         * 83.6% after one epoch). 2 is the default chosen on validation (above). */
        if (!clip_set) cfg.clip_grad_norm = 2.f;
    }
    if (cfg.log_path) {
        FILE *f = fopen(cfg.log_path, "a");
        if (!f) {
            fprintf(stderr, "distill %s: error: cannot write the log %s\n", C, cfg.log_path);
            USAGE(KD_EXIT_ERROR);
        }
        fclose(f);
    }

    kd_error err;
    kd_model *m = NULL;
    kd_dataset train = {0}, val = {0};
    kd_model *teachers[KD_MAX_TEACHERS] = {0};
    kd_teacher teacher = {0};
    kd_distiller *dist = NULL;
    kd_calib_ranges qranges = {0};
    kd_int8_model *q_ptq = NULL;
    float *table = NULL, *feat_tabs[KD_MAX_FEATS] = {0};
    char *ckpt = NULL;
    kd_status st;
    if (!strstr(model_arg, ".safetensors")) {
        if (kd_model_create(&m, model_arg, (uint64_t)seed, &err)) {
            rc = kd_cli_fail(C, &err);
            goto out;
        }
    } else if (kd_cli_load_model(C, model_arg, &m)) {
        rc = KD_EXIT_ERROR;
        goto out;
    }
    if (kd_cli_load_data(C, data, "train", &train)) {
        rc = KD_EXIT_ERROR;
        goto out;
    }
    if (limit && limit < train.n) kd_dataset_truncate(&train, limit);
    if (n_val >= train.n) {
        rc = kd_cli_usage_error(C, "--val %d leaves no training data (%d images)", n_val, train.n);
        goto out;
    }
    if (n_val > 0 && kd_dataset_split(&train, &val, n_val, (uint64_t)seed, &err)) {
        rc = kd_cli_fail(C, &err);
        goto out;
    }
    if (qat.weight_bits) {
        /* Quantization-aware distillation: fold BN, fix the int8 activation ranges from the trained
         * model (deterministic, so --resume recomputes the same ones), then train with fake
         * quantization. The teacher is untouched. */
        kd_model *f = NULL;
        int nf = 0;
        if (!strstr(model_arg, ".safetensors")) {
            rc = kd_cli_usage_error(C, "--qat fine-tunes a trained model: give its checkpoint with --student FILE");
            goto out;
        }
        if ((st = kd_fold_batchnorm(m, &f, &nf, &err))) {
            rc = kd_cli_fail(C, &err);
            goto out;
        }
        kd_model_free(m);
        m = f;
        qat.threads = cfg.threads;
        if ((st = kd_int8_calibrate(m, &train, &qat, &qranges, &err)) ||
            (st = kd_int8_build(m, &qranges, &qat, &q_ptq, &err)) || (st = kd_fake_quant_attach(m, q_ptq, &err))) {
            rc = kd_cli_fail(C, &err);
            goto out;
        }
        char wf[48] = "int8 per channel";
        if (qat.weight_bits == 4) snprintf(wf, sizeof wf, "int4 in groups of %d", qat.weight_group);
        fprintf(stderr, "distill %s: quantization-aware training: %d batch norms folded, int8 activation ranges from "
                        "%d training images, weights %s\n", C, nf, qat.n_images, wf);
    }
    /* Teachers: checkpoints run online (or cached), or a logits table from another framework. */
    if (kd) {
        for (int k = 0; k < n_teacher_paths; k++)
            if (kd_cli_load_model(C, teacher_paths[k], &teachers[k])) {
                rc = KD_EXIT_ERROR;
                goto out;
            }
        teacher = kd_teacher_online(teachers, n_teacher_paths, T);
        if (logits_path) {
            int n_rows = 0, n_cls = 0;
            if ((st = kd_npy_load_logits(logits_path, &table, &n_rows, &n_cls, &err))) {
                rc = kd_cli_fail(C, &err);
                goto out;
            }
            int want = train.n + val.n; /* one row per image of the training file */
            if (limit) {
                kd_dataset full = {0};
                if (!kd_dataset_load(&full, data, "train", &err)) want = full.n;
                kd_dataset_free(&full);
            }
            if (n_rows != want) {
                fprintf(stderr, "distill kd: error: %s has %d rows, the training set of %s has %d images\n",
                        logits_path, n_rows, data, want);
                rc = KD_EXIT_ERROR;
                goto out;
            }
            teacher.logits = table;
            teacher.n_samples = n_rows;
            teacher.n_classes = n_cls;
        }
        /* resolves the terms' layers and registers the teacher features they need */
        if ((st = kd_distiller_create(&dist, terms, n_terms, m, &teacher, (uint64_t)seed, &err))) {
            rc = kd_cli_fail(C, &err);
            goto out;
        }
        if (init_map) {
            char rep[1024];
            if (!n_teacher_paths) {
                rc = kd_cli_usage_error(C, "--init-from-teacher needs a teacher checkpoint");
                goto out;
            }
            if ((st = kd_init_from_teacher(m, teachers[0], init_map, rep, sizeof rep, &err))) {
                rc = kd_cli_fail(C, &err);
                goto out;
            }
            fprintf(stderr, "distill kd: student initialised from the teacher: %s\n", rep);
        }
        size_t cache_bytes = (size_t)(train.n + val.n) * (size_t)teacher.n_classes * sizeof(float);
        for (int f = 0; f < teacher.n_feats; f++) cache_bytes += (size_t)(train.n + val.n) * teacher.feat_size[f] * sizeof(float);
        if (!logits_path && !cfg.aug.translate && !cfg.aug.hflip && !no_cache) {
            if (cache_bytes > ((size_t)6 << 30)) {
                fprintf(stderr, "distill kd: the teacher cache would take %.1f GB: running the teacher every step\n",
                        cache_bytes / 1e9);
            } else {
                double t0 = kd_now();
                int n_rows = 0;
                if ((st = kd_teacher_cache(&teacher, &train, cfg.batch, cfg.threads, &table, feat_tabs, &n_rows, &err))) {
                    rc = kd_cli_fail(C, &err);
                    goto out;
                }
                teacher.logits = table;
                teacher.n_samples = n_rows;
                for (int f = 0; f < teacher.n_feats; f++) teacher.feat_table[f] = feat_tabs[f];
                fprintf(stderr, "distill kd: teacher outputs for %d images computed once and cached (%.1fs, %.0f MB)\n",
                        train.n, kd_now() - t0, cache_bytes / 1e6);
            }
        }
        if (search) {
            kd_loss_term best[KD_MAX_LOSS];
            kd_train_config sc = cfg;
            if ((rc = run_search(C, m, (uint64_t)seed, terms, n_terms, &teacher, &train, &val, &sc,
                                 search_epochs, search_budget, best)))
                goto out;
            memcpy(terms, best, sizeof(kd_loss_term) * (size_t)n_terms);
            T = terms[0].T;
            teacher.T = T;
            kd_distiller_free(dist);
            dist = NULL;
            if ((st = kd_distiller_create(&dist, terms, n_terms, m, &teacher, (uint64_t)seed, &err))) {
                rc = kd_cli_fail(C, &err);
                goto out;
            }
        }
        cfg.distiller = dist;
    }
    if (prune_s > 0.f) {
        int steps = (train.n + cfg.batch - 1) / cfg.batch;
        if (train.n % cfg.batch == 1) steps--;
        if (cfg.max_steps_per_epoch > 0 && steps > cfg.max_steps_per_epoch) steps = cfg.max_steps_per_epoch;
        if ((st = kd_prune_mask_init(&prune.mask, m, &err))) {
            rc = kd_cli_fail(C, &err);
            goto out;
        }
        prune.s_final = prune_s;
        prune.end = (long long)((double)prune_end * cfg.epochs * steps);
        prune.every = prune_every;
        prune.scope = prune_scope;
        cfg.prune = &prune;
        fprintf(stderr, "distill %s: pruning conv/linear weights to %.1f%% sparsity (%s), AGP over steps 0-%lld, "
                        "mask updated every %d steps\n", C, 100.0 * prune_s,
                prune_scope == KD_PRUNE_GLOBAL ? "global" : "per layer", prune.end, prune_every);
    }
    size_t plen = strlen(out) + 8;
    ckpt = malloc(plen);
    snprintf(ckpt, plen, "%s.ckpt", out);
    cfg.checkpoint_path = ckpt;
    if (!cfg.resume && access(ckpt, F_OK) == 0)
        fprintf(stderr, "distill %s: note: %s exists and will be overwritten (use --resume to continue it)\n", C,
                ckpt);
    cfg.stop = &kd_cli_stop;
    kd_cli_install_signals();

    char pb[32];
    kd_cli_bytes(pb, sizeof pb, (double)kd_model_param_bytes(m));
    fprintf(stderr, "distill %s: %s (%zu parameters, %s, %.1f M MACs/image) on %s: %d train / %d val images, "
                    "%d epochs, batch %d, %s lr %g, %d threads, GEMM %s\n",
            C, m->name, m->n_params, pb, kd_model_macs(m) / 1e6, data, train.n, val.n, cfg.epochs, cfg.batch,
            cfg.optim.type == KD_OPT_SGD ? "SGD" : "AdamW", (double)cfg.optim.lr, cfg.threads, kd_gemm_backend());
    if (kd) {
        fprintf(stderr, "distill kd: teacher %s%s; loss", logits_path ? logits_path : teacher_paths[0],
                n_teacher_paths > 1 ? " (+ ensemble)" : "");
        for (int k = 0; k < n_terms; k++) {
            char spec[256];
            kd_loss_term_format(kd_distiller_term(dist, k), spec, sizeof spec);
            fprintf(stderr, "%s %s", k ? " +" : "", spec);
        }
        fprintf(stderr, "\n");
    }
    kd_train_result res;
    st = kd_train(m, &train, n_val > 0 ? &val : NULL, &cfg, &res, &err);
    if (st) {
        rc = kd_cli_fail(C, &err);
        if (st == KD_STATUS_INTERRUPTED) fprintf(stderr, "Continue with the same command and --resume.\n");
    } else if ((st = kd_checkpoint_save(out, m, NULL, NULL, &err))) {
        rc = kd_cli_fail(C, &err);
    } else {
        char dur[32];
        kd_format_duration(dur, sizeof dur, res.train_seconds);
        if (res.resumed_step >= 0) printf("resumed %s at step %lld\n", ckpt, res.resumed_step);
        printf("trained %s: %d epochs in %s, %.0f samples/s", m->name, res.epochs_run, dur, res.samples_per_sec);
        if (val.n) printf(", validation accuracy %.2f%%", 100 * res.last_val.accuracy);
        printf("\nwrote %s (model) and %s (training state for --resume)\n", out, ckpt);
        if (cfg.prune) printf("weight sparsity of conv/linear layers: %.2f%%\n", 100.0 * kd_model_weight_sparsity(m));
        if (kd) report_kd(data, m, teachers, n_teacher_paths, cfg.threads);
        if (qat.weight_bits) rc = qat_finish(C, data, out, m, &qranges, &qat, q_ptq);
    }
out:
    kd_calib_ranges_free(&qranges);
    kd_int8_free(q_ptq);
    kd_prune_mask_free(&prune.mask);
    free(ckpt);
    free(table);
    for (int f = 0; f < KD_MAX_FEATS; f++) free(feat_tabs[f]);
    kd_distiller_free(dist);
    for (int k = 0; k < n_teacher_paths; k++) kd_model_free(teachers[k]);
    kd_dataset_free(&train);
    kd_dataset_free(&val);
    kd_model_free(m);
out_args:
    if (args) kd_cli_free_args(argc, args);
    return rc;
#undef USAGE
}
