/* `distill pipeline FILE.yaml`: teacher -> distilled student -> pruned student fine-tuned with the
 * teacher -> report (plus, optionally, the student trained on labels only). Each stage is one of the subcommands, run in this process with the options
 * of its section of the file (so a stage takes exactly the options of `distill train`, `kd`,
 * `prune`), writing its model to OUT/<stage>.safetensors. A finished stage (its model file
 * exists) is skipped, and training stages run with --resume, so an interrupted pipeline continues
 * where it stopped. The report is a table of every model (test accuracy, parameters, non-zeros,
 * bytes on disk, MACs, batch-1 latency) in OUT/report.md, and a plot of accuracy against size
 * (OUT/accuracy_size.png) when gnuplot is installed. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "distill/compress.h"
#include "distill/quantize.h"

static void help(void) {
    printf("Usage: distill pipeline FILE.yaml [--out DIR]\n\n"
           "Run the whole path from one file: teacher -> distilled student -> pruned and fine-tuned\n"
           "student -> report. Sections (each optional but the student; keys are the options of the\n"
           "command in brackets):\n"
           "  out: DIR, data: SPEC, threads: N, seed: N   (passed to every stage)\n"
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
           "A finished stage is skipped and training stages resume, so rerunning continues.\n"
           "Example: examples/fashion-mnist.yaml\n");
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

typedef int (*cmd_fn)(int, char **);

/* Run a stage unless its output exists: its command with `head`, then the options of the file's
 * section, then `tail` (both NULL-terminated). Without the section an optional stage is skipped
 * and a required one runs with its command's defaults. */
static int stage(const char *file, const char *section, int optional, const char *output, cmd_fn fn,
                 const char *const *head, const char *const *tail) {
    if (exists(output)) {
        printf("== pipeline: %s: %s exists, skipped\n", section, output);
        return 0;
    }
    int argc;
    char **argv;
    int r = kd_cli_config_section("pipeline", file, section, head, &argc, &argv);
    if (!r) return KD_EXIT_USAGE;
    if (r < 0 && optional) {
        kd_cli_free_args(argc, argv);
        return 0;
    }
    int n_tail = 0;
    while (tail && tail[n_tail]) n_tail++;
    char **all = malloc(sizeof(char *) * (size_t)(argc + n_tail + 1));
    if (!all) {
        kd_cli_free_args(argc, argv);
        return KD_EXIT_ERROR;
    }
    memcpy(all, argv, sizeof(char *) * (size_t)argc);
    for (int i = 0; i < n_tail; i++) all[argc + i] = (char *)tail[i];
    all[argc + n_tail] = NULL;
    printf("\n== pipeline: %s:", section);
    for (int i = 1; i < argc + n_tail; i++) printf(" %s", all[i]);
    printf("\n");
    fflush(stdout);
    int rc = fn(argc + n_tail, all);
    fflush(stdout);
    free(all);
    kd_cli_free_args(argc, argv);
    return rc;
}

/* Split the prune section: the pruning keys go to `distill prune`, the others to the fine-tuning. */
static int is_prune_key(const char *k) {
    return !strcmp(k, "--channels") || !strcmp(k, "--sparsity") || !strcmp(k, "--criterion") ||
           !strcmp(k, "--scope") || !strcmp(k, "--fold-bn");
}

typedef struct {
    const char *name, *path;
} row;

/* The files a pipeline writes in OUT (the teacher may be given instead: teacher-file:). */
typedef struct {
    char teacher[600], baseline[600], student[600], pruned[600], pruned_kd[600], int8[600], qat[600], qat_int8[600];
    char kdm[600];
} stage_paths;

/* 3. pruning and fine-tuning with the teacher, from the prune section's options (pargv): the
 * pruning keys (with their values) go to `distill prune`, the rest to `distill kd`. */
static int prune_stage(int pargc, char **pargv, const char *const *kd_head, const stage_paths *p) {
    const char *pa[64], *ka[96];
    int np = 0, nk = 0, structured = 0, rc;
    pa[np++] = "prune";
    for (int i = 0; kd_head[i]; i++) ka[nk++] = kd_head[i];
    for (int i = 1; i < pargc && np < 60 && nk < 90; i++) {
        int takes_value = strcmp(pargv[i], "--fold-bn") && strncmp(pargv[i], "--", 2) == 0 && i + 1 < pargc &&
                          strncmp(pargv[i + 1], "--", 2) != 0;
        if (is_prune_key(pargv[i])) {
            if (!strcmp(pargv[i], "--channels")) structured = 1;
            if (!strcmp(pargv[i], "--sparsity") && takes_value) { /* gradual, during the fine-tuning */
                ka[nk++] = "--prune-sparsity";
                ka[nk++] = pargv[++i];
                continue;
            }
            if (!strcmp(pargv[i], "--scope") && takes_value) {
                ka[nk++] = "--prune-scope";
                ka[nk++] = pargv[++i];
                continue;
            }
            pa[np++] = pargv[i];
            if (takes_value) pa[np++] = pargv[++i];
        } else {
            ka[nk++] = pargv[i];
            if (takes_value) ka[nk++] = pargv[++i];
        }
    }
    pa[np++] = p->student;
    pa[np++] = "-o";
    pa[np++] = p->pruned;
    pa[np] = NULL;
    ka[nk++] = "--student";
    ka[nk++] = structured ? p->pruned : p->student;
    ka[nk++] = "-o";
    ka[nk++] = p->pruned_kd;
    ka[nk] = NULL;
    if (structured && !exists(p->pruned)) {
        printf("\n== pipeline: prune:");
        for (int i = 1; i < np; i++) printf(" %s", pa[i]);
        printf("\n");
        fflush(stdout);
        if ((rc = kd_cmd_prune(np, (char **)pa))) return rc;
    }
    printf("\n== pipeline: fine-tune with the teacher:");
    for (int i = 1; i < nk; i++) printf(" %s", ka[i]);
    printf("\n");
    fflush(stdout);
    return kd_cmd_kd(nk, (char **)ka);
}

/* The report's rows of fp32 models: test accuracy, sizes, MACs, batch-1 latency. */
static void report_models(const char *C, const stage_paths *p, const kd_dataset *test, int threads, FILE *md,
                          FILE *ts) {
    row rows[] = {{"teacher", p->teacher}, {"student (CE only)", p->baseline}, {"student (KD)", p->student},
                  {"pruned + KD", p->pruned_kd}};
    for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
        if (!exists(rows[r].path)) continue;
        kd_model *m = NULL;
        if (kd_cli_load_model(C, rows[r].path, &m)) continue;
        kd_error err;
        kd_eval_result ev;
        double med = 0, p99 = 0;
        if (kd_evaluate(m, test, 256, threads, &ev, NULL, &err)) {
            kd_cli_fail(C, &err);
            kd_model_free(m);
            continue;
        }
        kd_cli_latency(m, test, 300, &med, &p99);
        size_t nz = 0;
        for (size_t i = 0; i < m->n_params; i++) nz += m->params[i] != 0.f;
        struct stat st;
        long long bytes = stat(rows[r].path, &st) ? -1 : (long long)st.st_size;
        char line[512];
        snprintf(line, sizeof line, "| %s | %.2f%% | %zu | %zu | %lld | %lld | %.1f us |\n", rows[r].name,
                 100 * ev.accuracy, m->n_params, nz, bytes, kd_model_macs(m), med);
        fputs(line, md);
        fputs(line, stdout);
        fprintf(ts, "%s\t%.4f\t%zu\t%zu\t%lld\t%lld\t%.2f\n", rows[r].name, 100 * ev.accuracy, m->n_params, nz, bytes,
                kd_model_macs(m), med);
        kd_model_free(m);
    }
}

/* The report's rows of integer models, evaluated as the device runs them: with the integer
 * kernels, and the .kdm through the runtime. */
static void report_int8(const char *C, const stage_paths *p, const char *last, const char *ship,
                        const kd_dataset *test, int threads, FILE *md, FILE *ts) {
    const char *int8_rows[2][2] = {{"int8 PTQ", p->int8}, {"int8 QAT+KD", p->qat_int8}};
    for (int r = 0; r < 2; r++) {
        if (!exists(int8_rows[r][1])) continue;
        kd_int8_model *q = NULL;
        kd_error err;
        double acc = 0;
        struct stat st;
        long long bytes = stat(int8_rows[r][1], &st) ? -1LL : (long long)st.st_size;
        if (kd_int8_load(int8_rows[r][1], &q, &err) || kd_int8_evaluate(q, test, 256, threads, &acc, NULL, &err)) {
            kd_cli_fail(C, &err);
        } else {
            char line[512];
            snprintf(line, sizeof line, "| %s%s (of %s) | %.2f%% | %zu bytes of weights | - | %lld | - | - |\n",
                     int8_rows[r][0], q->weight_bits == 4 ? ", int4 weights" : "",
                     last == p->pruned_kd ? "pruned + KD" : "student", 100 * acc, kd_int8_param_bytes(q), bytes);
            fputs(line, md);
            fputs(line, stdout);
            fprintf(ts, "%s\t%.4f\t0\t0\t%lld\t0\t0\n", int8_rows[r][0], 100 * acc, bytes);
        }
        kd_int8_free(q);
    }
    kd_cli_kdm k;
    if (exists(p->kdm) && !kd_cli_kdm_run(C, p->kdm, test, 2000, &k)) {
        char line[512];
        snprintf(line, sizeof line, "| kdrt .kdm (of %s) | %.2f%% | - | - | %zu | - | %.1f us (int8) |\n",
                 ship == p->qat_int8 ? "int8 QAT+KD" : "int8 PTQ", 100 * k.accuracy, k.len, k.median_us);
        fputs(line, md);
        fputs(line, stdout);
        fprintf(ts, "kdrt .kdm\t%.4f\t0\t0\t%zu\t0\t%.2f\n", 100 * k.accuracy, k.len, k.median_us);
        kd_cli_kdm_free(&k);
    }
}

/* 5. the report: OUT/report.md (and .tsv), and the plot of accuracy against size if gnuplot is
 * there (Debian's gnuplot-nox). */
static int write_report(const char *C, const char *out, const char *data, const char *thr, const stage_paths *p,
                        const char *last, const char *ship) {
    char report[600], tsv[600];
    snprintf(report, sizeof report, "%s/report.md", out);
    snprintf(tsv, sizeof tsv, "%s/report.tsv", out);
    FILE *md = fopen(report, "w"), *ts = fopen(tsv, "w");
    kd_dataset test = {0};
    if (!md || !ts || kd_cli_load_data(C, data, "test", &test)) {
        if (md) fclose(md);
        if (ts) fclose(ts);
        fprintf(stderr, "distill pipeline: error: cannot write the report in %s\n", out);
        return KD_EXIT_ERROR;
    }
    const char *hdr = "| model | test accuracy | parameters | non-zero | bytes on disk | MACs/image | batch-1 latency |\n"
                      "|---|---:|---:|---:|---:|---:|---:|\n";
    fputs(hdr, md);
    printf("\n== pipeline: report (%s)\n%s", report, hdr);
    int threads = atoi(thr) > 0 ? atoi(thr) : 1;
    kd_cli_threads(threads);
    report_models(C, p, &test, threads, md, ts);
    report_int8(C, p, last, ship, &test, threads, md, ts);
    fclose(md);
    fclose(ts);
    kd_dataset_free(&test);
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
    if (!exists(file)) {
        fprintf(stderr, "distill pipeline: error: %s: no such file\n", file);
        return KD_EXIT_ERROR;
    }
    char b_out[256], b_data[256], b_thr[32], b_seed[32], b_tf[512];
    const char *out = out_opt ? out_opt : kd_cli_config_scalar(file, "out", "out/pipeline", b_out, sizeof b_out);
    const char *data = kd_cli_config_scalar(file, "data", "fashion-mnist", b_data, sizeof b_data);
    const char *thr = kd_cli_config_scalar(file, "threads", "2", b_thr, sizeof b_thr);
    const char *seed = kd_cli_config_scalar(file, "seed", "1", b_seed, sizeof b_seed);
    const char *teacher_file = kd_cli_config_scalar(file, "teacher-file", NULL, b_tf, sizeof b_tf);
    if (mkdir(out, 0777) && !exists(out)) {
        fprintf(stderr, "distill pipeline: error: cannot create %s\n", out);
        return KD_EXIT_ERROR;
    }
    stage_paths p;
    snprintf(p.int8, sizeof p.int8, "%s/int8.safetensors", out);
    snprintf(p.qat, sizeof p.qat, "%s/qat.safetensors", out);
    snprintf(p.qat_int8, sizeof p.qat_int8, "%s/qat.int8.safetensors", out);
    snprintf(p.kdm, sizeof p.kdm, "%s/student.kdm", out);
    snprintf(p.baseline, sizeof p.baseline, "%s/baseline.safetensors", out);
    snprintf(p.teacher, sizeof p.teacher, "%s/teacher.safetensors", out);
    snprintf(p.student, sizeof p.student, "%s/student.safetensors", out);
    snprintf(p.pruned, sizeof p.pruned, "%s/pruned.safetensors", out);
    snprintf(p.pruned_kd, sizeof p.pruned_kd, "%s/pruned-kd.safetensors", out);
    if (teacher_file) snprintf(p.teacher, sizeof p.teacher, "%s", teacher_file);
    int rc = 0;
    const char *train_head[] = {"train", "--data", data, "--threads", thr, "--seed", seed, "--resume", NULL};
    const char *kd_head[] = {"kd", "--data", data, "--threads", thr, "--seed", seed, "--resume", "--teacher", p.teacher, NULL};
    /* 1. teacher, 1b. optionally the student on labels only (what distillation adds), 2. student */
    const char *t_tail[] = {"-o", p.teacher, NULL}, *b_tail[] = {"-o", p.baseline, NULL}, *s_tail[] = {"-o", p.student, NULL};
    if ((rc = stage(file, "teacher", 0, p.teacher, kd_cmd_train, train_head, t_tail)) ||
        (rc = stage(file, "baseline", 1, p.baseline, kd_cmd_train, train_head, b_tail)) ||
        (rc = stage(file, "student", 0, p.student, kd_cmd_kd, kd_head, s_tail)))
        goto stop;
    /* 3. pruning and fine-tuning with the teacher */
    int pargc;
    char **pargv;
    const char *phead[] = {"prune", NULL};
    int has_prune = kd_cli_config_section(C, file, "prune", phead, &pargc, &pargv);
    if (!has_prune) return KD_EXIT_USAGE;
    if (has_prune == 1 && exists(p.pruned_kd)) printf("== pipeline: prune: %s exists, skipped\n", p.pruned_kd);
    if (has_prune == 1 && !exists(p.pruned_kd)) rc = prune_stage(pargc, pargv, kd_head, &p);
    kd_cli_free_args(pargc, pargv);
    if (rc) goto stop;

    /* 4. int8 post-training quantization of the last model (pruned if there was a prune stage) */
    const char *last = exists(p.pruned_kd) ? p.pruned_kd : p.student;
    const char *q_head[] = {"quantize", "--data", data, "--threads", thr, NULL}, *q_tail[] = {last, "-o", p.int8, NULL};
    if ((rc = stage(file, "quantize", 1, p.int8, kd_cmd_quantize, q_head, q_tail))) goto stop;
    /* 4b. quantization-aware distillation of the same model (writes OUT/qat.int8.safetensors last) */
    const char *qat_head[] = {"kd", "--data", data, "--threads", thr, "--seed", seed, "--resume", "--teacher", p.teacher,
                              "--qat", "8", NULL};
    const char *qat_tail[] = {"--student", last, "-o", p.qat, NULL};
    if ((rc = stage(file, "qat", 1, p.qat_int8, kd_cmd_kd, qat_head, qat_tail))) goto stop;
    /* 4c. the deployable model: the last int8 model as a .kdm for the kdrt runtime */
    const char *ship = exists(p.qat_int8) ? p.qat_int8 : exists(p.int8) ? p.int8 : NULL;
    if (ship && !exists(p.kdm)) {
        const char *e_argv[] = {"export", ship, "-o", p.kdm, NULL};
        printf("\n== pipeline: export: %s -o %s\n", ship, p.kdm);
        fflush(stdout);
        if ((rc = kd_cmd_export(4, (char **)e_argv))) goto stop;
    }
    return write_report(C, out, data, thr, &p, last, ship);
stop:
    if (rc == KD_EXIT_INTERRUPTED) fprintf(stderr, "distill pipeline: interrupted; run the same command to continue\n");
    else fprintf(stderr, "distill pipeline: stopped at a failed stage (exit %d)\n", rc);
    return rc;
}
