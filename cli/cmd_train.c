/* `distill train` and `distill kd`: train a model with cross-entropy, or distill a student from
 * teacher(s), checkpointing every epoch to OUT.ckpt (with optimizer state, for --resume) and
 * writing the final model-only checkpoint to OUT. Both share every training option. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "distill/distill.h"

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
               "  -T, --temperature X     softmax temperature (default 4)\n"
               "  -a, --alpha X           weight of the distillation term (default 0.9)\n"
               "      --dkd-beta X        use decoupled KD (Zhao et al. 2022) as the distillation term:\n"
               "                          T^2 * (TCKD + X * NCKD); the paper uses X = 8\n"
               "                          (gradients are clipped to norm 5 unless --clip-grad is given)\n"
               "      --no-cache          run the teacher every step even without augmentation\n"
               "                          (by default its outputs are computed once and cached)\n"
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
        "Run:\n"
        "      --seed N            seed for init, shuffling, augmentation, dropout (default 1)\n"
        "  -j, --threads N         threads (default 2)\n"
        "      --resume            continue from OUT.ckpt if it exists\n"
        "      --log FILE          append one JSON object per epoch to FILE\n"
        "      --max-steps N       at most N steps per epoch (smoke tests)\n"
        "  -q, --quiet             no progress display\n\n"
        "Same seed and thread count give bit-identical weights; so does a run resumed after a kill.\n"
        "Example: distill %s\n",
        kd ? "kd --teacher teacher.safetensors --student cnn-s -o student.safetensors"
           : "train --model cnn-t --epochs 15 -o teacher.safetensors");
}

enum {
    O_VAL = 256, O_LIMIT, O_LR, O_OPT, O_MOM, O_NONEST, O_WD, O_SCHED, O_WARM, O_STEPE, O_STEPG, O_LS, O_CLIP,
    O_TRANS, O_HFLIP, O_SEED, O_RESUME, O_LOG, O_MAXSTEPS, O_TEACHER, O_TLOGITS, O_NOCACHE, O_DKD
};

#define KD_MAX_TEACHERS 16

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

static int run(int argc, char **argv, int kd) {
    static const struct option opts[] = {
        {"model", 1, 0, 'm'}, {"data", 1, 0, 'd'}, {"output", 1, 0, 'o'}, {"epochs", 1, 0, 'e'},
        {"batch", 1, 0, 'b'}, {"threads", 1, 0, 'j'}, {"quiet", 0, 0, 'q'}, {"help", 0, 0, 'h'},
        {"val", 1, 0, O_VAL}, {"limit", 1, 0, O_LIMIT}, {"lr", 1, 0, O_LR}, {"optimizer", 1, 0, O_OPT},
        {"momentum", 1, 0, O_MOM}, {"no-nesterov", 0, 0, O_NONEST}, {"weight-decay", 1, 0, O_WD},
        {"schedule", 1, 0, O_SCHED}, {"warmup", 1, 0, O_WARM}, {"step-epochs", 1, 0, O_STEPE},
        {"step-gamma", 1, 0, O_STEPG}, {"label-smoothing", 1, 0, O_LS}, {"clip-grad", 1, 0, O_CLIP},
        {"translate", 1, 0, O_TRANS}, {"hflip", 0, 0, O_HFLIP}, {"seed", 1, 0, O_SEED},
        {"resume", 0, 0, O_RESUME}, {"log", 1, 0, O_LOG}, {"max-steps", 1, 0, O_MAXSTEPS},
        {"dkd-beta", 1, 0, O_DKD}, {"teacher", 1, 0, O_TEACHER}, {"teacher-logits", 1, 0, O_TLOGITS}, {"no-cache", 0, 0, O_NOCACHE},
        {"student", 1, 0, 's'}, {"temperature", 1, 0, 'T'}, {"alpha", 1, 0, 'a'}, {0, 0, 0, 0}};
    const char *C = kd ? "kd" : "train", *model_arg = kd ? "cnn-s" : "cnn-t", *data = "fashion-mnist";
    const char *out = kd ? "student.safetensors" : "model.safetensors";
    const char *teacher_paths[KD_MAX_TEACHERS], *logits_path = NULL;
    int n_teacher_paths = 0, no_cache = 0, clip_set = 0;
    kd_train_config cfg;
    kd_train_config_default(&cfg);
    int n_val = 5000, limit = 0, lr_set = 0, wd_set = 0, seed = 1;
    optind = 1;
    cfg.kd_temperature = 4.f;
    cfg.kd_alpha = 0.9f;
    for (int c; (c = getopt_long(argc, argv, "m:d:o:e:b:j:qhs:T:a:", opts, NULL)) != -1;) {
        if (!kd && (c == 's' || c == 'T' || c == 'a' || c == O_TEACHER || c == O_TLOGITS || c == O_NOCACHE || c == O_DKD))
            return kd_cli_usage_error(C, "this is a distillation option: use 'distill kd'");
        switch (c) {
        case 'm': case 's': model_arg = optarg; break;
        case 'T': if (!kd_cli_float(C, "--temperature", optarg, 0.01, 1000, &cfg.kd_temperature)) return KD_EXIT_USAGE; break;
        case 'a': if (!kd_cli_float(C, "--alpha", optarg, 0, 1, &cfg.kd_alpha)) return KD_EXIT_USAGE; break;
        case O_TEACHER:
            if (n_teacher_paths == KD_MAX_TEACHERS) return kd_cli_usage_error(C, "at most %d teachers", KD_MAX_TEACHERS);
            teacher_paths[n_teacher_paths++] = optarg;
            break;
        case O_TLOGITS: logits_path = optarg; break;
        case O_NOCACHE: no_cache = 1; break;
        case O_DKD: if (!kd_cli_float(C, "--dkd-beta", optarg, 0, 1000, &cfg.dkd_beta)) return KD_EXIT_USAGE; break;
        case 'd': data = optarg; break;
        case 'o': out = optarg; break;
        case 'e': if (!kd_cli_int(C, "--epochs", optarg, 1, 100000, &cfg.epochs)) return KD_EXIT_USAGE; break;
        case 'b': if (!kd_cli_int(C, "--batch", optarg, 2, 65536, &cfg.batch)) return KD_EXIT_USAGE; break;
        case 'j': if (!kd_cli_int(C, "--threads", optarg, 1, 256, &cfg.threads)) return KD_EXIT_USAGE; break;
        case 'q': cfg.progress = 0; break;
        case 'h': help(kd); return 0;
        case O_VAL: if (!kd_cli_int(C, "--val", optarg, 0, 1 << 30, &n_val)) return KD_EXIT_USAGE; break;
        case O_LIMIT: if (!kd_cli_int(C, "--limit", optarg, 2, 1 << 30, &limit)) return KD_EXIT_USAGE; break;
        case O_LR: if (!kd_cli_float(C, "--lr", optarg, 1e-9, 100, &cfg.optim.lr)) return KD_EXIT_USAGE; lr_set = 1; break;
        case O_OPT:
            if (!strcmp(optarg, "sgd")) cfg.optim.type = KD_OPT_SGD;
            else if (!strcmp(optarg, "adamw")) cfg.optim.type = KD_OPT_ADAMW;
            else return kd_cli_usage_error(C, "--optimizer must be sgd or adamw, got '%s'", optarg);
            break;
        case O_MOM: if (!kd_cli_float(C, "--momentum", optarg, 0, 0.999, &cfg.optim.momentum)) return KD_EXIT_USAGE; break;
        case O_NONEST: cfg.optim.nesterov = 0; break;
        case O_WD: if (!kd_cli_float(C, "--weight-decay", optarg, 0, 1, &cfg.optim.weight_decay)) return KD_EXIT_USAGE; wd_set = 1; break;
        case O_SCHED:
            if (!strcmp(optarg, "cosine")) cfg.optim.sched = KD_SCHED_COSINE;
            else if (!strcmp(optarg, "step")) cfg.optim.sched = KD_SCHED_STEP;
            else if (!strcmp(optarg, "const")) cfg.optim.sched = KD_SCHED_CONST;
            else return kd_cli_usage_error(C, "--schedule must be cosine, step or const, got '%s'", optarg);
            break;
        case O_WARM: if (!kd_cli_float(C, "--warmup", optarg, 0, 1000, &cfg.optim.warmup_epochs)) return KD_EXIT_USAGE; break;
        case O_STEPE: if (!kd_cli_int(C, "--step-epochs", optarg, 1, 100000, &cfg.optim.step_epochs)) return KD_EXIT_USAGE; break;
        case O_STEPG: if (!kd_cli_float(C, "--step-gamma", optarg, 0, 1, &cfg.optim.step_gamma)) return KD_EXIT_USAGE; break;
        case O_LS: if (!kd_cli_float(C, "--label-smoothing", optarg, 0, 0.999, &cfg.label_smoothing)) return KD_EXIT_USAGE; break;
        case O_CLIP: if (!kd_cli_float(C, "--clip-grad", optarg, 0, 1e9, &cfg.clip_grad_norm)) return KD_EXIT_USAGE; clip_set = 1; break;
        case O_TRANS: if (!kd_cli_int(C, "--translate", optarg, 0, 16, &cfg.aug.translate)) return KD_EXIT_USAGE; break;
        case O_HFLIP: cfg.aug.hflip = 1; break;
        case O_SEED: if (!kd_cli_int(C, "--seed", optarg, 0, 2147483647, &seed)) return KD_EXIT_USAGE; break;
        case O_RESUME: cfg.resume = 1; break;
        case O_LOG: cfg.log_path = optarg; break;
        case O_MAXSTEPS: if (!kd_cli_int(C, "--max-steps", optarg, 1, 1 << 30, &cfg.max_steps_per_epoch)) return KD_EXIT_USAGE; break;
        default: return kd_cli_usage_error(C, "unknown option");
        }
    }
    if (optind < argc) return kd_cli_usage_error(C, "unexpected argument '%s'", argv[optind]);
    if (kd && !n_teacher_paths == !logits_path)
        return kd_cli_usage_error(C, "give either --teacher (one or more) or --teacher-logits");
    if (cfg.optim.type == KD_OPT_ADAMW) {
        if (!lr_set) cfg.optim.lr = 1e-3f;
        if (!wd_set) cfg.optim.weight_decay = 0.01f;
    }
    cfg.seed = (uint64_t)seed;
    /* Distillation is clipped by default: a confident teacher (logits ~30+) makes the T^2-scaled
     * term act like a several times larger learning rate, and a student without batch norm then
     * collapses to chance (seen here: cnn-s from cnn-t at T=4, alpha=0.9 -> 10%; clipped at 5 -> 83.6%
     * after one epoch). */
    if (kd && !clip_set) cfg.clip_grad_norm = 5.f;
    if (cfg.log_path) {
        FILE *f = fopen(cfg.log_path, "a");
        if (!f) {
            fprintf(stderr, "distill train: error: cannot write the log %s\n", cfg.log_path);
            return KD_EXIT_ERROR;
        }
        fclose(f);
    }

    kd_error err;
    kd_model *m = NULL;
    if (!strstr(model_arg, ".safetensors")) {
        if (kd_model_create(&m, model_arg, (uint64_t)seed, &err)) return kd_cli_fail(C, &err);
    } else if (kd_cli_load_model(C, model_arg, &m)) {
        return KD_EXIT_ERROR;
    }
    kd_dataset train = {0}, val = {0};
    if (kd_cli_load_data(C, data, "train", &train)) {
        kd_model_free(m);
        return KD_EXIT_ERROR;
    }
    if (limit && limit < train.n) kd_dataset_truncate(&train, limit);
    if (n_val >= train.n) {
        int have = train.n;
        kd_dataset_free(&train);
        kd_model_free(m);
        return kd_cli_usage_error(C, "--val %d leaves no training data (%d images)", n_val, have);
    }
    if (n_val > 0 && kd_dataset_split(&train, &val, n_val, (uint64_t)seed, &err)) {
        kd_dataset_free(&train);
        kd_model_free(m);
        return kd_cli_fail(C, &err);
    }
    /* Teachers: checkpoints run online (or cached), or a logits table from another framework. */
    kd_model *teachers[KD_MAX_TEACHERS] = {0};
    kd_teacher teacher = {0};
    float *table = NULL;
    char *ckpt = NULL;
    int rc = 0;
    kd_status st;
    if (kd) {
        for (int k = 0; k < n_teacher_paths; k++)
            if (kd_cli_load_model(C, teacher_paths[k], &teachers[k])) {
                rc = KD_EXIT_ERROR;
                goto out;
            }
        teacher.models = teachers;
        teacher.n_models = n_teacher_paths;
        teacher.n_classes = n_teacher_paths ? teachers[0]->n_classes : 0;
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
        } else if (!cfg.aug.translate && !cfg.aug.hflip && !no_cache) {
            double t0 = kd_now();
            int n_rows = 0;
            if ((st = kd_teacher_cache_logits(&teacher, &train, cfg.batch, cfg.threads, cfg.kd_temperature, &table,
                                              &n_rows, &err))) {
                rc = kd_cli_fail(C, &err);
                goto out;
            }
            teacher.logits = table;
            teacher.n_samples = n_rows;
            fprintf(stderr, "distill kd: teacher outputs for %d images computed once and cached (%.1fs)\n", train.n,
                    kd_now() - t0);
        }
        cfg.teacher = &teacher;
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
    if (kd)
        fprintf(stderr, "distill kd: teacher %s, %s, T %g, alpha %g\n", logits_path ? logits_path : teacher_paths[0],
                cfg.dkd_beta > 0.f ? "decoupled KD" : "Hinton KD", (double)cfg.kd_temperature, (double)cfg.kd_alpha);
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
        printf("trained %s: %d epochs in %s, %.0f samples/s", m->name, res.epochs_run, dur, res.samples_per_sec);
        if (val.n) printf(", validation accuracy %.2f%%", 100 * res.last_val.accuracy);
        printf("\nwrote %s (model) and %s (training state for --resume)\n", out, ckpt);
        if (kd) report_kd(data, m, teachers, n_teacher_paths, cfg.threads);
    }
out:
    free(ckpt);
    free(table);
    for (int k = 0; k < n_teacher_paths; k++) kd_model_free(teachers[k]);
    kd_dataset_free(&train);
    kd_dataset_free(&val);
    kd_model_free(m);
    return rc;
}
