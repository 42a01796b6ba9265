/* `distill lm`: language models. train (a GPT-style model on a text file), kd (a student distilled
 * from a teacher with token-level losses), eval (held-out bits per byte, fp32/q8/q4 weights) and
 * generate (sampling; also writes a synthetic corpus for sequence-level distillation). */
#define _GNU_SOURCE
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "distill/dist.h"
#include "distill/fileio.h"
#include "distill/lm.h"

#define LM_DEFAULT_TEXT "out/kjv.txt"
#define LM_MAX_LOSS 8
#define LM_MAX_MIX 8

static void help_main(FILE *f) {
    fprintf(f, "Usage: distill lm <command> [options]   (distill lm <command> --help for details)\n\n"
               "Language models: a GPT-style decoder-only transformer over bytes.\n"
               "  train     train a model on a UTF-8 text file (a teacher, or a CE-only student)\n"
               "  kd        distill a student from a teacher: forward/reverse KL, CE, hidden-state cosine\n"
               "  eval      held-out bits per byte and perplexity (fp32, q8 or q4 weights)\n"
               "  generate  sample text; with --out, a synthetic corpus for sequence-level distillation\n\n"
               "The default text is %s (scripts/corpus.sh writes the King James Bible there).\n"
               "docs/LM.md is the guide.\n", LM_DEFAULT_TEXT);
}

static void help_train(int kd) {
    if (kd)
        printf("Usage: distill lm kd --teacher T.safetensors [options] -o STUDENT.safetensors\n\n"
               "Distil a student language model from a teacher on the same text, token by token.\n\n"
               "Distillation:\n"
               "      --teacher FILE      the teacher checkpoint (distill lm train)\n"
               "      --loss SPEC         a loss term; repeat to combine (default: fkl:T=1 and ce:weight=0.5)\n"
               "                          ce[:weight=W]          cross-entropy on the text\n"
               "                          fkl[:T=,weight=]       T^2 KL(teacher || student) at temperature T\n"
               "                          rkl[:T=,weight=]       T^2 KL(student || teacher) (MiniLLM)\n"
               "                          cosine[:weight=]       1 - cos between the last hidden states\n"
               "                                                 (DistilBERT; needs the teacher's dim)\n"
               "      --init-from-teacher copy embeddings, final LayerNorm and every k-th teacher layer\n"
               "                          (k = teacher layers / student layers); needs equal dim and heads\n"
               "Student model (default: the teacher's dim, heads and ctx, 2 layers):\n");
    else
        printf("Usage: distill lm train [options] -o MODEL.safetensors\n\n"
               "Train a decoder-only transformer (pre-LayerNorm, causal attention, GELU MLP, tied head)\n"
               "on byte tokens with AdamW, gradient clipping, warmup and cosine decay.\n\n"
               "Model (defaults: 6 layers, dim 256, 8 heads, ctx 256):\n");
    printf("      --layers N          transformer blocks\n"
           "      --dim N             width (a multiple of --heads)\n"
           "      --heads N           attention heads\n"
           "      --ctx N             context length in bytes\n"
           "Data:\n"
           "      --text FILE         UTF-8 text (default %s); the last --holdout of it is held out\n"
           "      --holdout F         held-out fraction for evaluation (default 0.05)\n"
           "      --mix FILE          more training text, never held out (repeatable): e.g. text the\n"
           "                          teacher wrote (lm generate --out), mixed with the real text\n"
           "      --tokenizer NAME    bytes (default: 256 tokens) or bpe: byte-level BPE learnt on the\n"
           "                          training split, stored in the checkpoint (lm train only; lm kd\n"
           "                          uses the teacher's)\n"
           "      --vocab N           BPE vocabulary: 256 bytes + N - 256 merges (default 512, at most 4096)\n"
           "Schedule:\n"
           "      --steps N           optimizer steps (default 1000)\n"
           "  -b, --batch N           sequences per step (default 16)\n"
           "      --seq N             training sequence length (default: ctx)\n"
           "      --lr X              peak learning rate (default 1e-3)\n"
           "      --min-lr X          cosine floor (default 1e-4)\n"
           "      --warmup N          linear warmup steps (default 100)\n"
           "      --schedule NAME     cosine (default) or const\n"
           "      --weight-decay X    AdamW decoupled decay on matrices and embeddings (default 0.1)\n"
           "      --clip X            clip the global gradient norm (default 1; 0 = off)\n"
           "Run:\n"
           "  -o, --output FILE       the final model (default %s); the training state goes to FILE.ckpt\n"
           "      --ckpt-every N      write FILE.ckpt every N steps (default 500) and at the end\n"
           "      --resume            continue from FILE.ckpt (same options: bit-identical to a run\n"
           "                          that was never interrupted)\n"
           "      --eval-every N      held-out bits/byte on its first 64 KB every N steps\n"
           "      --seed N            initialisation and batch sampling (default 1)\n"
           "  -j, --threads N         OpenMP threads (default 1)\n"
           "  -q, --quiet             no progress display\n"
           "      --config FILE.yaml  options from a run file (keys = long options, lists repeat one, e.g.\n"
           "                          loss: [fkl, ce]); the command line overrides it (examples/lm-kd.yaml)\n\n"
           "Prints the held-out bits per byte at the end. Ctrl-C saves the state (resume with --resume).\n"
           "Data-parallel: mpirun -np N distill lm train|kd ... trains on N processes (--batch is the\n"
           "global batch, each rank takes its share of the sequences; docs/DISTRIBUTED.md).\n"
           "Example: distill lm %s\n",
           LM_DEFAULT_TEXT, kd ? "student-lm.safetensors" : "lm.safetensors",
           kd ? "kd --teacher teacher-lm.safetensors --layers 2 --init-from-teacher -o student-lm.safetensors"
              : "train --text corpus.txt --layers 6 --dim 256 --heads 8 --ctx 256 --steps 2000 -o teacher-lm.safetensors");
}

enum {
    O_LAYERS = 256, O_DIM, O_HEADS, O_CTX, O_TEXT, O_HOLD, O_STEPS, O_SEQ, O_LR, O_MINLR, O_WARM, O_SCHED, O_WD,
    O_CLIP, O_CKPT, O_RESUME, O_EVAL, O_SEED, O_TEACHER, O_LOSS, O_INIT, O_QUANT, O_PROMPT, O_TEMP, O_TOPK, O_TOPP,
    O_TOKENS, O_OUT, O_CONFIG, O_TOKENIZER, O_VOCAB, O_MIX
};

static const struct option train_opts[] = {
    {"layers", 1, 0, O_LAYERS}, {"dim", 1, 0, O_DIM}, {"heads", 1, 0, O_HEADS}, {"ctx", 1, 0, O_CTX},
    {"text", 1, 0, O_TEXT}, {"holdout", 1, 0, O_HOLD}, {"steps", 1, 0, O_STEPS}, {"batch", 1, 0, 'b'},
    {"seq", 1, 0, O_SEQ}, {"lr", 1, 0, O_LR}, {"min-lr", 1, 0, O_MINLR}, {"warmup", 1, 0, O_WARM},
    {"schedule", 1, 0, O_SCHED}, {"weight-decay", 1, 0, O_WD}, {"clip", 1, 0, O_CLIP}, {"output", 1, 0, 'o'},
    {"ckpt-every", 1, 0, O_CKPT}, {"resume", 0, 0, O_RESUME}, {"eval-every", 1, 0, O_EVAL}, {"seed", 1, 0, O_SEED},
    {"threads", 1, 0, 'j'}, {"quiet", 0, 0, 'q'}, {"help", 0, 0, 'h'}, {"teacher", 1, 0, O_TEACHER},
    {"loss", 1, 0, O_LOSS}, {"init-from-teacher", 0, 0, O_INIT}, {"config", 1, 0, O_CONFIG},
    {"tokenizer", 1, 0, O_TOKENIZER}, {"vocab", 1, 0, O_VOCAB}, {"mix", 1, 0, O_MIX}, {0, 0, 0, 0}};

/* What `lm train` and `lm kd` were asked to do. */
typedef struct train_args {
    int kd, threads, init, n_terms, bpe, vocab, set_vocab, set_dim, set_heads, set_ctx, n_mix;
    kd_lm_config c;
    float holdout;
    const char *text_path, *out, *tpath, *mix[LM_MAX_MIX];
    kd_lm_loss_term terms[LM_MAX_LOSS];
    kd_lm_train_config tc;
} train_args;

#define LM_GO (-1) /* parse_train: run the command (any other value: exit with it) */

/* n_file: argv[0, n_file) came from a --config run file (kd_cli_config_args), the rest from the
 * command line; a repeated option given on the command line replaces the file's list. */
static int parse_train(train_args *a, int argc, char **argv, int kd, int n_file) {
    const char *cmd = kd ? "lm kd" : "lm train";
    memset(a, 0, sizeof *a);
    a->kd = kd;
    a->c = (kd_lm_config){256, 256, kd ? 2 : 6, 256, 8};
    a->threads = 1;
    a->vocab = 512;
    a->holdout = 0.05f;
    a->text_path = LM_DEFAULT_TEXT;
    a->out = kd ? "student-lm.safetensors" : "lm.safetensors";
    kd_lm_train_config *tc = &a->tc;
    kd_lm_train_config_default(tc);
    kd_error err;
    int o, v, cli_loss = 0, cli_mix = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, "b:o:j:qh", train_opts, NULL)) != -1) {
        switch (o) {
        case O_LAYERS: if (!kd_cli_int(cmd, "--layers", optarg, 1, 1024, &a->c.layers)) return KD_EXIT_USAGE; break;
        case O_DIM: if (!kd_cli_int(cmd, "--dim", optarg, 1, 65536, &a->c.dim)) return KD_EXIT_USAGE; a->set_dim = 1; break;
        case O_HEADS: if (!kd_cli_int(cmd, "--heads", optarg, 1, 1024, &a->c.heads)) return KD_EXIT_USAGE; a->set_heads = 1; break;
        case O_CTX: if (!kd_cli_int(cmd, "--ctx", optarg, 1, 65536, &a->c.ctx)) return KD_EXIT_USAGE; a->set_ctx = 1; break;
        case O_TEXT: a->text_path = optarg; break;
        case O_HOLD: if (!kd_cli_float(cmd, "--holdout", optarg, 0, 0.5, &a->holdout)) return KD_EXIT_USAGE; break;
        case O_STEPS: if (!kd_cli_int(cmd, "--steps", optarg, 1, 100000000, &tc->steps)) return KD_EXIT_USAGE; break;
        case 'b': if (!kd_cli_int(cmd, "--batch", optarg, 1, 65536, &tc->batch)) return KD_EXIT_USAGE; break;
        case O_SEQ: if (!kd_cli_int(cmd, "--seq", optarg, 1, 65536, &tc->seq)) return KD_EXIT_USAGE; break;
        case O_LR: if (!kd_cli_float(cmd, "--lr", optarg, 1e-9, 10, &tc->optim.lr)) return KD_EXIT_USAGE; break;
        case O_MINLR: if (!kd_cli_float(cmd, "--min-lr", optarg, 0, 10, &tc->optim.min_lr)) return KD_EXIT_USAGE; break;
        case O_WARM: if (!kd_cli_int(cmd, "--warmup", optarg, 0, 100000000, &v)) return KD_EXIT_USAGE; tc->warmup_steps = (float)v; break;
        case O_SCHED:
            if (!strcmp(optarg, "cosine")) tc->optim.sched = KD_SCHED_COSINE;
            else if (!strcmp(optarg, "const")) tc->optim.sched = KD_SCHED_CONST;
            else return kd_cli_usage_error(cmd, "--schedule expects cosine or const, got '%s'", optarg);
            break;
        case O_WD: if (!kd_cli_float(cmd, "--weight-decay", optarg, 0, 10, &tc->optim.weight_decay)) return KD_EXIT_USAGE; break;
        case O_CLIP: if (!kd_cli_float(cmd, "--clip", optarg, 0, 1e6, &tc->clip)) return KD_EXIT_USAGE; break;
        case 'o': a->out = optarg; break;
        case O_CKPT: if (!kd_cli_int(cmd, "--ckpt-every", optarg, 0, 100000000, &tc->ckpt_every)) return KD_EXIT_USAGE; break;
        case O_RESUME: tc->resume = 1; break;
        case O_EVAL: if (!kd_cli_int(cmd, "--eval-every", optarg, 0, 100000000, &tc->eval_every)) return KD_EXIT_USAGE; break;
        case O_SEED: if (!kd_cli_int(cmd, "--seed", optarg, 0, 2147483647, &v)) return KD_EXIT_USAGE; tc->seed = (uint64_t)v; break;
        case 'j': if (!kd_cli_int(cmd, "--threads", optarg, 1, 1024, &a->threads)) return KD_EXIT_USAGE; break;
        case 'q': tc->progress = 0; break;
        case 'h': help_train(kd); return 0;
        case O_TEACHER: if (!kd) goto bad; a->tpath = optarg; break;
        case O_INIT: if (!kd) goto bad; a->init = 1; break;
        case O_LOSS:
            if (!kd) goto bad;
            if (optind > n_file && !cli_loss++) a->n_terms = 0; /* the command line's list replaces the file's */
            if (a->n_terms == LM_MAX_LOSS) return kd_cli_usage_error(cmd, "at most %d --loss terms", LM_MAX_LOSS);
            if (kd_lm_loss_term_parse(&a->terms[a->n_terms], optarg, &err)) return kd_cli_usage_error(cmd, "%s", err.msg);
            a->n_terms++;
            break;
        case O_MIX:
            if (optind > n_file && !cli_mix++) a->n_mix = 0; /* the command line's list replaces the file's */
            if (a->n_mix == LM_MAX_MIX) return kd_cli_usage_error(cmd, "at most %d --mix files", LM_MAX_MIX);
            a->mix[a->n_mix++] = optarg;
            break;
        case O_TOKENIZER:
            if (kd) return kd_cli_usage_error(cmd, "the student uses the teacher's tokenizer: no --tokenizer");
            if (!strcmp(optarg, "bpe")) a->bpe = 1;
            else if (!strcmp(optarg, "bytes")) a->bpe = 0;
            else return kd_cli_usage_error(cmd, "--tokenizer expects bytes or bpe, got '%s'", optarg);
            break;
        case O_VOCAB:
            if (kd) return kd_cli_usage_error(cmd, "the student uses the teacher's tokenizer: no --vocab");
            if (!kd_cli_int(cmd, "--vocab", optarg, 257, KD_LM_BPE_MAX_VOCAB, &a->vocab)) return KD_EXIT_USAGE;
            a->set_vocab = 1;
            break;
        case O_CONFIG: break; /* read by with_config */
        default:
        bad:
            if (o == O_TEACHER || o == O_INIT || o == O_LOSS)
                return kd_cli_usage_error(cmd, "--%s is an option of distill lm kd",
                                          o == O_TEACHER ? "teacher" : o == O_INIT ? "init-from-teacher" : "loss");
            return kd_cli_usage_error(cmd, "unknown or misplaced option");
        }
    }
    if (optind < argc) return kd_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (a->set_vocab && !a->bpe)
        return kd_cli_usage_error(cmd, "--vocab sets the size of a BPE vocabulary: add --tokenizer bpe");
    if (kd && !a->tpath) return kd_cli_usage_error(cmd, "--teacher FILE is required");
    kd_cli_threads(a->threads);
    return LM_GO;
}

/* The student's shape from the teacher's where not given, and the default loss list. */
static void kd_from_teacher(train_args *a, kd_lm *teacher) {
    kd_error err;
    if (!a->set_dim) a->c.dim = teacher->cfg.dim;
    if (!a->set_heads) a->c.heads = teacher->cfg.heads;
    if (!a->set_ctx) a->c.ctx = teacher->cfg.ctx;
    a->c.vocab = teacher->cfg.vocab;
    if (a->n_terms == 0) {
        kd_lm_loss_term_parse(&a->terms[0], "fkl:T=1", &err);
        kd_lm_loss_term_parse(&a->terms[1], "ce:weight=0.5", &err);
        a->n_terms = 2;
    }
    a->tc.teacher = teacher;
    a->tc.terms = a->terms;
    a->tc.n_terms = a->n_terms;
}

/* The text (with --mix files), the tokenizer and the model (its weights from the teacher's layers
 * with --init-from-teacher); *tok_sec: seconds spent learning BPE merges. */
static kd_status build_student(train_args *a, kd_lm_text *text, kd_lm **m, double *tok_sec, kd_error *err) {
    kd_lm_tokenizer *tok = NULL;
    kd_lm *teacher = a->tc.teacher;
    kd_status s = kd_lm_text_load(text, a->text_path, a->holdout, a->tc.seq ? a->tc.seq : a->c.ctx, err);
    for (int i = 0; i < a->n_mix && !s; i++) s = kd_lm_text_add_train(text, a->mix[i], err);
    if (s) return s;
    if (a->bpe) { /* learnt on the training split only; the same text gives the same merges (resume) */
        double t0 = kd_now();
        s = kd_lm_tokenizer_train(&tok, text->data, text->n_train, a->vocab, err);
        if (s) return s;
        *tok_sec = kd_now() - t0;
        a->c.vocab = kd_lm_tokenizer_vocab(tok);
    } else if (a->kd && (s = kd_lm_tokenizer_clone(&tok, teacher->tok, err))) {
        return s;
    }
    s = kd_lm_create(m, &a->c, a->tc.seed, err);
    if (!s) s = kd_lm_set_tokenizer(*m, tok, err);
    if (s) {
        kd_lm_tokenizer_free(tok);
        return s;
    } /* the model owns tok */
    if (a->init) s = kd_lm_init_from_teacher(*m, teacher, err);
    return s;
}

static void print_header(const char *cmd, const train_args *a, const kd_lm *m, const kd_lm_text *text, double tok_sec) {
    char pb[32];
    kd_cli_bytes(pb, sizeof pb, (double)m->n_params * 4);
    fprintf(stderr, "%s: %d layers, dim %d, %d heads, ctx %d: %zu parameters (%s); text %s%s: %zu bytes, %zu held out\n",
            cmd, a->c.layers, a->c.dim, a->c.heads, a->c.ctx, m->n_params, pb, a->text_path, a->n_mix ? " + --mix" : "",
            text->n, text->n - text->n_train);
    if (a->bpe)
        fprintf(stderr, "%s: BPE tokenizer: %d tokens learnt on the %zu training bytes in %.1f s\n", cmd, a->c.vocab,
                text->n_train, tok_sec);
    if (a->kd) {
        const kd_lm *teacher = a->tc.teacher;
        fprintf(stderr, "%s: teacher %s (%d layers, dim %d)%s; loss", cmd, a->tpath, teacher->cfg.layers,
                teacher->cfg.dim, a->init ? ", student initialised from its layers" : "");
        for (int i = 0; i < a->n_terms; i++) {
            char b[64];
            kd_lm_loss_term_format(&a->terms[i], b, sizeof b);
            fprintf(stderr, " %s", b);
        }
        fputc('\n', stderr);
    }
}

static int cmd_train(int argc, char **argv, int kd, int n_file) {
    const char *cmd = kd ? "lm kd" : "lm train";
    train_args a;
    int rc = parse_train(&a, argc, argv, kd, n_file);
    if (rc != LM_GO) return rc;
    rc = KD_EXIT_OK;
    kd_error err;
    kd_lm *teacher = NULL, *m = NULL;
    kd_lm_text text = {0};
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", a.out);
    const char *outs[] = {a.out, ckpt};
    const char *ins[2 + LM_MAX_MIX] = {a.text_path, a.tpath};
    memcpy(ins + 2, a.mix, (size_t)a.n_mix * sizeof *ins);
    if (kd_cli_check_outputs(cmd, outs, 2, ins, 2 + a.n_mix)) return KD_EXIT_ERROR;
    double tok_sec = 0;
    if (kd) {
        if (kd_lm_load(a.tpath, &teacher, &err)) return kd_cli_fail(cmd, &err);
        kd_from_teacher(&a, teacher);
    }
    kd_lm_train_result res;
    if (build_student(&a, &text, &m, &tok_sec, &err)) {
        rc = kd_cli_fail(cmd, &err);
        goto done;
    }
    a.tc.threads = a.threads;
    a.tc.ckpt_path = ckpt;
    a.tc.stop = &kd_cli_stop;
    kd_cli_install_signals();
    if (a.tc.progress && kd_dist_rank() == 0) print_header(cmd, &a, m, &text, tok_sec);
    if (kd_lm_train(m, &text, &a.tc, &res, &err) || (kd_dist_rank() == 0 && kd_lm_save(a.out, m, NULL, NULL, &err))) {
        rc = kd_cli_fail(cmd, &err);
        goto done;
    }
    char held[96] = "no held-out text (--holdout 0)";
    if (res.val.tokens)
        snprintf(held, sizeof held, "held-out %.4f bits/byte, perplexity %.3f", res.val.bpb, res.val.ppl);
    /* bytes/s: tokens/s times the training text's bytes per token (1 for byte tokens) */
    char on[64] = "";
    if (kd_dist_size() > 1)
        snprintf(on, sizeof on, " on %d ranks, %.0f%% in sums", kd_dist_size(),
                 100.0 * res.comm_seconds / (res.seconds > 0 ? res.seconds : 1));
    printf("%s: %lld steps in %.1f s (%.1f ms/step, %.0f tokens/s, %.0f bytes/s%s); %s; wrote %s\n", cmd, res.steps_run,
           res.seconds, res.ms_per_step, res.tokens_per_sec, res.tokens_per_sec * res.bytes_per_token, on, held, a.out);
done:
    kd_lm_text_free(&text);
    kd_lm_free(m);
    kd_lm_free(teacher);
    return rc;
}

static const struct option eval_opts[] = {
    {"model", 1, 0, 'm'}, {"text", 1, 0, O_TEXT}, {"holdout", 1, 0, O_HOLD}, {"quant", 1, 0, O_QUANT},
    {"batch", 1, 0, 'b'}, {"seq", 1, 0, O_SEQ}, {"threads", 1, 0, 'j'}, {"help", 0, 0, 'h'},
    {"config", 1, 0, O_CONFIG}, {0, 0, 0, 0}};

static int cmd_eval(int argc, char **argv, int unused, int n_file) {
    (void)unused;
    (void)n_file;
    const char *cmd = "lm eval", *mpath = NULL, *text_path = LM_DEFAULT_TEXT;
    float holdout = 0.05f;
    int batch = 8, seq = 0, threads = 1, o;
    kd_lm_qtype qt = KD_LM_F32;
    kd_error err;
    optind = 1;
    while ((o = getopt_long(argc, argv, "m:b:j:h", eval_opts, NULL)) != -1) {
        switch (o) {
        case 'm': mpath = optarg; break;
        case O_TEXT: text_path = optarg; break;
        case O_HOLD: if (!kd_cli_float(cmd, "--holdout", optarg, 0.0001, 0.5, &holdout)) return KD_EXIT_USAGE; break;
        case O_QUANT: if (kd_lm_qtype_parse(&qt, optarg, &err)) return kd_cli_usage_error(cmd, "%s", err.msg); break;
        case 'b': if (!kd_cli_int(cmd, "--batch", optarg, 1, 65536, &batch)) return KD_EXIT_USAGE; break;
        case O_SEQ: if (!kd_cli_int(cmd, "--seq", optarg, 1, 65536, &seq)) return KD_EXIT_USAGE; break;
        case 'j': if (!kd_cli_int(cmd, "--threads", optarg, 1, 1024, &threads)) return KD_EXIT_USAGE; break;
        case 'h':
            printf("Usage: distill lm eval -m MODEL.safetensors [--text FILE] [--quant q8|q4]\n\n"
                   "Bits per byte and perplexity on the held-out tail of the text (the same split as\n"
                   "training: the last --holdout of the file), in non-overlapping windows of the context.\n"
                   "  -m, --model FILE    the checkpoint (distill lm train/kd)\n"
                   "      --text FILE     the text (default %s)\n"
                   "      --holdout F     held-out fraction (default 0.05)\n"
                   "      --quant TYPE    f32 (default), q8 (int8 in blocks of 32) or q4 (4-bit in blocks of\n"
                   "                      32): the weights the integer kernels of lm generate use\n"
                   "      --seq N         window length (default: ctx)\n"
                   "  -b, --batch N       windows per forward pass (default 8)\n"
                   "  -j, --threads N     threads (default 1)\n"
                   "      --config FILE   options from a YAML run file (the command line overrides it)\n", LM_DEFAULT_TEXT);
            return 0;
        case O_CONFIG: break; /* read by with_config */
        default: return kd_cli_usage_error(cmd, "unknown option");
        }
    }
    if (!mpath) return kd_cli_usage_error(cmd, "-m MODEL is required");
    kd_cli_threads(threads);
    kd_lm *m = NULL;
    kd_lm_text text = {0};
    int rc = KD_EXIT_OK;
    if (kd_lm_load(mpath, &m, &err) || kd_lm_text_load(&text, text_path, holdout, seq ? seq : m->cfg.ctx, &err) ||
        kd_lm_fake_quantize(m, qt, &err)) {
        rc = kd_cli_fail(cmd, &err);
        goto done;
    }
    kd_lm_set_threads(m, threads);
    kd_lm_eval ev;
    if (kd_lm_evaluate(m, text.data + text.n_train, text.n - text.n_train, batch, seq, &ev, &err)) {
        rc = kd_cli_fail(cmd, &err);
        goto done;
    }
    double es = ev.seconds > 0 ? ev.seconds : 1e-9;
    printf("%s %s: %.4f bits/byte, perplexity %.3f, loss %.4f nats/token over %lld held-out bytes, %lld tokens "
           "(%.0f bytes/s, %.0f tokens/s)\n", mpath, kd_lm_qtype_traits(qt)->name, ev.bpb, ev.ppl, ev.loss, ev.bytes,
           ev.tokens, ev.bytes / es, ev.tokens / es);
done:
    kd_lm_text_free(&text);
    kd_lm_free(m);
    return rc;
}

static const struct option gen_opts[] = {
    {"model", 1, 0, 'm'}, {"teacher", 1, 0, 'm'}, {"prompt", 1, 0, O_PROMPT}, {"temperature", 1, 0, O_TEMP},
    {"top-k", 1, 0, O_TOPK}, {"top-p", 1, 0, O_TOPP}, {"seed", 1, 0, O_SEED}, {"tokens", 1, 0, O_TOKENS},
    {"out", 1, 0, O_OUT}, {"quant", 1, 0, O_QUANT}, {"threads", 1, 0, 'j'}, {"quiet", 0, 0, 'q'},
    {"help", 0, 0, 'h'}, {"config", 1, 0, O_CONFIG}, {0, 0, 0, 0}};

typedef struct gen_sink {
    FILE *f;           /* stdout, or NULL when collecting */
    unsigned char *buf;
    size_t n, cap;
    long long done, total, bytes;
    int progress, tty;
    double t0, last;
    const kd_lm_tokenizer *tok;
} gen_sink;

static int emit(void *ctx, int tok) {
    gen_sink *s = ctx;
    size_t len;
    const uint8_t *b = kd_lm_tokenizer_token(s->tok, tok, &len);
    s->done++;
    s->bytes += (long long)len;
    if (s->f) {
        fwrite(b, 1, len, s->f);
        if (memchr(b, '\n', len)) fflush(s->f);
    } else {
        if (s->n + len > s->cap) {
            size_t cap = s->cap ? 2 * s->cap : 1 << 16;
            while (cap < s->n + len) cap *= 2;
            unsigned char *nb = realloc(s->buf, cap);
            if (!nb) return 1;
            s->buf = nb;
            s->cap = cap;
        }
        memcpy(s->buf + s->n, b, len);
        s->n += len;
        double now = kd_now();
        if (s->progress && (now - s->last > (s->tty ? 0.2 : 15.0) || s->done == s->total)) {
            s->last = now;
            char eta[32];
            double r = s->done / (now - s->t0 + 1e-9);
            kd_format_duration(eta, sizeof eta, (double)(s->total - s->done) / (r > 0 ? r : 1));
            fprintf(stderr, "%sgenerated %lld/%lld tokens (%lld bytes)  %.0f tok/s  ETA %s%s", s->tty ? "\r" : "", s->done,
                    s->total, s->bytes, r, eta, s->tty ? "\033[K" : "\n");
        }
    }
    return kd_cli_stop;
}

static int cmd_generate(int argc, char **argv, int unused, int n_file) {
    (void)unused;
    (void)n_file;
    const char *cmd = "lm generate", *mpath = NULL, *prompt = "", *out = NULL;
    kd_lm_sample_config sc = {0.8f, 0, 1.f, 1};
    int threads = 1, o, v, quiet = 0;
    long long n = 256;
    kd_lm_qtype qt = KD_LM_F32;
    kd_error err;
    optind = 1;
    while ((o = getopt_long(argc, argv, "m:j:qh", gen_opts, NULL)) != -1) {
        switch (o) {
        case 'm': mpath = optarg; break;
        case O_PROMPT: prompt = optarg; break;
        case O_TEMP: if (!kd_cli_float(cmd, "--temperature", optarg, 0, 100, &sc.temperature)) return KD_EXIT_USAGE; break;
        case O_TOPK: if (!kd_cli_int(cmd, "--top-k", optarg, 0, 1 << 20, &sc.top_k)) return KD_EXIT_USAGE; break;
        case O_TOPP: if (!kd_cli_float(cmd, "--top-p", optarg, 1e-6, 1, &sc.top_p)) return KD_EXIT_USAGE; break;
        case O_SEED: if (!kd_cli_int(cmd, "--seed", optarg, 0, 2147483647, &v)) return KD_EXIT_USAGE; sc.seed = (uint64_t)v; break;
        case O_TOKENS: if (!kd_cli_int(cmd, "--tokens", optarg, 0, 2000000000, &v)) return KD_EXIT_USAGE; n = v; break;
        case O_OUT: out = optarg; break;
        case O_QUANT: if (kd_lm_qtype_parse(&qt, optarg, &err)) return kd_cli_usage_error(cmd, "%s", err.msg); break;
        case 'j': if (!kd_cli_int(cmd, "--threads", optarg, 1, 1024, &threads)) return KD_EXIT_USAGE; break;
        case 'q': quiet = 1; break;
        case 'h':
            printf("Usage: distill lm generate -m MODEL.safetensors [--prompt TEXT] [options]\n\n"
                   "Sample text from a language model, one byte at a time with a key/value cache.\n"
                   "  -m, --model FILE    the checkpoint (--teacher is a synonym)\n"
                   "      --prompt TEXT   text to continue (default: start of a line)\n"
                   "      --tokens N      tokens to generate (default 256; bytes, unless the model has a BPE\n"
                   "                      tokenizer)\n"
                   "      --temperature X softmax temperature (default 0.8; 0 = greedy)\n"
                   "      --top-k K       sample among the K most likely bytes (default 0 = all)\n"
                   "      --top-p P       nucleus sampling: the smallest set with probability >= P (default 1)\n"
                   "      --seed N        the same seed, model and options give the same text (default 1)\n"
                   "      --quant TYPE    f32 (default), q8 or q4 weights\n"
                   "      --out FILE      write the text to FILE (atomically) instead of stdout: a synthetic\n"
                   "                      corpus for sequence-level distillation (then: distill lm train\n"
                   "                      --text FILE ...)\n"
                   "  -j, --threads N     threads (default 1)\n"
                   "  -q, --quiet         no statistics on stderr\n"
                   "      --config FILE   options from a YAML run file (the command line overrides it)\n"
                   "The speed (tokens/s) goes to stderr at the end. When the context fills, generation\n"
                   "continues from the last ctx/2 bytes.\n");
            return 0;
        case O_CONFIG: break; /* read by with_config */
        default: return kd_cli_usage_error(cmd, "unknown option");
        }
    }
    if (!mpath) return kd_cli_usage_error(cmd, "-m MODEL is required");
    kd_cli_threads(threads);
    if (kd_cli_check_outputs(cmd, &out, 1, &mpath, 1)) return KD_EXIT_ERROR;
    kd_lm *m = NULL;
    kd_lm_infer *inf = NULL;
    int rc = KD_EXIT_OK;
    if (kd_lm_load(mpath, &m, &err) || kd_lm_infer_create(&inf, m, qt, &err)) {
        rc = kd_cli_fail(cmd, &err);
        goto done;
    }
    kd_lm_set_threads(m, threads);
    gen_sink sink = {out ? NULL : stdout, NULL, 0, 0, 0, n, 0, out && !quiet, 0, kd_now(), 0, m->tok};
    sink.tty = sink.progress && isatty(2);
    kd_cli_install_signals();
    if (!out) fputs(prompt, stdout);
    double t0 = kd_now();
    if (kd_lm_generate(inf, (const uint8_t *)prompt, strlen(prompt), n, &sc, emit, &sink, &err)) {
        rc = kd_cli_fail(cmd, &err);
        free(sink.buf);
        goto done;
    }
    double sec = kd_now() - t0;
    if (sink.progress && sink.tty) fputc('\n', stderr);
    if (!out) {
        fputc('\n', stdout);
        fflush(stdout);
    } else if (kd_write_file_atomic(out, sink.buf, sink.n, &err)) {
        rc = kd_cli_fail(cmd, &err);
    }
    free(sink.buf);
    if (!quiet && !rc) {
        char wb[32];
        kd_cli_bytes(wb, sizeof wb, (double)kd_lm_infer_weight_bytes(inf));
        fprintf(stderr, "%s: %lld tokens (%lld bytes) in %.2f s: %.0f tokens/s, %.0f bytes/s (%s weights, %s, %d thread%s)%s%s\n",
                cmd, sink.done, sink.bytes, sec, sink.done / (sec > 0 ? sec : 1e-9), sink.bytes / (sec > 0 ? sec : 1e-9),
                kd_lm_qtype_traits(qt)->name, wb, threads, threads > 1 ? "s" : "",
                out ? "; wrote " : "", out ? out : "");
    }
    if (!rc && kd_cli_stop) rc = KD_EXIT_INTERRUPTED;
done:
    kd_lm_infer_free(inf);
    kd_lm_free(m);
    return rc;
}

/* --config FILE.yaml (as distill kd --config): the run file's keys are the command's long options
 * (lists repeat an option), turned into argv before the command line's options, which so win. */
static int with_config(const char *cmd, const struct option *opts, int (*run)(int, char **, int, int), int argc,
                       char **argv, int kd) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (strcmp(argv[i], "--config") && strncmp(argv[i], "--config=", 9)) continue;
        const char *path = argv[i][8] == '=' ? argv[i] + 9 : i + 1 < argc ? argv[i + 1] : NULL;
        if (!path || !*path) return kd_cli_usage_error(cmd, "--config needs a file");
        int n_file = 0;
        if (!kd_cli_config_args(cmd, path, opts, &argc, &argv, &n_file)) return KD_EXIT_USAGE;
        int rc = run(argc, argv, kd, n_file);
        kd_cli_free_args(argc, argv);
        return rc;
    }
    return run(argc, argv, kd, 1);
}

int kd_cmd_lm(int argc, char **argv) {
    if (argc < 2) {
        help_main(stderr);
        return KD_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        help_main(stdout);
        return 0;
    }
    if (!strcmp(sub, "train")) return with_config("lm train", train_opts, cmd_train, argc - 1, argv + 1, 0);
    if (!strcmp(sub, "kd")) return with_config("lm kd", train_opts, cmd_train, argc - 1, argv + 1, 1);
    if (!strcmp(sub, "eval")) return with_config("lm eval", eval_opts, cmd_eval, argc - 1, argv + 1, 0);
    if (!strcmp(sub, "generate")) return with_config("lm generate", gen_opts, cmd_generate, argc - 1, argv + 1, 0);
    fprintf(stderr, "distill lm: unknown command '%s'\n\n", sub);
    help_main(stderr);
    return KD_EXIT_USAGE;
}
