/* `distill eval`, `distill info` and `distill predict`: inspect and use a checkpoint. */
#define _GNU_SOURCE
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "distill/distill.h"

/* The MODEL argument and the --data/--split of eval and predict; nonzero (and nothing to free) on error. */
static int open_model_and_data(const char *cmd, const char *model, const char *data, const char *split,
                               const kd_data_opts *dopts, kd_model **m, kd_dataset *ds) {
    if (kd_cli_load_model(cmd, model, m)) return 1;
    if (kd_cli_load_data(cmd, data, split, dopts, *m, ds)) {
        kd_model_free(*m);
        *m = NULL;
        return 1;
    }
    return 0;
}

/* The help lines of those two options, the same in eval's and predict's help. */
#define DATA_OPTIONS_HELP                                                                        \
    "  -d, --data SPEC     fashion-mnist (default), or any source of docs/DATA.md (image folder,\n"    \
    "                      CIFAR, NumPy, CSV/TSV, IDX)\n"                                          \
    "  -s, --split NAME    test (default) or train\n" KD_CLI_DATA_HELP

/* Class c's name: the model's own (from the data it was trained on), else the data set's (its
 * class names, or the built-in set's); NULL when none has one. ds may be NULL (image files). */
static const char *class_name(const kd_model *m, const kd_dataset *ds, const char *data, int c) {
    if (c < 0 || c >= m->n_classes) return NULL;
    if (m->class_names) return m->class_names[c];
    if (ds && ds->class_names && c < ds->n_classes) return ds->class_names[c];
    return data ? kd_cli_class_name(data, m->n_classes, c) : NULL;
}

/* ------------------------------------------------------------------ eval */

static void eval_help(void) {
    printf("Usage: distill eval MODEL [options]\n\n"
           "Accuracy, loss, per-class accuracy and speed of a checkpoint (or a freshly initialised model).\n\n"
           DATA_OPTIONS_HELP
           "  -b, --batch N       batch size (default 256)\n"
           "  -j, --threads N     threads (default 2)\n"
           "      --latency       also measure batch-1 latency (median and p99 over 500 images, 1 thread)\n"
           "      --save-logits F write the model's logits for every image of the split to F (.npy,\n"
           "                      float32 [N, classes]): a teacher for 'distill kd --teacher-logits'\n");
}

int kd_cmd_eval(int argc, char **argv) {
    static const struct option opts[] = {{"data", 1, 0, 'd'}, {"split", 1, 0, 's'}, {"batch", 1, 0, 'b'},
                                         {"threads", 1, 0, 'j'}, {"help", 0, 0, 'h'}, {"latency", 0, 0, 'L'},
                                         {"save-logits", 1, 0, 'S'}, KD_CLI_DATA_OPTIONS, {0, 0, 0, 0}};
    const char *C = "eval", *data = "fashion-mnist", *split = "test";
    kd_data_opts dopts = kd_data_opts_default();
    int batch = 256, threads = 2, latency = 0;
    const char *save_logits = NULL;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "d:s:b:j:h", opts, NULL)) != -1;) {
        switch (c) {
        case 'd': data = optarg; break;
        case 's': split = optarg; break;
        case 'b': if (!kd_cli_int(C, "--batch", optarg, 1, 65536, &batch)) return KD_EXIT_USAGE; break;
        case 'j': if (!kd_cli_int(C, "--threads", optarg, 1, 256, &threads)) return KD_EXIT_USAGE; break;
        case 'h': eval_help(); return 0;
        case 'L': latency = 1; break;
        case 'S': save_logits = optarg; break;
        default: if (kd_cli_data_opt(C, c, optarg, &dopts)) return KD_EXIT_USAGE; break;
        }
    }
    if (optind != argc - 1) return kd_cli_usage_error(C, "expects one MODEL argument");
    kd_cli_threads(threads);
    kd_model *m = NULL;
    kd_dataset ds = {0};
    if (kd_cli_check_outputs(C, &save_logits, 1, (const char *const *)&argv[optind], 1) || open_model_and_data(C, argv[optind], data, split, &dopts, &m, &ds))
        return KD_EXIT_ERROR;
    kd_error err;
    kd_eval_result r;
    int32_t *pred = malloc((size_t)ds.n * sizeof *pred);
    int rc = 0;
    if (!pred) {
        fprintf(stderr, "distill eval: out of memory\n");
        rc = KD_EXIT_ERROR;
    } else if (kd_evaluate(m, &ds, batch, threads, &r, pred, &err)) {
        rc = err.status == KD_STATUS_DIVERGED ? kd_cli_fail_in(C, argv[optind], &err) : kd_cli_fail(C, &err);
    } else {
        printf("%s on %s/%s: accuracy %.2f%% (%d/%d), loss %.4f, %.0f samples/s\n", m->name, data, split,
               100 * r.accuracy, (int)lround(r.accuracy * r.n), r.n, r.loss, r.n / (r.seconds > 0 ? r.seconds : 1e-9));
        printf("per class:\n");
        for (int c = 0; c < m->n_classes; c++) {
            int tot = 0, ok = 0;
            for (int i = 0; i < ds.n; i++)
                if (ds.labels[i] == c) { tot++; ok += pred[i] == c; }
            if (!tot) continue;
            const char *nm = class_name(m, &ds, data, c);
            printf("  %2d %-12s %6.2f%% (%d)\n", c, nm ? nm : "", 100.0 * ok / tot, tot);
        }
        if (save_logits) {
            float *lg = NULL;
            kd_teacher self = kd_teacher_online(&m, 1);
            int rows = 0;
            if (kd_teacher_cache(&self, 1.f, &ds, batch, threads, &lg, NULL, &rows, &err) ||
                kd_npy_save(save_logits, lg, rows, m->n_classes, &err))
                rc = kd_cli_fail(C, &err);
            else
                printf("wrote %s: logits of %d images x %d classes\n", save_logits, rows, m->n_classes);
            free(lg);
        }
        double med, p99;
        if (latency && kd_cli_latency(m, &ds, 500, &med, &p99) == 0)
            printf("batch-1 latency: median %.1f us, p99 %.1f us (fp32 training engine, 1 thread)\n", med, p99);
    }
    free(pred);
    kd_dataset_free(&ds);
    kd_model_free(m);
    return rc;
}

/* ------------------------------------------------------------------ info */

static void info_help(void) {
    printf("Usage: distill info MODEL [--batch N]\n\n"
           "Parameters, MACs, bytes and the layer table of a checkpoint, a built-in model or a YAML file,\n"
           "with the exact training memory at batch N (default 128): parameters, gradients, SGD momentum,\n"
           "activations and their gradients, scratch.\n");
}

/* What the model takes and gives, as stored from its training data: the input type, the
 * normalisation (per channel) and the first class names. */
static void print_data_info(const kd_model *m) {
    printf("input type    %s\n", m->input_values ? "values (float32)" : "pixels (8-bit)");
    printf("normalize     ");
    if (!m->norm_mean) printf("none stored");
    for (int c = 0; m->norm_mean && c < m->in_c; c++)
        printf("%s%g/%g", c ? ", " : "mean/std ", (double)m->norm_mean[c], (double)m->norm_std[c]);
    printf("\nclass names   ");
    const int shown = 8;
    if (!m->class_names) printf("none stored");
    for (int c = 0; m->class_names && c < m->n_classes && c < shown; c++) printf("%s%s", c ? ", " : "", m->class_names[c]);
    if (m->class_names && m->n_classes > shown) printf(" (+%d more)", m->n_classes - shown);
    printf("\n");
}

int kd_cmd_info(int argc, char **argv) {
    static const struct option opts[] = {{"batch", 1, 0, 'b'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *C = "info";
    int batch = 128;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "b:h", opts, NULL)) != -1;) {
        switch (c) {
        case 'b': if (!kd_cli_int(C, "--batch", optarg, 1, 65536, &batch)) return KD_EXIT_USAGE; break;
        case 'h': info_help(); return 0;
        default: return kd_cli_usage_error(C, "unknown option");
        }
    }
    if (optind != argc - 1) return kd_cli_usage_error(C, "expects one MODEL argument");
    kd_model *m = NULL;
    if (kd_cli_load_model(C, argv[optind], &m)) return KD_EXIT_ERROR;
    kd_error err;
    if (kd_model_set_batch(m, batch, 1, &err)) {
        kd_model_free(m);
        return kd_cli_fail(C, &err);
    }
    printf("model %s: input [%d, %d, %d], %d classes\n", m->name, m->in_c, m->in_h, m->in_w, m->n_classes);
    print_data_info(m);
    printf("\n");
    printf("  %-3s %-12s %-15s %-10s %-15s %10s %12s\n", "#", "name", "type", "input", "output", "params", "MACs");
    for (int i = 0; i < m->n_layers; i++) {
        const kd_layer *L = &m->layers[i];
        char in[KD_LAYER_MAX_INPUTS * (KD_NAME_MAX + 1)], out[48], ty[48];
        in[0] = 0;
        for (int k = 0; k < L->n_inputs; k++) /* a+b, a+b+c for a concat */
            snprintf(in + strlen(in), sizeof in - strlen(in), "%s%s", k ? "+" : "",
                     L->inputs[k] == KD_MODEL_INPUT ? "input" : m->layers[L->inputs[k]].name);
        snprintf(out, sizeof out, "[%d,%d,%d]", L->c, L->h, L->w);
        if (L->type == KD_LAYER_CONV2D)
            snprintf(ty, sizeof ty, "conv%dx%d%s%s%s", L->kernel, L->kernel, L->stride > 1 ? "/2" : "",
                     L->groups == L->in_c && L->groups > 1 ? " dw" : L->groups > 1 ? " grp" : "",
                     L->dilation > 1 ? " dil" : "");
        else
            snprintf(ty, sizeof ty, "%s", kd_layer_type_name(L->type));
        printf("  %-3d %-12s %-15s %-10.10s %-15s %10zu %12lld\n", i + 1, L->name, ty, in, out, L->w_size + L->b_size,
               L->macs);
    }
    char b1[32], b2[32], b3[32], b4[32];
    kd_cli_bytes(b1, sizeof b1, (double)kd_model_param_bytes(m));
    printf("\nparameters    %zu (%s fp32 with %zu buffer values)\n", m->n_params, b1, m->n_buffers);
    printf("MACs/image    %lld (%.2f M)\n", kd_model_macs(m), kd_model_macs(m) / 1e6);
    kd_model_mem mem;
    kd_model_memory(m, &mem);
    kd_cli_bytes(b1, sizeof b1, (double)mem.params);
    kd_cli_bytes(b2, sizeof b2, (double)mem.acts);
    kd_cli_bytes(b3, sizeof b3, (double)mem.scratch + (double)mem.idx);
    kd_cli_bytes(b4, sizeof b4, (double)(mem.params * 3 + mem.buffers + mem.acts + mem.scratch + mem.idx));
    printf("training memory at batch %d (SGD with momentum): params %s, grads %s, momentum %s,\n"
           "  activations+gradients %s, scratch+indices %s: total %s\n",
           batch, b1, b1, b1, b2, b3, b4);
    kd_model_free(m);
    return 0;
}

/* ------------------------------------------------------------------ predict */

static void predict_help(void) {
    printf("Usage: distill predict MODEL [options]\n"
           "       distill predict MODEL FILE... [--fit F] [--mean M --std S] [--top K]\n\n"
           "Classify images of a data set, or image files (PNG, JPEG, PGM/PPM, BMP), and print the top\n"
           "classes (by name when the model has class names) with their probabilities.\n\n"
           DATA_OPTIONS_HELP
           "  -i, --index N       first image (default 0)\n"
           "  -n, --count N       number of images (default 10)\n"
           "  -k, --top K         classes shown per image (default 3)\n"
           "Files are converted to the model's channels and size (--fit above says how):\n"
           "      --mean M --std S  the normalisation of a model that has none of its own (one value, or\n"
           "                      one per channel: 0.49,0.48,0.45); a model's own always wins\n");
}

/* Print the top K classes of probabilities p (destroyed); returns the best class. */
static int print_top(const kd_model *m, const kd_dataset *ds, const char *data, float *p, int topk) {
    int best = 0;
    for (int k = 0; k < topk; k++) {
        int b = kd_argmax(p, m->n_classes); /* the classes shown so far hold -1 */
        if (b < 0) break;
        if (k == 0) best = b;
        const char *nm = class_name(m, ds, data, b);
        printf("  %s%s%d %5.1f%%", nm ? nm : "", nm ? "=" : "class ", b, 100 * p[b]);
        p[b] = -1.f;
    }
    return best;
}

/* `distill predict MODEL FILE...`: each file decoded and fitted to the model's input
 * (kd_image_load), normalised as the model was trained (its own normalisation, or --mean/--std). */
static int predict_files(const char *C, kd_model *m, char **files, int n_files, kd_image_fit fit, const char *mean_s,
                         const char *std_s, int topk) {
    if (m->input_values)
        return kd_cli_usage_error(C, "model %s takes float values, not images: predict on a table with --data",
                                  m->name);
    float *norm = malloc(2 * (size_t)m->in_c * sizeof(float));
    if (!norm) {
        fprintf(stderr, "distill %s: out of memory\n", C);
        return KD_EXIT_ERROR;
    }
    const float *mean = m->norm_mean, *std = m->norm_std;
    if (!mean) {
        if (!mean_s || !std_s) {
            free(norm);
            return kd_cli_usage_error(C, "model %s has no normalisation of its own (it took its training data's "
                                      "statistics, which are not known here): give them with --mean and --std",
                                      m->name);
        }
        if (!kd_cli_norm_list(C, "--mean", mean_s, norm, m->in_c) ||
            !kd_cli_norm_list(C, "--std", std_s, norm + m->in_c, m->in_c)) {
            free(norm);
            return KD_EXIT_USAGE;
        }
        mean = norm;
        std = norm + m->in_c;
    }
    size_t in_size = (size_t)m->in_c * m->in_h * m->in_w;
    uint8_t *px = malloc(in_size);
    float *x = malloc(in_size * sizeof(float)), *p = malloc((size_t)m->n_classes * sizeof(float));
    int32_t label = 0, idx = 0, y;
    kd_dataset one = {.n = 1, .c = m->in_c, .h = m->in_h, .w = m->in_w, .n_classes = m->n_classes, .pixels = px,
                      .labels = &label, .mean = 0.f, .std = 1.f};
    kd_error err;
    int rc = 0;
    if (!px || !x || !p) {
        fprintf(stderr, "distill %s: out of memory\n", C);
        rc = KD_EXIT_ERROR;
    } else if (kd_model_set_batch(m, 1, 1, &err)) {
        rc = kd_cli_fail(C, &err);
    }
    for (int i = 0; !rc && i < n_files; i++) {
        if (kd_image_load(files[i], m->in_c, m->in_h, m->in_w, fit, px, &err)) {
            rc = kd_cli_fail(C, &err);
            break;
        }
        kd_batch_fill(x, &y, &one, mean, std, &idx, 1);
        const float *logits = kd_model_forward(m, x, 1, 0, NULL);
        if (kd_logits_nonfinite(logits, 1, m->n_classes, NULL)) {
            fprintf(stderr, "distill %s: error: model %s gives non-finite logits on %s\n", C, m->name, files[i]);
            rc = KD_EXIT_ERROR;
            break;
        }
        kd_softmax_forward(p, logits, 1, m->n_classes, 1.f);
        printf("%s", files[i]);
        print_top(m, NULL, NULL, p, topk);
        printf("\n");
    }
    free(px);
    free(x);
    free(p);
    free(norm);
    return rc;
}

int kd_cmd_predict(int argc, char **argv) {
    static const struct option opts[] = {{"data", 1, 0, 'd'}, {"split", 1, 0, 's'}, {"index", 1, 0, 'i'},
                                         {"count", 1, 0, 'n'}, {"top", 1, 0, 'k'}, {"help", 0, 0, 'h'},
                                         {"mean", 1, 0, 'M'}, {"std", 1, 0, 'S'}, KD_CLI_DATA_OPTIONS, {0, 0, 0, 0}};
    const char *C = "predict", *data = "fashion-mnist", *split = "test", *mean_s = NULL, *std_s = NULL;
    kd_data_opts dopts = kd_data_opts_default();
    int first = 0, count = 10, topk = 3, data_given = 0, file_opt = 0;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "d:s:i:n:k:h", opts, NULL)) != -1;) {
        switch (c) {
        case 'd': data = optarg; data_given = 1; break;
        case 's': split = optarg; data_given = 1; break;
        case 'i': if (!kd_cli_int(C, "--index", optarg, 0, 1 << 30, &first)) return KD_EXIT_USAGE; data_given = 1; break;
        case 'n': if (!kd_cli_int(C, "--count", optarg, 1, 1 << 20, &count)) return KD_EXIT_USAGE; data_given = 1; break;
        case 'k': if (!kd_cli_int(C, "--top", optarg, 1, 1000, &topk)) return KD_EXIT_USAGE; break;
        case 'M': mean_s = optarg; file_opt = 1; break;
        case 'S': std_s = optarg; file_opt = 1; break;
        case 'h': predict_help(); return 0;
        default: if (kd_cli_data_opt(C, c, optarg, &dopts)) return KD_EXIT_USAGE; break;
        }
    }
    if (optind > argc - 1) return kd_cli_usage_error(C, "expects a MODEL argument");
    if (optind < argc - 1 && data_given)
        return kd_cli_usage_error(C, "image files and --data/--split/--index/--count do not go together");
    if (optind == argc - 1 && file_opt)
        return kd_cli_usage_error(C, "--mean and --std are for image files: distill predict MODEL FILE...");
    kd_cli_threads(1); /* predict runs the model on one thread */
    kd_model *m = NULL;
    if (optind < argc - 1) {
        if (kd_cli_load_model(C, argv[optind], &m)) return KD_EXIT_ERROR;
        if (topk > m->n_classes) topk = m->n_classes;
        int rc = predict_files(C, m, argv + optind + 1, argc - optind - 1, dopts.fit, mean_s, std_s, topk);
        kd_model_free(m);
        return rc;
    }
    kd_dataset ds = {0};
    if (open_model_and_data(C, argv[optind], data, split, &dopts, &m, &ds)) return KD_EXIT_ERROR;
    int rc = 0;
    kd_error err;
    if (first >= ds.n) {
        rc = kd_cli_usage_error(C, "--index %d is past the end of %s/%s (%d samples)", first, data, split, ds.n);
        goto out;
    }
    if (first + count > ds.n) count = ds.n - first;
    if (topk > m->n_classes) topk = m->n_classes;
    if (ds.c != m->in_c || ds.h != m->in_h || ds.w != m->in_w) {
        fprintf(stderr, "distill predict: error: data has %dx%dx%d samples, model expects %dx%dx%d\n", ds.c, ds.h,
                ds.w, m->in_c, m->in_h, m->in_w);
        rc = KD_EXIT_ERROR;
        goto out;
    }
    if (kd_model_set_batch(m, 1, 1, &err)) {
        rc = kd_cli_fail(C, &err);
        goto out;
    }
    size_t in_size = (size_t)ds.c * ds.h * ds.w;
    float *x = malloc(in_size * sizeof(float)), *p = malloc((size_t)m->n_classes * sizeof(float));
    int correct = 0, n_bad = 0, first_bad = -1;
    for (int i = first; x && p && i < first + count; i++) {
        int32_t idx = i, y;
        kd_batch_fill(x, &y, &ds, m->norm_mean, m->norm_std, &idx, 1);
        const float *logits = kd_model_forward(m, x, 1, 0, NULL);
        if (kd_logits_nonfinite(logits, 1, m->n_classes, NULL)) { /* counted, reported after the loop */
            if (!n_bad++) first_bad = i;
            continue;
        }
        kd_softmax_forward(p, logits, 1, m->n_classes, 1.f);
        printf("#%-6d", i);
        int best = print_top(m, &ds, data, p, topk);
        const char *tn = class_name(m, &ds, data, y);
        printf("   (true: %s%s%d)%s\n", tn ? tn : "", tn ? "=" : "class ", y, best == y ? "" : "  MISS");
        correct += best == y;
    }
    if (!x || !p) {
        fprintf(stderr, "distill predict: out of memory\n");
        rc = KD_EXIT_ERROR;
    } else if (n_bad) {
        kd_error_nonfinite(&err, "model", m->name, n_bad, count, "image", first_bad);
        rc = kd_cli_fail_in(C, argv[optind], &err); /* the library names the model (cnn-s), not its file */
    } else {
        printf("%d/%d correct\n", correct, count);
    }
    free(x);
    free(p);
out:
    kd_dataset_free(&ds);
    kd_model_free(m);
    return rc;
}
