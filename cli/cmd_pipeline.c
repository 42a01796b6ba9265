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
    char teacher[600], baseline[600], student[600], pruned[600], pruned_kd[600], int8[600], qat[600], qat_int8[600];
    snprintf(int8, sizeof int8, "%s/int8.safetensors", out);
    snprintf(qat, sizeof qat, "%s/qat.safetensors", out);
    snprintf(qat_int8, sizeof qat_int8, "%s/qat.int8.safetensors", out);
    char kdm[600];
    snprintf(kdm, sizeof kdm, "%s/student.kdm", out);
    snprintf(baseline, sizeof baseline, "%s/baseline.safetensors", out);
    snprintf(teacher, sizeof teacher, "%s/teacher.safetensors", out);
    snprintf(student, sizeof student, "%s/student.safetensors", out);
    snprintf(pruned, sizeof pruned, "%s/pruned.safetensors", out);
    snprintf(pruned_kd, sizeof pruned_kd, "%s/pruned-kd.safetensors", out);
    if (teacher_file) snprintf(teacher, sizeof teacher, "%s", teacher_file);
    int rc = 0;
    const char *train_head[] = {"train", "--data", data, "--threads", thr, "--seed", seed, "--resume", NULL};
    const char *kd_head[] = {"kd", "--data", data, "--threads", thr, "--seed", seed, "--resume", "--teacher", teacher, NULL};
    /* 1. teacher, 1b. optionally the student on labels only (what distillation adds), 2. student */
    const char *t_tail[] = {"-o", teacher, NULL}, *b_tail[] = {"-o", baseline, NULL}, *s_tail[] = {"-o", student, NULL};
    if ((rc = stage(file, "teacher", 0, teacher, kd_cmd_train, train_head, t_tail)) ||
        (rc = stage(file, "baseline", 1, baseline, kd_cmd_train, train_head, b_tail)) ||
        (rc = stage(file, "student", 0, student, kd_cmd_kd, kd_head, s_tail)))
        goto stop;
    /* 3. pruning and fine-tuning with the teacher */
    int pargc;
    char **pargv;
    const char *phead[] = {"prune", NULL};
    int has_prune = kd_cli_config_section(C, file, "prune", phead, &pargc, &pargv);
    if (!has_prune) return KD_EXIT_USAGE;
    if (has_prune == 1 && exists(pruned_kd)) printf("== pipeline: prune: %s exists, skipped\n", pruned_kd);
    if (has_prune == 1 && !exists(pruned_kd)) {
        /* split: prune keys (with their values) to `distill prune`, the rest to `distill kd` */
        const char *pa[64], *ka[96];
        int np = 0, nk = 0, structured = 0;
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
        pa[np++] = student;
        pa[np++] = "-o";
        pa[np++] = pruned;
        pa[np] = NULL;
        ka[nk++] = "--student";
        ka[nk++] = structured ? pruned : student;
        ka[nk++] = "-o";
        ka[nk++] = pruned_kd;
        ka[nk] = NULL;
        if (structured && !exists(pruned)) {
            printf("\n== pipeline: prune:");
            for (int i = 1; i < np; i++) printf(" %s", pa[i]);
            printf("\n");
            fflush(stdout);
            if ((rc = kd_cmd_prune(np, (char **)pa))) {
                kd_cli_free_args(pargc, pargv);
                goto stop;
            }
        }
        printf("\n== pipeline: fine-tune with the teacher:");
        for (int i = 1; i < nk; i++) printf(" %s", ka[i]);
        printf("\n");
        fflush(stdout);
        rc = kd_cmd_kd(nk, (char **)ka);
        if (rc) {
            kd_cli_free_args(pargc, pargv);
            goto stop;
        }
    }
    kd_cli_free_args(pargc, pargv);

    /* 4. int8 post-training quantization of the last model (pruned if there was a prune stage) */
    const char *last = exists(pruned_kd) ? pruned_kd : student;
    const char *q_head[] = {"quantize", "--data", data, "--threads", thr, NULL}, *q_tail[] = {last, "-o", int8, NULL};
    if ((rc = stage(file, "quantize", 1, int8, kd_cmd_quantize, q_head, q_tail))) goto stop;
    /* 4b. quantization-aware distillation of the same model (writes OUT/qat.int8.safetensors last) */
    const char *qat_head[] = {"kd", "--data", data, "--threads", thr, "--seed", seed, "--resume", "--teacher", teacher,
                              "--qat", "8", NULL};
    const char *qat_tail[] = {"--student", last, "-o", qat, NULL};
    if ((rc = stage(file, "qat", 1, qat_int8, kd_cmd_kd, qat_head, qat_tail))) goto stop;
    /* 4c. the deployable model: the last int8 model as a .kdm for the kdrt runtime */
    const char *ship = exists(qat_int8) ? qat_int8 : exists(int8) ? int8 : NULL;
    if (ship && !exists(kdm)) {
        const char *e_argv[] = {"export", ship, "-o", kdm, NULL};
        printf("\n== pipeline: export: %s -o %s\n", ship, kdm);
        fflush(stdout);
        if ((rc = kd_cmd_export(4, (char **)e_argv))) goto stop;
    }

    /* 5. report (stages may have been skipped, or run with their own -j) */
    kd_cli_threads(atoi(thr));
    row rows[] = {{"teacher", teacher}, {"student (CE only)", baseline}, {"student (KD)", student},
                  {"pruned + KD", pruned_kd}};
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
    for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
        if (!exists(rows[r].path)) continue;
        kd_model *m = NULL;
        if (kd_cli_load_model(C, rows[r].path, &m)) continue;
        kd_error err;
        kd_eval_result ev;
        double med = 0, p99 = 0;
        if (kd_evaluate(m, &test, 256, atoi(thr) > 0 ? atoi(thr) : 1, &ev, NULL, &err)) {
            kd_cli_fail(C, &err);
            kd_model_free(m);
            continue;
        }
        kd_cli_latency(m, &test, 300, &med, &p99);
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
    const char *int8_rows[2][2] = {{"int8 PTQ", int8}, {"int8 QAT+KD", qat_int8}};
    for (int r = 0; r < 2; r++) { /* evaluated with the integer kernels, as the device runs it */
        if (!exists(int8_rows[r][1])) continue;
        kd_int8_model *q = NULL;
        kd_error err;
        double acc = 0;
        struct stat st;
        long long bytes = stat(int8_rows[r][1], &st) ? -1LL : (long long)st.st_size;
        if (kd_int8_load(int8_rows[r][1], &q, &err) ||
            kd_int8_evaluate(q, &test, 256, atoi(thr) > 0 ? atoi(thr) : 1, &acc, NULL, &err)) {
            kd_cli_fail(C, &err);
        } else {
            char line[512];
            snprintf(line, sizeof line, "| %s%s (of %s) | %.2f%% | %zu bytes of weights | - | %lld | - | - |\n",
                     int8_rows[r][0], q->weight_bits == 4 ? ", int4 weights" : "",
                     last == pruned_kd ? "pruned + KD" : "student", 100 * acc, kd_int8_param_bytes(q), bytes);
            fputs(line, md);
            fputs(line, stdout);
            fprintf(ts, "%s\t%.4f\t0\t0\t%lld\t0\t0\n", int8_rows[r][0], 100 * acc, bytes);
        }
        kd_int8_free(q);
    }
    kd_cli_kdm k;
    if (exists(kdm) && !kd_cli_kdm_run(C, kdm, &test, 2000, &k)) { /* as the device runs it */
        char line[512];
        snprintf(line, sizeof line, "| kdrt .kdm (of %s) | %.2f%% | - | - | %zu | - | %.1f us (int8) |\n",
                 ship == qat_int8 ? "int8 QAT+KD" : "int8 PTQ", 100 * k.accuracy, k.len, k.median_us);
        fputs(line, md);
        fputs(line, stdout);
        fprintf(ts, "kdrt .kdm\t%.4f\t0\t0\t%zu\t0\t%.2f\n", 100 * k.accuracy, k.len, k.median_us);
        kd_cli_kdm_free(&k);
    }
    fclose(md);
    fclose(ts);
    kd_dataset_free(&test);
    /* accuracy against size, if gnuplot is there (Debian's gnuplot-nox) */
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
stop:
    if (rc == KD_EXIT_INTERRUPTED) fprintf(stderr, "distill pipeline: interrupted; run the same command to continue\n");
    else fprintf(stderr, "distill pipeline: stopped at a failed stage (exit %d)\n", rc);
    return rc;
}
