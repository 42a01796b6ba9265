/* `distill train` and `distill kd`: train a model with cross-entropy, or distill a student from
 * teacher(s), checkpointing every epoch to OUT.ckpt (with optimizer state, for --resume) and
 * writing the final model-only checkpoint to OUT. Both share every training option. */
#define _GNU_SOURCE
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "distill/dist.h"
#include "distill/compress.h"
#include "distill/distill.h"
#include "distill/quantize.h"

enum {
    O_VAL = 256, O_LIMIT, O_LR, O_OPT, O_MOM, O_NONEST, O_WD, O_SCHED, O_WARM, O_STEPE, O_STEPG, O_LS, O_CLIP,
    O_TRANS, O_HFLIP, O_SEED, O_RESUME, O_LOG, O_MAXSTEPS, O_TEACHER, O_TLOGITS, O_NOCACHE, O_DKD, O_LOSS, O_STD,
    O_INIT, O_SEARCH, O_SEARCH_E, O_SEARCH_B, O_SEARCH_ETA, O_CONFIG, O_PRUNE, O_PRUNE_SCOPE, O_PRUNE_END, O_PRUNE_EVERY,
    O_QAT, O_QAT_GROUP, O_CHECK, O_MEAN, O_SDEV, O_MIXUP, O_CUTMIX, O_MIXP, O_TINT8, O_SYNCBN, O_BUCKET
};

#define KD_MAX_TEACHERS 16

static const struct option opts[] = {
    {"model", 1, 0, 'm'}, {"data", 1, 0, 'd'}, {"output", 1, 0, 'o'}, {"epochs", 1, 0, 'e'},
    {"batch", 1, 0, 'b'}, {"threads", 1, 0, 'j'}, {"quiet", 0, 0, 'q'}, {"help", 0, 0, 'h'},
    {"val", 1, 0, O_VAL}, {"limit", 1, 0, O_LIMIT}, {"lr", 1, 0, O_LR}, {"optimizer", 1, 0, O_OPT},
    {"momentum", 1, 0, O_MOM}, {"no-nesterov", 0, 0, O_NONEST}, {"weight-decay", 1, 0, O_WD},
    {"schedule", 1, 0, O_SCHED}, {"warmup", 1, 0, O_WARM}, {"step-epochs", 1, 0, O_STEPE},
    {"step-gamma", 1, 0, O_STEPG}, {"label-smoothing", 1, 0, O_LS}, {"clip-grad", 1, 0, O_CLIP},
    {"translate", 1, 0, O_TRANS}, {"hflip", 0, 0, O_HFLIP}, {"mixup", 1, 0, O_MIXUP}, {"cutmix", 1, 0, O_CUTMIX},
    {"mix-prob", 1, 0, O_MIXP}, {"seed", 1, 0, O_SEED}, {"sync-bn", 0, 0, O_SYNCBN}, {"bucket-kb", 1, 0, O_BUCKET},
    {"resume", 0, 0, O_RESUME}, {"log", 1, 0, O_LOG}, {"max-steps", 1, 0, O_MAXSTEPS}, {"config", 1, 0, O_CONFIG},
    {"dkd-beta", 1, 0, O_DKD}, {"teacher", 1, 0, O_TEACHER}, {"teacher-logits", 1, 0, O_TLOGITS},
    {"no-cache", 0, 0, O_NOCACHE}, {"teacher-int8", 0, 0, O_TINT8}, {"loss", 1, 0, O_LOSS}, {"standardize", 0, 0, O_STD},
    {"init-from-teacher", 1, 0, O_INIT}, {"search", 0, 0, O_SEARCH}, {"search-epochs", 1, 0, O_SEARCH_E},
    {"search-budget", 1, 0, O_SEARCH_B}, {"search-eta", 1, 0, O_SEARCH_ETA}, {"prune-sparsity", 1, 0, O_PRUNE}, {"prune-scope", 1, 0, O_PRUNE_SCOPE},
    {"prune-end", 1, 0, O_PRUNE_END}, {"prune-every", 1, 0, O_PRUNE_EVERY},
    {"qat", 1, 0, O_QAT}, {"qat-group", 1, 0, O_QAT_GROUP}, {"student", 1, 0, 's'}, {"temperature", 1, 0, 'T'}, {"alpha", 1, 0, 'a'},
    {"check", 0, 0, O_CHECK}, {"mean", 1, 0, O_MEAN}, {"std", 1, 0, O_SDEV}, KD_CLI_DATA_OPTIONS, {0, 0, 0, 0}};
const struct option *const kd_cli_train_options = opts;


/* What the command line (and a --config run file) asked for. */
typedef struct {
    int kd;
    const char *C, *model_arg, *data, *out, *logits_path, *init_map;
    kd_data_opts data_opts;
    const char *mean_arg, *std_arg; /* --mean, --std: checked in parse, applied per channel in load_inputs */
    const char *teacher_paths[KD_MAX_TEACHERS];
    int n_teacher_paths, n_terms, no_cache, teacher_int8, search, n_val, limit, seed, check;
    kd_loss_term terms[KD_MAX_LOSS_TERMS];
    kd_recipe recipe;          /* T, alpha, --dkd-beta, --standardize and what the user set */
    kd_search_config search_cfg;
    float prune_s, prune_end;
    int prune_every;
    kd_prune_scope prune_scope;
    kd_train_config cfg;
    kd_calib_config qat;       /* weight_bits 0 = no --qat */
} train_opts;

/* What a run holds; freed by free_state. */
typedef struct {
    kd_model *m;
    kd_dataset train, val;
    kd_model *teachers[KD_MAX_TEACHERS];
    kd_teacher teacher;
    kd_distiller *dist;
    kd_teacher_q8 *q8;         /* --teacher-int8 */
    kd_calib_ranges qranges;
    kd_int8_model *q_ptq;
    float *table, *feat_tabs[KD_MAX_FEATS];
    kd_prune_schedule prune;
    char *ckpt;
} train_state;

static void init_opts(train_opts *o, int kd) {
    memset(o, 0, sizeof *o);
    o->kd = kd;
    o->C = kd ? "kd" : "train";
    o->model_arg = kd ? "cnn-s" : "cnn-t";
    o->data = "fashion-mnist";
    o->data_opts = kd_data_opts_default();
    o->out = kd ? "student.safetensors" : "model.safetensors";
    o->n_val = -1; /* the default: kd_dataset_default_val of the training set as loaded (before --limit) */
    o->seed = 1;
    kd_recipe_default(&o->recipe);
    kd_search_config_default(&o->search_cfg);
    o->prune_end = 0.75f;
    o->prune_every = 20;
    o->prune_scope = KD_PRUNE_PER_LAYER;
    kd_train_config_default(&o->cfg);
    kd_calib_config_default(&o->qat);
    o->qat.weight_bits = 0; /* 0 = no --qat */
}

/* The options only `distill kd` has. Returns 1 if handled, 0 if c is not one of them, -1 after a
 * usage error (printed). */
static int parse_kd_opt(train_opts *o, int c, const char *arg, int from_cli, int *cli_teacher, int *cli_loss) {
    const char *C = o->C;
    kd_recipe *r = &o->recipe;
    switch (c) {
    case 'T': return kd_cli_float(C, "--temperature", arg, 0.01, 1000, &r->T) ? 1 : -1;
    case 'a': return kd_cli_float(C, "--alpha", arg, 0, 1, &r->alpha) ? 1 : -1;
    case O_TEACHER:
        if (from_cli && !(*cli_teacher)++) o->n_teacher_paths = 0; /* the command line's list replaces the file's */
        if (o->n_teacher_paths == KD_MAX_TEACHERS)
            return kd_cli_usage_error(C, "at most %d teachers", KD_MAX_TEACHERS), -1;
        o->teacher_paths[o->n_teacher_paths++] = arg;
        return 1;
    case O_LOSS: {
        if (from_cli && !(*cli_loss)++) o->n_terms = 0;
        if (o->n_terms == KD_MAX_LOSS_TERMS)
            return kd_cli_usage_error(C, "at most %d loss terms", KD_MAX_LOSS_TERMS), -1;
        kd_error e;
        if (kd_loss_term_parse(&o->terms[o->n_terms], arg, &e)) return kd_cli_usage_error(C, "--loss: %s", e.msg), -1;
        o->n_terms++;
        return 1;
    }
    case O_STD: r->standardize = 1; return 1;
    case O_INIT: o->init_map = arg; return 1;
    case O_SEARCH: o->search = 1; return 1;
    case O_SEARCH_E: return kd_cli_int(C, "--search-epochs", arg, 1, 100000, &o->search_cfg.epochs) ? 1 : -1;
    case O_SEARCH_B: return kd_cli_int(C, "--search-budget", arg, 1, 1000, &o->search_cfg.budget) ? 1 : -1;
    case O_SEARCH_ETA: return kd_cli_int(C, "--search-eta", arg, 2, 100, &o->search_cfg.eta) ? 1 : -1;
    case O_QAT:
        if (!strcmp(arg, "8") || !strcmp(arg, "int8")) o->qat.weight_bits = 8;
        else if (!strcmp(arg, "4") || !strcmp(arg, "int4")) o->qat.weight_bits = 4;
        else return kd_cli_usage_error(C, "--qat must be 8 or 4, got '%s'", arg), -1;
        return 1;
    case O_QAT_GROUP: return kd_cli_int(C, "--qat-group", arg, 1, 1 << 20, &o->qat.weight_group) ? 1 : -1;
    case O_TLOGITS: o->logits_path = arg; return 1;
    case O_NOCACHE: o->no_cache = 1; return 1;
    case O_TINT8: o->teacher_int8 = 1; return 1;
    case O_DKD: return kd_cli_float(C, "--dkd-beta", arg, 0, 1000, &r->dkd_beta) ? 1 : -1;
    default: return 0;
    }
}

/* An optimizer setting, in the range the library also checks a checkpoint's against. Same returns
 * as parse_kd_opt. */
static int optim_opt(const char *C, const char *field, const char *arg, float *out) {
    const kd_optim_range *r = kd_optim_range_find(field);
    return kd_cli_float(C, r->option, arg, r->lo, r->hi, out) ? 1 : -1;
}

/* The schedule, optimizer and pruning options. Same returns as parse_kd_opt. */
static int parse_schedule_opt(train_opts *o, int c, const char *arg) {
    const char *C = o->C;
    kd_train_config *cfg = &o->cfg;
    unsigned *set = &o->recipe.user_set;
    switch (c) {
    case 'e': *set |= KD_RECIPE_SET_EPOCHS; return kd_cli_int(C, "--epochs", arg, 1, 100000, &cfg->epochs) ? 1 : -1;
    case 'b': return kd_cli_int(C, "--batch", arg, 2, 65536, &cfg->batch) ? 1 : -1;
    case O_LR: *set |= KD_RECIPE_SET_LR; return optim_opt(C, "lr", arg, &cfg->optim.lr);
    case O_OPT:
        if (!strcmp(arg, "sgd")) cfg->optim.type = KD_OPT_SGD;
        else if (!strcmp(arg, "adamw")) cfg->optim.type = KD_OPT_ADAMW;
        else return kd_cli_usage_error(C, "--optimizer must be sgd or adamw, got '%s'", arg), -1;
        return 1;
    case O_MOM: return optim_opt(C, "momentum", arg, &cfg->optim.momentum);
    case O_NONEST: cfg->optim.nesterov = 0; return 1;
    case O_WD:
        *set |= KD_RECIPE_SET_WD;
        return optim_opt(C, "weight_decay", arg, &cfg->optim.weight_decay);
    case O_SCHED:
        if (!strcmp(arg, "cosine")) cfg->optim.sched = KD_SCHED_COSINE;
        else if (!strcmp(arg, "step")) cfg->optim.sched = KD_SCHED_STEP;
        else if (!strcmp(arg, "const")) cfg->optim.sched = KD_SCHED_CONST;
        else return kd_cli_usage_error(C, "--schedule must be cosine, step or const, got '%s'", arg), -1;
        return 1;
    case O_WARM: return optim_opt(C, "warmup_epochs", arg, &cfg->optim.warmup_epochs);
    case O_STEPE: {
        const kd_optim_range *r = kd_optim_range_find("step_epochs");
        return kd_cli_int(C, r->option, arg, (long)r->lo, (long)r->hi, &cfg->optim.step_epochs) ? 1 : -1;
    }
    case O_STEPG: return optim_opt(C, "step_gamma", arg, &cfg->optim.step_gamma);
    case O_LS: return kd_cli_float(C, "--label-smoothing", arg, 0, 0.999, &cfg->label_smoothing) ? 1 : -1;
    case O_CLIP:
        *set |= KD_RECIPE_SET_CLIP;
        return kd_cli_float(C, "--clip-grad", arg, 0, 1e9, &cfg->clip_grad_norm) ? 1 : -1;
    case O_PRUNE: return kd_cli_float(C, "--prune-sparsity", arg, 0, 0.999, &o->prune_s) ? 1 : -1;
    case O_PRUNE_SCOPE:
        if (!strcmp(arg, "layer")) o->prune_scope = KD_PRUNE_PER_LAYER;
        else if (!strcmp(arg, "global")) o->prune_scope = KD_PRUNE_GLOBAL;
        else return kd_cli_usage_error(C, "--prune-scope must be layer or global, got '%s'", arg), -1;
        return 1;
    case O_PRUNE_END: return kd_cli_float(C, "--prune-end", arg, 0, 1, &o->prune_end) ? 1 : -1;
    case O_PRUNE_EVERY: return kd_cli_int(C, "--prune-every", arg, 1, 1 << 30, &o->prune_every) ? 1 : -1;
    default: return 0;
    }
}


/* The model, data and run options. Same returns as parse_kd_opt. */
static int parse_run_opt(train_opts *o, int c, const char *arg) {
    const char *C = o->C;
    kd_train_config *cfg = &o->cfg;
    switch (c) {
    case 'm': case 's': o->model_arg = arg; return 1;
    case 'd': o->data = arg; return 1;
    case 'o': o->out = arg; return 1;
    case 'j': return kd_cli_int(C, "--threads", arg, 1, 256, &cfg->threads) ? 1 : -1;
    case 'q': cfg->progress = 0; return 1;
    case O_VAL: return kd_cli_int(C, "--val", arg, 0, 1 << 30, &o->n_val) ? 1 : -1;
    case O_LIMIT: return kd_cli_int(C, "--limit", arg, 2, 1 << 30, &o->limit) ? 1 : -1;
    case O_CONFIG: return 1; /* read before the loop */
    case O_CHECK: o->check = 1; return 1;
    case O_TRANS: return kd_cli_int(C, "--translate", arg, 0, 16, &cfg->aug.translate) ? 1 : -1;
    case O_HFLIP: cfg->aug.hflip = 1; return 1;
    case O_MIXUP: return kd_cli_float(C, "--mixup", arg, 0, 100, &cfg->aug.mixup) ? 1 : -1;
    case O_CUTMIX: return kd_cli_float(C, "--cutmix", arg, 0, 100, &cfg->aug.cutmix) ? 1 : -1;
    case O_MIXP: return kd_cli_float(C, "--mix-prob", arg, 0, 1, &cfg->aug.mix_prob) ? 1 : -1;
    case O_SEED: return kd_cli_int(C, "--seed", arg, 0, 2147483647, &o->seed) ? 1 : -1;
    case O_RESUME: cfg->resume = 1; return 1;
    case O_SYNCBN: cfg->sync_bn = 1; return 1;
    case O_BUCKET: return kd_cli_int(C, "--bucket-kb", arg, 0, 1 << 20, &cfg->bucket_kb) ? 1 : -1;
    case O_LOG: cfg->log_path = arg; return 1;
    case O_MAXSTEPS: return kd_cli_int(C, "--max-steps", arg, 1, 1 << 30, &cfg->max_steps_per_epoch) ? 1 : -1;
    case O_MEAN: return kd_cli_norm_list(C, "--mean", arg, NULL, 0) ? (o->mean_arg = arg, 1) : -1;
    case O_SDEV: return kd_cli_norm_list(C, "--std", arg, NULL, 0) ? (o->std_arg = arg, 1) : -1;
    default: return kd_cli_parse_data_opt(C, c, arg, &o->data_opts);
    }
}

#define PARSED -1 /* parse: go on and run (any other value is the exit code to return now) */

/* QAT's integer model beside OUT: X.safetensors -> X.int8.safetensors, else OUT.int8 (malloc'd). */
static char *qat_int8_path(const char *out) {
    size_t n = strlen(out);
    char *path = malloc(n + 32);
    if (!path) return NULL;
    if (n > 12 && !strcmp(out + n - 12, ".safetensors")) snprintf(path, n + 32, "%.*s.int8.safetensors", (int)(n - 12), out);
    else snprintf(path, n + 32, "%s.int8", out);
    return path;
}

/* Every file the run writes, checked before any work: OUT, OUT.ckpt, the learned regressors of
 * FitNets and projected cosine terms beside it (OUT.ckpt.kd<term>, as kd_distiller_save names
 * them; a cosine term without projection has none, checked anyway), QAT's integer model, the log.
 * Returns 0 or prints. */
static int check_outputs(const train_opts *o) {
    size_t len = strlen(o->out) + 32;
    char *buf = malloc(len * (1 + KD_MAX_LOSS_TERMS)), *qat = o->qat.weight_bits ? qat_int8_path(o->out) : NULL;
    const char *paths[4 + KD_MAX_LOSS_TERMS];
    int n = 0, rc = KD_EXIT_ERROR;
    if (!buf || (o->qat.weight_bits && !qat)) {
        fprintf(stderr, "distill %s: error: out of memory\n", o->C);
    } else {
        char *p = buf;
        paths[n++] = o->out;
        snprintf(p, len, "%s.ckpt", o->out);
        paths[n++] = p;
        for (int k = 0; k < o->n_terms; k++)
            if (o->terms[k].kind == KD_LOSS_FITNET || o->terms[k].kind == KD_LOSS_COSINE) {
                p += len;
                kd_distiller_reg_path(p, len, buf, k); /* beside OUT.ckpt, the first entry of buf */
                paths[n++] = p;
            }
        paths[n++] = qat;
        paths[n++] = o->cfg.log_path;
        const char *ins[3 + KD_MAX_TEACHERS] = {o->model_arg, o->logits_path};
        memcpy(ins + 2, o->teacher_paths, (size_t)o->n_teacher_paths * sizeof *ins);
        rc = kd_cli_check_outputs(o->C, paths, n, ins, 2 + o->n_teacher_paths);
    }
    free(buf);
    free(qat);
    return rc;
}

/* Parse the arguments (a --config file's options first: *argc, *argv are then a new array, which
 * *args also points to, to free with kd_cli_free_args), complete the config with the library's
 * recipe and check every file the run will write. */
static int parse(train_opts *o, int *argc_io, char ***argv_io, char ***args) {
    const char *C = o->C;
    int argc = *argc_io;
    char **argv = *argv_io;
    int n_file = 0, cli_loss = 0, cli_teacher = 0;
    /* a run file first: its options come before the command line's, which so override them */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--config") || !strncmp(argv[i], "--config=", 9)) {
            const char *path = argv[i][8] == '=' ? argv[i] + 9 : i + 1 < argc ? argv[i + 1] : NULL;
            if (!path) return kd_cli_usage_error(C, "--config needs a file");
            if (!kd_cli_config_args(C, path, opts, argc_io, argv_io, &n_file)) return KD_EXIT_USAGE;
            argc = *argc_io;
            argv = *args = *argv_io;
            break;
        }
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "m:d:o:e:b:j:qhs:T:a:", opts, NULL)) != -1;) {
        int from_cli = optind > n_file;
        if (!o->kd && (c == 's' || c == 'T' || c == 'a' || (c >= O_TEACHER && c <= O_SEARCH_ETA) || c == O_QAT || c == O_TINT8 ||
                       c == O_QAT_GROUP))
            return kd_cli_usage_error(C, "this is a distillation option: use 'distill kd'");
        if (c == 'h') {
            kd_cli_train_help(o->kd);
            return 0;
        }
        int r = parse_kd_opt(o, c, optarg, from_cli, &cli_teacher, &cli_loss);
        if (!r) r = parse_schedule_opt(o, c, optarg);
        if (!r) r = parse_run_opt(o, c, optarg);
        if (r < 0) return KD_EXIT_USAGE;
        if (!r) return kd_cli_usage_error(C, "unknown option");
    }
    if (optind < argc) return kd_cli_usage_error(C, "unexpected argument '%s'", argv[optind]);
    kd_cli_threads(o->cfg.threads);
    if (o->kd && !o->n_teacher_paths == !o->logits_path)
        return kd_cli_usage_error(C, "give either --teacher (one or more) or --teacher-logits");
    o->cfg.seed = (uint64_t)o->seed;
    o->recipe.distill = o->kd;
    o->recipe.qat_bits = o->qat.weight_bits;
    kd_recipe_apply(&o->recipe, &o->cfg, o->terms, &o->n_terms);
    return check_outputs(o) ? KD_EXIT_ERROR : PARSED;
}

/* What the training data says about the model, stored in it (and so in its checkpoint): the input
 * normalisation unless it has its own (--mean/--std, else the per-channel statistics of the
 * training split as loaded, before --limit and the validation split: for 1-channel pixels the same
 * floats as ds->mean/std, which fed such a model before it stored them), the input type and the
 * class names. */
static int set_data_info(const train_opts *o, train_state *s) {
    const char *C = o->C;
    const kd_dataset *ds = &s->train;
    kd_error err;
    float *mean = malloc(sizeof(float) * (size_t)ds->c), *std = malloc(sizeof(float) * (size_t)ds->c);
    int rc = 0;
    if (!mean || !std) {
        fprintf(stderr, "distill %s: error: out of memory\n", C);
        rc = KD_EXIT_ERROR;
    } else if (!s->m->norm_mean || o->mean_arg || o->std_arg) {
        kd_dataset_channel_stats(ds, mean, std);
        if ((o->mean_arg && !kd_cli_norm_list(C, "--mean", o->mean_arg, mean, ds->c)) ||
            (o->std_arg && !kd_cli_norm_list(C, "--std", o->std_arg, std, ds->c)))
            rc = KD_EXIT_USAGE;
    }
    int own = s->m->norm_mean && !o->mean_arg && !o->std_arg; /* keep the model's (an ONNX teacher's, a checkpoint's) */
    /* names only for a model with as many classes (an explicit larger head keeps none) */
    const char *const *names = ds->n_classes == s->m->n_classes ? (const char *const *)ds->class_names : NULL;
    if (!rc && kd_model_set_data_info(s->m, own ? NULL : mean, own ? NULL : std, ds->type == KD_DATA_F32, names,
                                      ds->n_classes, &err))
        rc = kd_cli_fail_in(C, o->model_arg, &err);
    free(mean);
    free(std);
    return rc;
}

/* A model argument for data ds: a checkpoint (or ONNX file) is loaded and checked against the data;
 * a built-in or YAML model is built for its shape and class count (kd_model_create_for). */
static int load_model_for(const char *C, const char *what, uint64_t seed, const kd_dataset *ds, kd_model **m) {
    kd_error err;
    if (!kd_cli_model_is_trained(what)) {
        kd_model_fit fit = {ds->c, ds->h, ds->w, ds->n_classes};
        return kd_model_create_for(m, what, seed, &fit, &err) ? kd_cli_fail_about(C, what, &err) : 0;
    }
    if (kd_cli_load_model_seeded(C, what, seed, m)) return KD_EXIT_ERROR;
    if (kd_model_check_data(*m, ds, &err)) {
        fprintf(stderr, "distill %s: error: %s: %s\n", C, what, err.msg);
        return KD_EXIT_ERROR;
    }
    return 0;
}

/* The training/validation split and the model (fresh for the data's shape, or a checkpoint to
 * continue from) carrying the data's normalisation and class names. */
static int load_inputs(const train_opts *o, train_state *s) {
    const char *C = o->C;
    kd_error err;
    int rc;
    if (kd_cli_load_data(C, o->data, "train", &o->data_opts, NULL, &s->train)) return KD_EXIT_ERROR;
    if ((rc = load_model_for(C, o->model_arg, (uint64_t)o->seed, &s->train, &s->m)) || (rc = set_data_info(o, s)))
        return rc;
    /* the default validation size is the training split's as loaded, before --limit (Fashion-MNIST
     * holds out 5000 whatever --limit is) */
    int n_val = o->n_val < 0 ? kd_dataset_default_val(s->train.n) : o->n_val;
    if (o->limit && o->limit < s->train.n) kd_dataset_truncate(&s->train, o->limit);
    if (n_val >= s->train.n)
        return kd_cli_usage_error(C, "--val %d leaves no training data (%d samples)", n_val, s->train.n);
    if (n_val > 0 && kd_dataset_split(&s->train, &s->val, n_val, (uint64_t)o->seed, &err))
        return kd_cli_fail(C, &err);
    return 0;
}

/* Quantization-aware distillation: BN folded, int8 activation ranges fixed from the trained
 * model, fake quantization attached (the library's kd_qat_prepare). The teacher is untouched. */
static int setup_qat(train_opts *o, train_state *s) {
    const char *C = o->C;
    kd_error err;
    int nf = 0;
    if (!kd_cli_model_is_trained(o->model_arg))
        return kd_cli_usage_error(C, "--qat fine-tunes a trained model: give its checkpoint with --student FILE");
    o->qat.threads = o->cfg.threads;
    if (kd_qat_prepare(&s->m, &s->train, &o->qat, &s->qranges, &s->q_ptq, &nf, &err)) return kd_cli_fail(C, &err);
    char wf[48] = "int8 per channel";
    if (o->qat.weight_bits == 4) snprintf(wf, sizeof wf, "int4 in groups of %d", o->qat.weight_group);
    kd_cli_note("distill %s: quantization-aware training: %d batch norms folded, int8 activation ranges from "
                    "%d training images, weights %s\n", C, nf, kd_calib_count(&o->qat, s->train.n), wf);
    return 0;
}

/* Teachers: checkpoints run online (or cached later), or a logits table from another framework. */
static int load_teachers(const train_opts *o, train_state *s) {
    const char *C = o->C;
    kd_error err;
    for (int k = 0; k < o->n_teacher_paths; k++)
        if (load_model_for(C, o->teacher_paths[k], 1, &s->train, &s->teachers[k])) return KD_EXIT_ERROR;
    s->teacher = kd_teacher_online(s->teachers, o->n_teacher_paths);
    if (!o->logits_path) return 0;
    int n_rows = 0, n_cls = 0;
    if (kd_npy_load_logits(o->logits_path, s->m->n_classes, &s->table, &n_rows, &n_cls, &err)) return kd_cli_fail(C, &err);
    /* One row per sample of the file the training split was taken from: at least 1 + the largest
     * orig index of the training and validation samples (the whole file for IDX; a --test-fraction
     * split of one file is indexed by its rows in that file). */
    int want = 0;
    const kd_dataset *parts[2] = {&s->train, &s->val};
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < parts[p]->n; i++)
            if (kd_dataset_orig_index(parts[p], i) + 1 > want) want = kd_dataset_orig_index(parts[p], i) + 1;
    if (n_rows < want) {
        fprintf(stderr, "distill kd: error: %s has %d rows, the training set of %s needs %d (one per sample of its "
                "source file, in file order)\n", o->logits_path, n_rows, o->data, want);
        return KD_EXIT_ERROR;
    }
    s->teacher.logits = s->table;
    s->teacher.n_samples = n_rows;
    s->teacher.n_classes = n_cls;
    return 0;
}

/* Without augmentation the teacher's outputs are computed once and kept (unless too large); with
 * it the teacher scores each augmented view online. */
static int cache_teacher(const train_opts *o, train_state *s) {
    kd_teacher *t = &s->teacher;
    kd_error err;
    if (o->logits_path || kd_augment_any(&o->cfg.aug) || o->no_cache) return 0;
    size_t rows = (size_t)(s->train.n + s->val.n);
    size_t cache_bytes = rows * (size_t)t->n_classes * sizeof(float);
    for (int f = 0; f < t->n_feats; f++) cache_bytes += rows * t->feat_size[f] * sizeof(float);
    if (cache_bytes > ((size_t)6 << 30)) {
        kd_cli_note("distill kd: the teacher cache would take %.1f GB: running the teacher every step\n",
                cache_bytes / 1e9);
        return 0;
    }
    double t0 = kd_now();
    int n_rows = 0;
    if (kd_teacher_cache(t, kd_distiller_teacher_T(s->dist), &s->train, o->cfg.batch, o->cfg.threads, &s->table,
                         s->feat_tabs, &n_rows, &err))
        return kd_cli_fail(o->C, &err);
    t->logits = s->table;
    t->n_samples = n_rows;
    for (int f = 0; f < t->n_feats; f++) t->feat_table[f] = s->feat_tabs[f];
    kd_cli_note("distill kd: teacher outputs for %d images computed once and cached (%.1fs, %.0f MB)\n",
            s->train.n, kd_now() - t0, cache_bytes / 1e6);
    return 0;
}

/* --search: the library's kd_search reports through cli/kd_search.c; the run then distills with the
 * winner's terms and augmentation, for its epochs unless the user gave --epochs. */
static int search(train_opts *o, train_state *s) {
    const char *C = o->C;
    kd_error err;
    if (s->val.n == 0) return kd_cli_usage_error(C, "--search needs a validation split (--val N > 0)");
    kd_cli_search_report rep;
    int user_epochs = o->recipe.user_set & KD_RECIPE_SET_EPOCHS ? o->cfg.epochs : 0;
    kd_cli_search_report_init(&rep, &o->search_cfg, s->val.n, user_epochs);
    kd_search_result best;
    if (kd_search(s->m, (uint64_t)o->seed, o->terms, o->n_terms, &s->teacher, &s->train, &s->val, &o->cfg,
                  &o->search_cfg, &best, &err))
        return kd_cli_fail(C, &err);
    kd_cli_search_winner(&rep, &best, o->n_terms, &o->cfg.aug);
    memcpy(o->terms, best.terms, sizeof(kd_loss_term) * (size_t)o->n_terms);
    o->cfg.aug = best.aug;
    if (!user_epochs) o->cfg.epochs = best.epochs;
    /* cache_teacher ran before the search (without augmentation): its tables hold the unchanged
     * images' outputs, so a winner that augments has its teacher score each view online */
    if (kd_augment_any(&o->cfg.aug) && o->n_teacher_paths && s->teacher.logits) {
        free(s->table);
        s->table = NULL;
        s->teacher.logits = NULL;
        for (int f = 0; f < KD_MAX_FEATS; f++) {
            free(s->feat_tabs[f]);
            s->feat_tabs[f] = NULL;
            s->teacher.feat_table[f] = NULL;
        }
        kd_cli_note("distill kd: the winner augments: the teacher scores each view online (its cache dropped)\n");
    }
    kd_distiller_free(s->dist);
    s->dist = NULL;
    if (kd_distiller_create(&s->dist, o->terms, o->n_terms, s->m, &s->teacher, (uint64_t)o->seed, &err))
        return kd_cli_fail(C, &err);
    return 0;
}

/* --teacher-int8: the teacher's logits from its int8 twin on the runtime's kernels. Only where it
 * replaces something: a teacher run every step (a cached one costs nothing per step). */
static int teacher_int8(const train_opts *o, train_state *s) {
    kd_error err;
    if (o->n_teacher_paths != 1)
        return kd_cli_usage_error(o->C, "--teacher-int8 runs one teacher checkpoint (not an ensemble or logits)");
    if (s->teacher.n_feats)
        return kd_cli_usage_error(o->C, "--teacher-int8 gives logits only: the feature and relation terms need the "
                                        "fp32 teacher's layers");
    /* with --search, candidates that augment (and a winner that does, whose run drops the cache)
     * run the teacher online: they use it */
    if (s->teacher.logits && !o->search) {
        kd_cli_note("distill kd: note: the teacher's outputs are cached (no augmentation), so --teacher-int8 has "
                        "nothing to speed up; the fp32 teacher's cache is used\n");
        return 0;
    }
    double t0 = kd_now();
    if (kd_teacher_q8_create(&s->q8, s->teachers[0], &s->train, o->cfg.threads, &err)) return kd_cli_fail(o->C, &err);
    s->teacher.q8 = s->q8;
    kd_cli_note("distill kd: teacher %s runs in int8 on the runtime's kernels (quantized on %d training images, "
                    "%.1fs)\n", s->teachers[0]->name, s->train.n < 1000 ? s->train.n : 1000, kd_now() - t0);
    return 0;
}

/* The distiller over the run's terms and teacher, the student initialised from the teacher if
 * asked, the teacher cached, then the recipe searched if asked (search drops the cache when its
 * winner augments). */
static int setup_distill(train_opts *o, train_state *s) {
    const char *C = o->C;
    kd_error err;
    int rc;
    if ((rc = load_teachers(o, s))) return rc;
    /* resolves the terms' layers and registers the teacher features they need */
    if (kd_distiller_create(&s->dist, o->terms, o->n_terms, s->m, &s->teacher, (uint64_t)o->seed, &err))
        return kd_cli_fail(C, &err);
    if (o->init_map) {
        char rep[1024];
        if (!o->n_teacher_paths) return kd_cli_usage_error(C, "--init-from-teacher needs a teacher checkpoint");
        if (kd_init_from_teacher(s->m, s->teachers[0], o->init_map, rep, sizeof rep, &err)) return kd_cli_fail(C, &err);
        kd_cli_note("distill kd: student initialised from the teacher: %s\n", rep);
    }
    if ((rc = cache_teacher(o, s)) || (o->teacher_int8 && (rc = teacher_int8(o, s))) ||
        (o->search && (rc = search(o, s))))
        return rc;
    o->cfg.distiller = s->dist;
    return 0;
}

/* Gradual magnitude pruning during training (AGP over the first prune_end of the steps). */
static int setup_prune(train_opts *o, train_state *s) {
    kd_error err;
    int steps = kd_train_steps_per_epoch(s->train.n, &o->cfg);
    if (kd_prune_mask_init(&s->prune.mask, s->m, &err)) return kd_cli_fail(o->C, &err);
    s->prune.s_final = o->prune_s;
    s->prune.end = (long long)((double)o->prune_end * o->cfg.epochs * steps);
    s->prune.every = o->prune_every;
    s->prune.scope = o->prune_scope;
    o->cfg.prune = &s->prune;
    kd_cli_note("distill %s: pruning conv/linear weights to %.1f%% sparsity (%s), AGP over steps 0-%lld, "
                    "mask updated every %d steps\n", o->C, 100.0 * o->prune_s,
            o->prune_scope == KD_PRUNE_GLOBAL ? "global" : "per layer", s->prune.end, o->prune_every);
    return 0;
}

/* The run's one-line summary (and the loss) on stderr before training. */
static void print_banner(const train_opts *o, const train_state *s) {
    if (kd_dist_rank() != 0) return; /* under mpirun, rank 0 speaks for the job */
    const kd_train_config *cfg = &o->cfg;
    kd_model *m = s->m;
    char pb[32];
    kd_cli_bytes(pb, sizeof pb, (double)kd_model_param_bytes(m));
    fprintf(stderr, "distill %s: %s (%zu parameters, %s, %.1f M MACs/image) on %s: %d train / %d val images, "
                    "%d epochs, batch %d, %s lr %g, %d threads, GEMM %s\n",
            o->C, m->name, m->n_params, pb, kd_model_macs(m) / 1e6, o->data, s->train.n, s->val.n, cfg->epochs,
            cfg->batch, cfg->optim.type == KD_OPT_SGD ? "SGD" : "AdamW", (double)cfg->optim.lr, cfg->threads,
            kd_gemm_backend());
    int R = kd_dist_size();
    if (R > 1)
        fprintf(stderr, "distill %s: data-parallel on %d ranks (MPI): global batch %d, %d%s samples per rank and step, "
                "batch norm %s\n", o->C, R, cfg->batch, cfg->batch / R, cfg->batch % R ? " or 1 more" : "",
                cfg->sync_bn ? "over the global batch (--sync-bn)" : "per rank");
    if (!o->kd) return;
    fprintf(stderr, "distill kd: teacher %s%s; loss", o->logits_path ? o->logits_path : o->teacher_paths[0],
            o->n_teacher_paths > 1 ? " (+ ensemble)" : "");
    for (int k = 0; k < o->n_terms; k++) {
        char spec[256];
        kd_loss_term_format(kd_distiller_term(s->dist, k), spec, sizeof spec);
        fprintf(stderr, "%s %s", k ? " +" : "", spec);
    }
    fprintf(stderr, "\n");
}

/* What distillation gained over plain training, where that was measured for this very student,
 * data and schedule (kd_ce_baseline_find): never an estimate. */
static void report_baseline(const train_opts *o, const train_state *s, double student, double teacher) {
    if (kd_cli_model_is_trained(o->model_arg) || strchr(o->model_arg, '.') || strchr(o->model_arg, '/') ||
        o->cfg.max_steps_per_epoch)
        return;
    const kd_ce_baseline *b = kd_ce_baseline_find(o->model_arg, o->data, s->train.n, o->cfg.epochs);
    if (!b || b->seeds < 1) return;
    printf("plain training of %s here (distill train, %d epochs): %.2f%% +- %.2f over %d seeds (%s): distillation "
           "%+.2f points", b->student, b->epochs, (double)b->mean, (double)b->se, b->seeds, b->source,
           student - b->mean);
    if (teacher > b->mean && student > b->mean) printf(", %.0f%% of the teacher's lead closed", 100.0 * (student - b->mean) / (teacher - b->mean));
    printf("\n");
}

/* Test-set accuracy of teacher and student and the share of images where their top-1 agree. */
static int report_kd(const train_opts *o, train_state *s, const kd_dataset *test) {
    kd_error err;
    kd_eval_result rs, rt;
    int agree = 0;
    if (o->n_teacher_paths == 1) {
        if (kd_evaluate_agreement(s->m, s->teachers[0], test, 256, o->cfg.threads, &rs, &rt, &agree, &err))
            return kd_cli_fail(o->C, &err);
        printf("test accuracy: teacher %s %.2f%%, student %s %.2f%%; top-1 agreement %.2f%%\n", s->teachers[0]->name,
               100 * rt.accuracy, s->m->name, 100 * rs.accuracy, 100.0 * agree / test->n);
        report_baseline(o, s, 100 * rs.accuracy, 100 * rt.accuracy);
        return 0;
    }
    if (kd_evaluate(s->m, test, 256, o->cfg.threads, &rs, NULL, &err)) return kd_cli_fail(o->C, &err);
    printf("test accuracy: student %s %.2f%%\n", s->m->name, 100 * rs.accuracy);
    return 0;
}

/* After quantization-aware training: the integer model with the ranges training used, evaluated
 * on the test set with integer arithmetic beside the post-training one it started from, written
 * next to OUT as OUT.int8.safetensors. */
static int qat_finish(const train_opts *o, const train_state *s, const kd_dataset *test) {
    const char *C = o->C, *out = o->out;
    kd_error err;
    double acc_ptq = 0, acc_qat = 0;
    int rc = 0;
    char *path = qat_int8_path(out);
    if (!path) return KD_EXIT_ERROR;
    if (kd_qat_finish(s->m, &s->qranges, &o->qat, s->q_ptq, test, path, &acc_qat, &acc_ptq, &err))
        rc = kd_cli_fail(C, &err);
    else
        printf("integer test accuracy (%s weights): %.2f%% after quantization-aware training, %.2f%% post-training "
               "(%+.2f); wrote %s\n", o->qat.weight_bits == 4 ? "int4" : "int8", 100 * acc_qat, 100 * acc_ptq,
               100 * (acc_qat - acc_ptq), path);
    free(path);
    return rc;
}

/* Train, write OUT, print the result and the reports. */
static int train_and_report(train_opts *o, train_state *s) {
    const char *C = o->C;
    kd_error err;
    kd_train_result res;
    kd_status st = kd_train(s->m, &s->train, s->val.n > 0 ? &s->val : NULL, &o->cfg, &res, &err);
    if (st) {
        int rc = kd_cli_fail(C, &err);
        if (st == KD_STATUS_INTERRUPTED && kd_dist_rank() == 0)
            fprintf(stderr, "Continue with the same command and --resume.\n");
        return rc;
    }
    /* under mpirun every rank holds the same model (kd_train checks): rank 0 writes it */
    if (kd_dist_rank() == 0 && kd_checkpoint_save(o->out, s->m, NULL, NULL, &err)) return kd_cli_fail(C, &err);
    char dur[32];
    kd_format_duration(dur, sizeof dur, res.train_seconds);
    if (res.resumed_step >= 0) printf("resumed %s at step %lld\n", s->ckpt, res.resumed_step);
    printf("trained %s: %d epochs in %s, %.0f samples/s", s->m->name, res.epochs_run, dur, res.samples_per_sec);
    if (kd_dist_size() > 1)
        printf(" on %d ranks (%.0f%% of the time in the gradient sums, waits included)", kd_dist_size(),
               100.0 * res.comm_seconds / (res.train_seconds > 0 ? res.train_seconds : 1));
    if (s->val.n) printf(", validation accuracy %.2f%%", 100 * res.last_val.accuracy);
    printf("\nwrote %s (model) and %s (training state for --resume)\n", o->out, s->ckpt);
    if (o->cfg.prune) printf("weight sparsity of conv/linear layers: %.2f%%\n", 100.0 * kd_model_weight_sparsity(s->m));
    if (!o->kd) return 0; /* the test-set reports below are distillation's (QAT runs are kd runs) */
    kd_dataset test = {0};
    if (kd_cli_load_data(C, o->data, "test", &o->data_opts, s->m, &test)) return o->qat.weight_bits ? KD_EXIT_ERROR : 0;
    test.mean = s->train.mean; /* the training file's statistics, for a teacher without normalisation of its own */
    test.std = s->train.std;
    int rc = report_kd(o, s, &test);
    if (!rc && o->qat.weight_bits) rc = qat_finish(o, s, &test);
    kd_dataset_free(&test);
    return rc;
}

static void free_state(const train_opts *o, train_state *s) {
    kd_calib_ranges_free(&s->qranges);
    kd_int8_free(s->q_ptq);
    kd_prune_mask_free(&s->prune.mask);
    free(s->ckpt);
    free(s->table);
    for (int f = 0; f < KD_MAX_FEATS; f++) free(s->feat_tabs[f]);
    kd_distiller_free(s->dist);
    kd_teacher_q8_free(s->q8);
    for (int k = 0; k < o->n_teacher_paths; k++) kd_model_free(s->teachers[k]);
    kd_dataset_free(&s->train);
    kd_dataset_free(&s->val);
    kd_model_free(s->m);
}

static int run(int argc, char **argv, int kd) {
    train_opts o;
    init_opts(&o, kd);
    char **args = NULL;
    int rc = parse(&o, &argc, &argv, &args);
    if (rc == PARSED && o.check) rc = 0; /* --check: the options are good, nothing runs */
    if (rc != PARSED) {
        if (args) kd_cli_free_args(argc, args);
        return rc;
    }
    train_state s;
    memset(&s, 0, sizeof s);
    if ((rc = load_inputs(&o, &s)) || (o.qat.weight_bits && (rc = setup_qat(&o, &s))) ||
        (kd && (rc = setup_distill(&o, &s))) || (o.prune_s > 0.f && (rc = setup_prune(&o, &s))))
        goto out;
    size_t plen = strlen(o.out) + 8;
    s.ckpt = malloc(plen);
    snprintf(s.ckpt, plen, "%s.ckpt", o.out);
    o.cfg.checkpoint_path = s.ckpt;
    if (!o.cfg.resume && access(s.ckpt, F_OK) == 0 && kd_dist_rank() == 0)
        fprintf(stderr, "distill %s: note: %s exists and will be overwritten (use --resume to continue it)\n", o.C,
                s.ckpt);
    o.cfg.stop = &kd_cli_stop;
    kd_cli_install_signals();
    print_banner(&o, &s);
    rc = train_and_report(&o, &s);
out:
    free_state(&o, &s);
    if (args) kd_cli_free_args(argc, args);
    return rc;
}

int kd_cmd_train(int argc, char **argv) { return run(argc, argv, 0); }
int kd_cmd_kd(int argc, char **argv) { return run(argc, argv, 1); }
