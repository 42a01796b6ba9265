/* `distill pipeline FILE.yaml`: teacher -> distilled student -> pruned student fine-tuned with the
 * teacher -> report (plus, optionally, the student trained on labels only). Each stage is one of the
 * subcommands, run in this process with the options of its section of the file (so a stage takes
 * exactly the options of `distill train`, `kd`, `prune`), writing its model to
 * OUT/<stage>.safetensors. The file is read once and checked whole before anything runs: its
 * sections, every section's options (by the commands' own --check) and the files it names. Beside
 * each output a record (OUT/<stage>....recipe) holds a checksum of the stage's recipe (program
 * version, its command line, the bytes of every input file it names; a data set is taken by its
 * name, so replacing the IDX files under the same name is not seen) and of its output: a stage whose record
 * matches is skipped, a stage that was started with the same recipe resumes (training stages run
 * with --resume), and any other is redone from scratch, so an edited file or a damaged output is
 * never trusted. The report is a table of every model (test accuracy, parameters, non-zeros, bytes
 * on disk, MACs, batch-1 latency) in OUT/report.md, and a plot of accuracy against size
 * (OUT/accuracy_size.png) when gnuplot is installed. Any failure fails the run. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "distill/compress.h"
#include "distill/fileio.h"
#include "distill/quantize.h"
#include "distill/version.h"

static void help(void) {
    printf("Usage: distill pipeline FILE.yaml [--out DIR]\n\n"
           "Run the whole path from one file: teacher -> distilled student -> pruned and fine-tuned\n"
           "student -> report. Sections (each optional but the student; keys are the options of the\n"
           "command in brackets):\n"
           "  out: DIR, data: SPEC, threads: N, seed: N   (passed to every stage)\n"
           "  data-format:, channels:, size:, fit:, test-fraction:, split-seed:, label-column:,\n"
           "  skip-bad: true   the data options (distill train --help), passed to every stage with data\n"
           "  teacher:  {...}   [distill train]  trains OUT/teacher.safetensors (unless teacher-file:)\n"
           "  baseline: {...}   [distill train]  the student on labels only, for comparison\n"
           "  student:  {...}   [distill kd]     distills OUT/student.safetensors from the teacher\n"
           "  prune:    {...}   [distill prune + distill kd] channels: R or sparsity: S, the rest\n"
           "                                     is the fine-tuning with the teacher\n"
           "  quantize: {...}   [distill quantize] int8 of the last model, OUT/int8.safetensors,\n"
           "                                     evaluated with the integer kernels\n"
           "  qat:      {...}   [distill kd --qat 8] quantization-aware distillation of the last model\n"
           "                                     (qat: 4 for int4 weights), OUT/qat.int8.safetensors\n"
           "The last int8 model is exported to OUT/student.kdm for the kdrt runtime, and the report\n"
           "includes it as the device runs it (accuracy, bytes, batch-1 latency).\n"
           "The whole file is checked before the first stage. A finished stage whose recipe (options,\n"
           "input files, program version) is unchanged is skipped, an interrupted one resumes, any\n"
           "other is redone; so rerunning continues, and an edited file redoes what it changes.\n"
           "Example: examples/fashion-mnist.yaml\n");
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

typedef int (*cmd_fn)(int, char **);

#define STAGE_MAX_ARGS 256

/* One stage: one command (or two: the prune stage's prune, then kd) with its whole argv, the file
 * that marks it done, and the other files it writes (a redo removes them: out_arg and its .ckpt, the
 * training state, and extra). */
typedef struct {
    const char *name, *output, *out_arg, *extra;
    int n_cmd, check; /* check: the commands take --check */
    cmd_fn fn[2];
    const char *argv[2][STAGE_MAX_ARGS + 2]; /* NULL-terminated; strings owned by sec_argv or the caller */
    int argc[2];
    int sec_argc;
    char **sec_argv; /* the section's options (owned) */
} stage;

static int add(stage *s, int c, const char *arg) {
    if (s->argc[c] == STAGE_MAX_ARGS) {
        fprintf(stderr, "distill pipeline: error: the %s stage has more than %d arguments\n", s->name, STAGE_MAX_ARGS);
        return 0;
    }
    s->argv[c][s->argc[c]++] = arg;
    s->argv[c][s->argc[c]] = NULL;
    return 1;
}

static int add_all(stage *s, int c, const char *const *args) {
    for (int i = 0; args && args[i]; i++)
        if (!add(s, c, args[i])) return 0;
    return 1;
}

/* Split the prune section: the pruning keys go to `distill prune`, the others to the fine-tuning. */
static int is_prune_key(const char *k) {
    return !strcmp(k, "--channels") || !strcmp(k, "--sparsity") || !strcmp(k, "--criterion") ||
           !strcmp(k, "--scope") || !strcmp(k, "--fold-bn");
}

/* The files a pipeline writes in OUT (the teacher may be given instead: teacher-file:). */
typedef struct {
    char teacher[600], baseline[600], student[600], pruned[600], pruned_kd[600], int8[600], qat[600], qat_int8[600];
    char kdm[600];
} stage_paths;

/* 3. pruning and fine-tuning with the teacher, from the prune section's options: the pruning keys
 * (with their values) go to `distill prune` (structured pruning: --channels) or become the
 * fine-tuning's gradual pruning (--sparsity, --scope); the rest go to `distill kd`. */
static int prune_args(stage *s, const char *const *kd_head, const stage_paths *p) {
    int structured = 0, ok = add(s, 0, "prune") && add_all(s, 1, kd_head);
    char **a = s->sec_argv;
    for (int i = 1; ok && i < s->sec_argc; i++) {
        int takes_value = strcmp(a[i], "--fold-bn") && strncmp(a[i], "--", 2) == 0 && i + 1 < s->sec_argc &&
                          strncmp(a[i + 1], "--", 2) != 0;
        if (!is_prune_key(a[i])) {
            ok = add(s, 1, a[i]) && (!takes_value || add(s, 1, a[++i]));
        } else if (!strcmp(a[i], "--sparsity") && takes_value) { /* gradual, during the fine-tuning */
            ok = add(s, 1, "--prune-sparsity") && add(s, 1, a[++i]);
        } else if (!strcmp(a[i], "--scope") && takes_value) {
            ok = add(s, 1, "--prune-scope") && add(s, 1, a[++i]);
        } else {
            structured |= !strcmp(a[i], "--channels");
            ok = add(s, 0, a[i]) && (!takes_value || add(s, 0, a[++i]));
        }
    }
    s->extra = structured ? p->pruned : NULL;
    const char *ptail[] = {p->student, "-o", p->pruned, NULL};
    const char *ktail[] = {"--student", structured ? p->pruned : p->student, "-o", p->pruned_kd, NULL};
    return ok && add_all(s, 0, ptail) && add_all(s, 1, ktail);
}

/* CRC-32 of a file's bytes; 0 if it cannot be read. */
static int file_crc(const char *path, uint32_t *crc) {
    char *d = NULL;
    size_t n = 0;
    kd_error err;
    if (kd_read_file(path, &d, &n, &err)) return 0;
    *crc = kdrt_crc32(0, d, n);
    free(d);
    return 1;
}

/* The recipe: the program's version, the stage's command lines, and the bytes of every argument that
 * names a regular file (its inputs: teacher, student, model YAML, logits...) but its own outputs and
 * its log. */
static uint32_t recipe_crc(const stage *s) {
    uint32_t h = kdrt_crc32(0, KD_VERSION_STRING, sizeof KD_VERSION_STRING);
    h = kdrt_crc32(h, s->name, strlen(s->name) + 1);
    for (int c = 0; c < s->n_cmd; c++)
        for (int i = 0; i < s->argc[c]; i++) {
            const char *a = s->argv[c][i];
            h = kdrt_crc32(h, a, strlen(a) + 1);
            int own = !strcmp(a, s->output) || (s->out_arg && !strcmp(a, s->out_arg)) || (s->extra && !strcmp(a, s->extra)) ||
                      (i > 0 && !strcmp(s->argv[c][i - 1], "--log"));
            uint32_t fc; /* file_crc reads regular files only (kd_read_file): other arguments are skipped */
            if (!own && file_crc(a, &fc)) h = kdrt_crc32(h, &fc, sizeof fc);
        }
    return h;
}

/* The stage's record, OUTPUT.recipe: state (started/done), recipe and output checksums. */
typedef struct {
    int found, done;
    unsigned recipe, output;
} record;

static void record_path(const stage *s, char *buf, size_t n) { snprintf(buf, n, "%s.recipe", s->output); }

static record record_read(const stage *s) {
    char path[700], *text = NULL, state[16] = "";
    size_t n = 0;
    kd_error err;
    record r = {0};
    record_path(s, path, sizeof path);
    if (kd_read_file(path, &text, &n, &err)) return r;
    r.found = sscanf(text, "distill pipeline stage record\nstate %15s\nrecipe %x\noutput %x", state, &r.recipe,
                     &r.output) == 3;
    r.done = r.found && !strcmp(state, "done");
    free(text);
    return r;
}

static int record_write(const stage *s, int done, uint32_t recipe, uint32_t output) {
    char path[700], text[128];
    kd_error err;
    record_path(s, path, sizeof path);
    int n = snprintf(text, sizeof text, "distill pipeline stage record\nstate %s\nrecipe %08x\noutput %08x\n",
                     done ? "done" : "started", (unsigned)recipe, (unsigned)output);
    if (kd_write_file_atomic(path, text, (size_t)n, &err)) return kd_cli_fail("pipeline", &err);
    return 0;
}

/* Remove what a stage wrote, so that it is redone from scratch. */
static void stage_clear(const stage *s) {
    char ckpt[700], rec[700];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", s->out_arg ? s->out_arg : s->output);
    record_path(s, rec, sizeof rec);
    const char *files[] = {s->output, s->out_arg, ckpt, s->extra, rec};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (files[i]) remove(files[i]);
}

/* Run one command of a stage on a copy of its argv (getopt permutes the array), with extra
 * appended (NULL: none). */
static int call(const stage *s, int c, const char *extra) {
    const char *a[STAGE_MAX_ARGS + 2];
    memcpy(a, s->argv[c], sizeof(char *) * (size_t)(s->argc[c] + 1));
    int n = s->argc[c];
    if (extra) a[n++] = extra;
    a[n] = NULL;
    return s->fn[c](n, (char **)a);
}

/* Run a stage unless its record shows it done with the same recipe and its output still matches. */
static int stage_run(const stage *s) {
    uint32_t recipe = recipe_crc(s), out_crc = 0;
    record r = record_read(s);
    if (r.found && r.done && r.recipe == recipe && file_crc(s->output, &out_crc) && out_crc == r.output) {
        printf("== pipeline: %s: %s exists, skipped\n", s->name, s->output);
        return 0;
    }
    if (!(r.found && !r.done && r.recipe == recipe)) { /* not the same recipe interrupted: from scratch */
        if (r.found || exists(s->output) || (s->out_arg && exists(s->out_arg))) {
            const char *why = !r.found ? "no record of how it was made"
                              : r.recipe != recipe ? "recipe changed"
                                                   : "it does not match its record (changed or damaged)";
            printf("== pipeline: %s: %s: %s, redoing\n", s->name, s->output, why);
        }
        stage_clear(s);
    }
    int rc = record_write(s, 0, recipe, 0);
    for (int c = 0; !rc && c < s->n_cmd; c++) {
        printf("\n== pipeline: %s:", c + 1 < s->n_cmd ? "prune" : s->name);
        for (int i = 1; i < s->argc[c]; i++) printf(" %s", s->argv[c][i]);
        printf("\n");
        fflush(stdout);
        rc = call(s, c, NULL);
        fflush(stdout);
    }
    if (rc) return rc;
    if (!file_crc(s->output, &out_crc)) {
        fprintf(stderr, "distill pipeline: error: the %s stage did not write %s\n", s->name, s->output);
        return KD_EXIT_ERROR;
    }
    return record_write(s, 1, recipe, out_crc);
}

/* The report's rows of fp32 models: test accuracy, sizes, MACs, batch-1 latency. Returns an exit code. */
static int report_models(const char *C, const stage_paths *p, const int *present, const kd_dataset *test, int threads,
                         FILE *md, FILE *ts) {
    const char *const rows[][2] = {{"teacher", p->teacher}, {"student (CE only)", p->baseline},
                                   {"student (KD)", p->student}, {"pruned + KD", p->pruned_kd}};
    for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
        if (!present[r]) continue;
        kd_model *m = NULL;
        if (kd_cli_load_model(C, rows[r][1], &m)) return KD_EXIT_ERROR;
        kd_error err;
        kd_eval_result ev;
        double med = 0, p99 = 0;
        if (kd_evaluate(m, test, 256, threads, &ev, NULL, &err)) {
            kd_model_free(m);
            return kd_cli_fail(C, &err);
        }
        kd_cli_latency(m, test, 300, &med, &p99);
        size_t nz = 0;
        for (size_t i = 0; i < m->n_params; i++) nz += m->params[i] != 0.f;
        long long bytes = kd_input_size(rows[r][1], NULL);
        char line[512];
        snprintf(line, sizeof line, "| %s | %.2f%% | %zu | %zu | %lld | %lld | %.1f us |\n", rows[r][0],
                 100 * ev.accuracy, m->n_params, nz, bytes, kd_model_macs(m), med);
        fputs(line, md);
        fputs(line, stdout);
        fprintf(ts, "%s\t%.4f\t%zu\t%zu\t%lld\t%lld\t%.2f\n", rows[r][0], 100 * ev.accuracy, m->n_params, nz, bytes,
                kd_model_macs(m), med);
        kd_model_free(m);
    }
    return 0;
}

/* The report's rows of integer models, evaluated as the device runs them: with the integer
 * kernels, and the .kdm through the runtime. Returns an exit code. */
static int report_int8(const char *C, const stage_paths *p, const int *present, const char *last, const char *ship,
                       const kd_dataset *test, int threads, FILE *md, FILE *ts) {
    const char *int8_rows[2][2] = {{"int8 PTQ", p->int8}, {"int8 QAT+KD", p->qat_int8}};
    for (int r = 0; r < 2; r++) {
        if (!present[r]) continue;
        kd_int8_model *q = NULL;
        kd_error err;
        double acc = 0;
        long long bytes = kd_input_size(int8_rows[r][1], NULL);
        if (kd_int8_load(int8_rows[r][1], &q, &err) || kd_int8_evaluate(q, test, 256, threads, &acc, NULL, &err)) {
            kd_int8_free(q);
            return kd_cli_fail(C, &err);
        }
        char line[512];
        snprintf(line, sizeof line, "| %s%s (of %s) | %.2f%% | %zu bytes of weights | - | %lld | - | - |\n",
                 int8_rows[r][0], q->weight_bits == 4 ? ", int4 weights" : "",
                 last == p->pruned_kd ? "pruned + KD" : "student", 100 * acc, kd_int8_param_bytes(q), bytes);
        fputs(line, md);
        fputs(line, stdout);
        fprintf(ts, "%s\t%.4f\t0\t0\t%lld\t0\t0\n", int8_rows[r][0], 100 * acc, bytes);
        kd_int8_free(q);
    }
    kd_cli_kdm k;
    if (!ship) return 0;
    if (kd_cli_kdm_run(C, p->kdm, test, 2000, &k)) return KD_EXIT_ERROR;
    char line[512];
    snprintf(line, sizeof line, "| kdrt .kdm (of %s) | %.2f%% | - | - | %zu | - | %.1f us (int8) |\n",
             ship == p->qat_int8 ? "int8 QAT+KD" : "int8 PTQ", 100 * k.accuracy, k.len, k.median_us);
    fputs(line, md);
    fputs(line, stdout);
    fprintf(ts, "kdrt .kdm\t%.4f\t0\t0\t%zu\t0\t%.2f\n", 100 * k.accuracy, k.len, k.median_us);
    kd_cli_kdm_free(&k);
    return 0;
}

/* Write a report file built in memory (atomically: a reader never sees half of it). */
static int write_text(const char *C, const char *path, const char *text, size_t len) {
    kd_error err;
    return kd_write_file_atomic(path, text, len, &err) ? kd_cli_fail(C, &err) : 0;
}

/* 5. the report: OUT/report.md (and .tsv), and the plot of accuracy against size if gnuplot is
 * there (Debian's gnuplot-nox). fp32[4]: teacher, baseline, student, pruned rows; int8[2]: PTQ, QAT. */
static int write_report(const char *C, const char *out, const char *data, const kd_data_opts *dopts, int threads,
                        const stage_paths *p,
                        const int *fp32, const int *int8, const char *last, const char *ship) {
    char report[600], tsv[600], *md_text = NULL, *ts_text = NULL;
    size_t md_len = 0, ts_len = 0;
    snprintf(report, sizeof report, "%s/report.md", out);
    snprintf(tsv, sizeof tsv, "%s/report.tsv", out);
    kd_dataset test = {0};
    if (kd_cli_load_data(C, data, "test", dopts, NULL, &test)) return KD_EXIT_ERROR;
    FILE *md = open_memstream(&md_text, &md_len), *ts = open_memstream(&ts_text, &ts_len);
    int rc = !md || !ts ? KD_EXIT_ERROR : 0;
    if (rc) fprintf(stderr, "distill pipeline: error: out of memory for the report\n");
    const char *hdr = "| model | test accuracy | parameters | non-zero | bytes on disk | MACs/image | batch-1 latency |\n"
                      "|---|---:|---:|---:|---:|---:|---:|\n";
    if (!rc) {
        fputs(hdr, md);
        printf("\n== pipeline: report (%s)\n%s", report, hdr);
        kd_cli_threads(threads);
        rc = report_models(C, p, fp32, &test, threads, md, ts);
        if (!rc) rc = report_int8(C, p, int8, last, ship, &test, threads, md, ts);
    }
    if (md) fclose(md);
    if (ts) fclose(ts);
    kd_dataset_free(&test);
    if (!rc) rc = write_text(C, report, md_text, md_len);
    if (!rc) rc = write_text(C, tsv, ts_text, ts_len);
    free(md_text);
    free(ts_text);
    if (rc) return rc;
    if (system("command -v gnuplot >/dev/null 2>&1") == 0) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd,
                 "gnuplot -e \"set terminal png size 800,500; set output '%s/accuracy_size.png'; set logscale x; "
                 "set xlabel 'bytes on disk'; set ylabel 'test accuracy (%%)'; set datafile separator '\\t'; "
                 "set grid; plot '%s' using 5:2:1 with labels point pt 7 offset char 1,1 notitle\" 2>/dev/null",
                 out, tsv);
        if (system(cmd) == 0) printf("plot: %s/accuracy_size.png\n", out);
    }
    printf("report: %s\n", report);
    return 0;
}

/* A stage from the file's section: head, the section's options (checked against tables), tail.
 * Returns 1 (stage added), -1 (no such section: nothing added unless required), 0 (error). */
static int section_stage(const kd_cli_yaml *y, stage *s, const char *name, int required, cmd_fn fn,
                         const struct option *const *tables, const char *const *head, const char *const *tail,
                         const char *output, const char *out_arg) {
    memset(s, 0, sizeof *s);
    s->name = name;
    s->output = output;
    s->out_arg = out_arg;
    s->check = 1;
    int r = kd_cli_config_section(y, name, tables, head, &s->sec_argc, &s->sec_argv);
    if (!r || (r < 0 && !required)) {
        if (s->sec_argv) kd_cli_free_args(s->sec_argc, s->sec_argv);
        s->sec_argv = NULL;
        return r;
    }
    s->n_cmd = 1;
    s->fn[0] = fn;
    for (int i = 0; i < s->sec_argc; i++)
        if (!add(s, 0, s->sec_argv[i])) return 0;
    return add_all(s, 0, tail) ? 1 : 0;
}

/* The top-level keys of a pipeline file. */
static const char *const pipeline_keys[] = {"out",     "data",     "threads",  "seed", "teacher-file", "teacher",
                                            "baseline", "student", "prune", "quantize", "qat", "data-format",
                                            "channels", "size", "fit", "test-fraction", "split-seed",
                                            "label-column", "skip-bad", NULL};
/* The data options among them (KD_CLI_DATA_OPTIONS), given to every stage that reads the data. */
#define DATA_KEYS 8
static const char *const data_keys[DATA_KEYS] = {"data-format",   "channels",   "size",         "fit",
                                                 "test-fraction", "split-seed", "label-column", "skip-bad"};

typedef struct {
    stage st[7];
    int n;
    stage_paths p;
    const char *out, *data, *thr, *seed, *teacher_file, *last, *ship;
    int fp32[4], int8[2];
    char data_flags[DATA_KEYS][24];   /* "--data-format", ... */
    const char *data_args[2 * DATA_KEYS + 1]; /* the file's data options as arguments, NULL-terminated */
    kd_data_opts data_opts;           /* the same, parsed, for the report's test split */
} pipeline;

/* The file's data options (top-level keys) into pl->data_args (as "--key value", or "--skip-bad"
 * for skip-bad: true) and pl->data_opts, checked as the commands check them. Returns 1, or 0 after
 * printing the error. */
static int data_options(const kd_cli_yaml *y, pipeline *pl) {
    static const struct option dopts[] = {KD_CLI_DATA_OPTIONS, {0, 0, 0, 0}};
    int n = 0;
    pl->data_opts = kd_data_opts_default();
    for (int k = 0; k < DATA_KEYS; k++) {
        const char *v = NULL;
        if (!kd_cli_config_scalar(y, data_keys[k], NULL, &v)) return 0;
        if (!v) continue;
        snprintf(pl->data_flags[k], sizeof pl->data_flags[k], "--%s", data_keys[k]);
        int code = 0;
        for (const struct option *o = dopts; o->name; o++)
            if (!strcmp(o->name, data_keys[k])) code = o->val;
        if (code == KD_CLI_O_SKIP_BAD) {
            if (strcmp(v, "true") && strcmp(v, "false")) {
                fprintf(stderr, "distill pipeline: error: %sskip-bad must be true or false, got '%s'\n",
                        kd_cli_config_where(v), v);
                return 0;
            }
            if (!strcmp(v, "false")) continue;
        }
        if (kd_cli_parse_data_opt("pipeline", code, v, &pl->data_opts) < 0) return 0;
        pl->data_args[n++] = pl->data_flags[k];
        if (code != KD_CLI_O_SKIP_BAD) pl->data_args[n++] = v;
    }
    pl->data_args[n] = NULL;
    return 1;
}

/* head (NULL-terminated) followed by the data options, into dst (room for STAGE_MAX_ARGS). */
static const char *const *with_data(const char **dst, const char *const *head, const pipeline *pl) {
    int n = 0;
    for (int i = 0; head[i]; i++) dst[n++] = head[i];
    for (int i = 0; pl->data_args[i]; i++) dst[n++] = pl->data_args[i];
    dst[n] = NULL;
    return dst;
}

/* Read the file's settings and build every stage (checking sections and keys). Returns an exit code. */
static int plan(const kd_cli_yaml *y, const char *out_opt, pipeline *pl) {
    static const char *const required[] = {"student", NULL};
    const struct option *const train_t[] = {kd_cli_train_options, NULL}, *const quant_t[] = {kd_cli_quantize_options, NULL},
                               *const prune_t[] = {kd_cli_prune_options, kd_cli_train_options, NULL};
    if (!kd_cli_config_keys(y, pipeline_keys, required) || !kd_cli_config_scalar(y, "out", "out/pipeline", &pl->out) ||
        !kd_cli_config_scalar(y, "data", "fashion-mnist", &pl->data) || !kd_cli_config_scalar(y, "threads", "2", &pl->thr) ||
        !kd_cli_config_scalar(y, "seed", "1", &pl->seed) ||
        !kd_cli_config_scalar(y, "teacher-file", NULL, &pl->teacher_file) || !data_options(y, pl))
        return KD_EXIT_USAGE;
    if (out_opt) pl->out = out_opt;
    stage_paths *p = &pl->p;
    const char *out = pl->out;
    snprintf(p->int8, sizeof p->int8, "%s/int8.safetensors", out);
    snprintf(p->qat, sizeof p->qat, "%s/qat.safetensors", out);
    snprintf(p->qat_int8, sizeof p->qat_int8, "%s/qat.int8.safetensors", out);
    snprintf(p->kdm, sizeof p->kdm, "%s/student.kdm", out);
    snprintf(p->baseline, sizeof p->baseline, "%s/baseline.safetensors", out);
    snprintf(p->teacher, sizeof p->teacher, "%s/teacher.safetensors", out);
    snprintf(p->student, sizeof p->student, "%s/student.safetensors", out);
    snprintf(p->pruned, sizeof p->pruned, "%s/pruned.safetensors", out);
    snprintf(p->pruned_kd, sizeof p->pruned_kd, "%s/pruned-kd.safetensors", out);
    if (pl->teacher_file) {
        kd_error err;
        int fd = kd_open_input(pl->teacher_file, &err);
        if (fd < 0) {
            fprintf(stderr, "distill pipeline: error: %steacher-file: %s\n", kd_cli_config_where(pl->teacher_file), err.msg);
            return KD_EXIT_ERROR;
        }
        close(fd);
        snprintf(p->teacher, sizeof p->teacher, "%s", pl->teacher_file);
    }
    const char *data = pl->data, *thr = pl->thr, *seed = pl->seed;
    const char *train_base[] = {"train", "--data", data, "--threads", thr, "--seed", seed, "--resume", NULL};
    const char *kd_base[] = {"kd", "--data", data, "--threads", thr, "--seed", seed, "--resume", "--teacher", p->teacher, NULL};
    const char *train_buf[32], *kd_buf[32], *q_buf[32], *qat_buf[32];
    const char *const *train_head = with_data(train_buf, train_base, pl), *const *kd_head = with_data(kd_buf, kd_base, pl);
    const char *t_tail[] = {"-o", p->teacher, NULL}, *b_tail[] = {"-o", p->baseline, NULL}, *s_tail[] = {"-o", p->student, NULL};
    stage *s = pl->st;
    int r;
    /* 1. teacher (unless teacher-file:), 1b. optionally the student on labels only (what distillation adds), 2. student */
    if (pl->teacher_file) {
        int tr = kd_cli_config_section(y, "teacher", train_t, train_head, &s->sec_argc, &s->sec_argv);
        if (s->sec_argv) kd_cli_free_args(s->sec_argc, s->sec_argv);
        s->sec_argv = NULL;
        if (!tr) return KD_EXIT_USAGE;
        if (tr > 0) {
            fprintf(stderr, "distill pipeline: error: %sgive teacher-file: or a teacher: section, not both\n",
                    kd_cli_config_where(pl->teacher_file));
            return KD_EXIT_USAGE;
        }
    } else if (!(r = section_stage(y, s, "teacher", 1, kd_cmd_train, train_t, train_head, t_tail, p->teacher, NULL))) {
        return KD_EXIT_USAGE;
    } else {
        pl->n++;
    }
    pl->fp32[0] = 1;
    if (!(r = section_stage(y, &s[pl->n], "baseline", 0, kd_cmd_train, train_t, train_head, b_tail, p->baseline, NULL)))
        return KD_EXIT_USAGE;
    pl->fp32[1] = r > 0;
    pl->n += r > 0;
    if (!section_stage(y, &s[pl->n], "student", 1, kd_cmd_kd, train_t, kd_head, s_tail, p->student, NULL))
        return KD_EXIT_USAGE;
    pl->n++;
    pl->fp32[2] = 1;
    /* 3. pruning and fine-tuning with the teacher */
    const char *phead[] = {"prune", NULL};
    if (!(r = section_stage(y, &s[pl->n], "prune", 0, kd_cmd_prune, prune_t, phead, NULL, p->pruned_kd, NULL)))
        return KD_EXIT_USAGE;
    if (r > 0) {
        stage *ps = &s[pl->n++];
        ps->argc[0] = 0;
        ps->n_cmd = 2;
        ps->fn[1] = kd_cmd_kd;
        if (!prune_args(ps, kd_head, p)) return KD_EXIT_USAGE;
        if (!ps->extra) { /* unstructured: only the fine-tuning with gradual pruning */
            memcpy(ps->argv[0], ps->argv[1], sizeof ps->argv[1]);
            ps->argc[0] = ps->argc[1];
            ps->fn[0] = kd_cmd_kd;
            ps->n_cmd = 1;
        }
    }
    pl->fp32[3] = r > 0;
    /* 4. int8 post-training quantization of the last model (pruned if there is a prune stage) */
    pl->last = r > 0 ? p->pruned_kd : p->student;
    const char *q_base[] = {"quantize", "--data", data, "--threads", thr, NULL}, *q_tail[] = {pl->last, "-o", p->int8, NULL};
    const char *const *q_head = with_data(q_buf, q_base, pl);
    if (!(r = section_stage(y, &s[pl->n], "quantize", 0, kd_cmd_quantize, quant_t, q_head, q_tail, p->int8, NULL)))
        return KD_EXIT_USAGE;
    pl->int8[0] = r > 0;
    pl->n += r > 0;
    /* 4b. quantization-aware distillation of the same model (writes OUT/qat.int8.safetensors last) */
    const char *qat_base[] = {"kd", "--data", data, "--threads", thr, "--seed", seed, "--resume", "--teacher", p->teacher,
                              "--qat", "8", NULL};
    const char *const *qat_head = with_data(qat_buf, qat_base, pl);
    const char *qat_tail[] = {"--student", pl->last, "-o", p->qat, NULL};
    if (!(r = section_stage(y, &s[pl->n], "qat", 0, kd_cmd_kd, train_t, qat_head, qat_tail, p->qat_int8, p->qat)))
        return KD_EXIT_USAGE;
    pl->int8[1] = r > 0;
    pl->n += r > 0;
    /* 4c. the deployable model: the last int8 model as a .kdm for the kdrt runtime */
    pl->ship = pl->int8[1] ? p->qat_int8 : pl->int8[0] ? p->int8 : NULL;
    if (pl->ship) {
        stage *e = &s[pl->n++];
        memset(e, 0, sizeof *e);
        e->name = "export";
        e->output = p->kdm;
        e->n_cmd = 1;
        e->fn[0] = kd_cmd_export;
        const char *e_argv[] = {"export", pl->ship, "-o", p->kdm, NULL};
        if (!add_all(e, 0, e_argv)) return KD_EXIT_USAGE;
    }
    return 0;
}

/* Every stage's options through its command's own checks (--check), before anything runs. */
static int check_all(const pipeline *pl) {
    for (int i = 0; i < pl->n; i++)
        for (int c = 0; pl->st[i].check && c < pl->st[i].n_cmd; c++) {
            int rc = call(&pl->st[i], c, "--check");
            if (rc) {
                fprintf(stderr, "distill pipeline: error: the %s section is wrong (see above); nothing was run\n",
                        pl->st[i].name);
                return rc;
            }
        }
    return 0;
}

/* Every file the run will write (each stage's output and record, the report), checked before the
 * first stage runs, as each command checks its own (kd_cli_check_outputs); the teacher-file is an
 * input and must not be one of them. */
static int check_outputs(const pipeline *pl) {
    char rec[7][sizeof pl->p.kdm + 8], rep[3][sizeof pl->p.kdm];
    const char *outs[7 * 2 + 3], *ins[] = {pl->teacher_file};
    int n = 0;
    for (int i = 0; i < pl->n; i++) {
        record_path(&pl->st[i], rec[i], sizeof rec[i]);
        outs[n++] = pl->st[i].output;
        outs[n++] = rec[i];
    }
    const char *names[] = {"report.md", "report.tsv", "accuracy_size.png"};
    for (int i = 0; i < 3; i++) {
        snprintf(rep[i], sizeof rep[i], "%s/%s", pl->out, names[i]);
        outs[n++] = rep[i];
    }
    return kd_cli_check_outputs("pipeline", outs, n, ins, 1);
}

int kd_cmd_pipeline(int argc, char **argv) {
    static const struct option opts[] = {{"out", 1, 0, 'o'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *C = "pipeline", *out_opt = NULL;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1;) {
        if (c == 'h') {
            help();
            return 0;
        }
        if (c == 'o') out_opt = optarg;
        else return kd_cli_usage_error(C, "unknown option");
    }
    if (optind + 1 != argc) return kd_cli_usage_error(C, "give one pipeline file (see examples/fashion-mnist.yaml)");
    const char *file = argv[optind];
    kd_cli_yaml *y = kd_cli_yaml_open(C, file);
    if (!y) return exists(file) ? KD_EXIT_USAGE : KD_EXIT_ERROR;
    pipeline pl;
    memset(&pl, 0, sizeof pl);
    int rc = plan(y, out_opt, &pl), made = 0;
    /* the folder first: each stage's --check checks its outputs, which go into it */
    int mkdir_errno = 0;
    if (!rc && !(made = mkdir(pl.out, 0777) == 0) && (mkdir_errno = errno, !exists(pl.out))) {
        fprintf(stderr, "distill pipeline: error: cannot create %s (%s)\n", pl.out, strerror(mkdir_errno));
        rc = KD_EXIT_ERROR;
    }
    if (!rc) rc = check_all(&pl);
    if (!rc) rc = check_outputs(&pl);
    if (rc && made) rmdir(pl.out); /* nothing was run: leave no empty folder behind */
    if (!rc && pl.teacher_file) printf("== pipeline: teacher: %s exists, skipped (teacher-file)\n", pl.teacher_file);
    for (int i = 0; !rc && i < pl.n; i++)
        if ((rc = stage_run(&pl.st[i])) && rc != KD_EXIT_INTERRUPTED)
            fprintf(stderr, "distill pipeline: stopped: the %s stage failed (exit %d)\n", pl.st[i].name, rc);
    if (rc == KD_EXIT_INTERRUPTED) fprintf(stderr, "distill pipeline: interrupted; run the same command to continue\n");
    int threads = atoi(pl.thr ? pl.thr : "1");
    if (!rc) rc = write_report(C, pl.out, pl.data, &pl.data_opts, threads > 0 ? threads : 1, &pl.p, pl.fp32, pl.int8, pl.last, pl.ship);
    for (int i = 0; i < (int)(sizeof pl.st / sizeof *pl.st); i++)
        if (pl.st[i].sec_argv) kd_cli_free_args(pl.st[i].sec_argc, pl.st[i].sec_argv);
    kd_cli_yaml_close(y);
    return rc;
}
