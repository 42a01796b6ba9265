/* `distill bench MODEL.kdm`: the deployable model as a device runs it, through the runtime's public
 * API only (kdrt_model_load, kdrt_arena_size, kdrt_prepare, kdrt_invoke): batch-1 latency (median,
 * p99), throughput and accuracy on the test set, model and arena bytes against the sum of all
 * activations. --verify also runs the training side's integer evaluation (kd_int8_forward_q on the
 * model read back from the same file) and checks the int8 logits are identical on every image. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "distill/export.h"
#include "distill/fileio.h"
#include "distill/quantize.h"
#include "kdrt_model.h"

static void help(void) {
    printf("Usage: distill bench MODEL.kdm [options]\n\n"
           "Run a .kdm model (from distill export) with the kdrt runtime, one image at a time, as a device\n"
           "does: prints model bytes, arena bytes (activations, requantization parameters, kernel scratch)\n"
           "against the sum of all activations, batch-1 latency (median and p99), images/s and test accuracy.\n\n"
           "  -d, --data SPEC   test images: fashion-mnist (default), a directory of IDX files, or IMAGES,LABELS\n"
           "                    (an image folder is read at the model's channels and size)\n"
           "  -n, --runs N      timed single-image runs for the latency (default 5000)\n"
           "      --limit N     use the first N test images only\n"
           "      --verify      also check that the runtime's int8 logits equal the training side's integer\n"
           "                    evaluation (kd_int8_forward_q) on every test image\n");
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sample i of ds as int8 NHWC model input (samples are stored CHW: pixels, or float values the
 * runtime quantizes with kdrt_quantize_input_f32). hwc: one sample's bytes. */
static void input_of(const kdrt_model *m, const kd_dataset *ds, int i, uint8_t *hwc, int8_t *q) {
    int C = ds->c, HW = ds->h * ds->w;
    const uint8_t *p = ds->pixels + (size_t)i * kd_dataset_sample_bytes(ds);
    if (ds->type == KD_DATA_F32) {
        for (int c = 0; c < C; c++)
            for (int k = 0; k < HW; k++) memcpy(hwc + 4 * ((size_t)k * C + c), p + 4 * ((size_t)c * HW + k), 4);
        kdrt_quantize_input_f32(m, q, (const float *)(const void *)hwc);
        return;
    }
    for (int c = 0; c < C; c++)
        for (int k = 0; k < HW; k++) hwc[(size_t)k * C + c] = p[(size_t)c * HW + k];
    kdrt_quantize_input_u8(m, q, hwc);
}

void kd_cli_kdm_free(kd_cli_kdm *r) {
    free(r->bytes);
    free(r->arena);
    free(r->in);
    free(r->out);
    memset(r, 0, sizeof *r);
}

int kd_cli_kdm_run(const char *cmd, const char *path, const kd_dataset *test, int runs, kd_cli_kdm *r) {
    memset(r, 0, sizeof *r);
    kd_error err;
    char *file = NULL;
    uint8_t *hwc = NULL;
    double *t = NULL;
    if (kd_read_file(path, &file, &r->len, &err)) return kd_cli_fail(cmd, &err);
    kdrt_model *m = &r->m;
    kdrt_status s;
    /* the runtime wants 16-byte-aligned model bytes for in-place SIMD loads */
    if (!(r->bytes = aligned_alloc(16, (r->len + 15) / 16 * 16))) goto oom;
    memcpy(r->bytes, file, r->len);
    if ((s = kdrt_model_load(m, r->bytes, r->len)) != KDRT_STATUS_OK) {
        fprintf(stderr, "distill %s: error: %s: %s (is it a .kdm from distill export?)\n", cmd, path,
                kdrt_status_string(s));
        goto fail;
    }
    r->arena_bytes = kdrt_arena_size(m);
    if (!(r->arena = aligned_alloc(16, (r->arena_bytes + 15) / 16 * 16))) goto oom;
    if ((s = kdrt_prepare(m, r->arena, r->arena_bytes)) != KDRT_STATUS_OK) {
        fprintf(stderr, "distill %s: error: %s: prepare: %s\n", cmd, path, kdrt_status_string(s));
        goto fail;
    }
    if (test->c != m->input_dims.c || test->h != m->input_dims.h || test->w != m->input_dims.w) {
        fprintf(stderr, "distill %s: error: %s takes %dx%dx%d samples, the data set has %dx%dx%d\n", cmd, path,
                m->input_dims.c, m->input_dims.h, m->input_dims.w, test->c, test->h, test->w);
        goto fail;
    }
    if ((test->type == KD_DATA_F32) != (m->input_values != 0)) {
        fprintf(stderr, "distill %s: error: %s takes %s, the data set holds %s\n", cmd, path,
                m->input_values ? "float values" : "8-bit pixels",
                test->type == KD_DATA_F32 ? "float values" : "8-bit pixels");
        goto fail;
    }
    size_t isz = (size_t)test->c * test->h * test->w, K = (size_t)m->n_classes;
    r->n = test->n;
    hwc = malloc(kd_dataset_sample_bytes(test));
    r->in = malloc(isz * (size_t)test->n);
    r->out = malloc(K * (size_t)test->n);
    t = malloc(sizeof(double) * (size_t)runs);
    if (!hwc || !r->in || !r->out || !t) goto oom;
    for (int i = 0; i < test->n; i++) input_of(m, test, i, hwc, r->in + (size_t)i * isz);
    /* latency: single images, after a warm-up, cycling through the test set */
    for (int i = -200; i < runs; i++) {
        int k = (i < 0 ? -i : i) % test->n;
        double t0 = kd_now();
        s = kdrt_invoke(m, r->in + (size_t)k * isz, r->out);
        if (i >= 0) t[i] = (kd_now() - t0) * 1e6;
        if (s != KDRT_STATUS_OK) {
            fprintf(stderr, "distill %s: error: %s: invoke: %s\n", cmd, path, kdrt_status_string(s));
            goto fail;
        }
    }
    qsort(t, (size_t)runs, sizeof(double), cmp_double);
    r->median_us = t[runs / 2];
    r->p99_us = t[(size_t)(runs * 0.99)];
    /* throughput and accuracy: the whole test set, one image at a time */
    int correct = 0;
    double t0 = kd_now();
    for (int i = 0; i < test->n; i++) kdrt_invoke(m, r->in + (size_t)i * isz, r->out + (size_t)i * K);
    double secs = kd_now() - t0;
    for (int i = 0; i < test->n; i++) correct += kdrt_output_argmax(m, r->out + (size_t)i * K) == test->labels[i];
    r->images_per_s = test->n / (secs > 0 ? secs : 1e-9);
    r->accuracy = (double)correct / test->n;
    r->all_acts = isz; /* every tensor of a run: the input and each layer's output */
    for (int i = 0; i < m->n_layers; i++) {
        kdrt_layer L;
        if (kdrt_model_layer(m, i, &L) == KDRT_STATUS_OK) r->all_acts += (size_t)L.out_dims.h * L.out_dims.w * L.out_dims.c;
    }
    free(file);
    free(hwc);
    free(t);
    return KD_EXIT_OK;
oom:
    fprintf(stderr, "distill %s: error: out of memory\n", cmd);
fail:
    free(file);
    free(hwc);
    free(t);
    kd_cli_kdm_free(r);
    return KD_EXIT_ERROR;
}

int kd_cmd_bench(int argc, char **argv) {
    static const struct option opts[] = {{"data", 1, 0, 'd'}, {"runs", 1, 0, 'n'}, {"verify", 0, 0, 'v'},
                                         {"limit", 1, 0, 'l'}, {"help", 0, 0, 'h'}, KD_CLI_DATA_OPTIONS, {0, 0, 0, 0}};
    const char *C = "bench", *data = "fashion-mnist";
    int runs = 5000, verify = 0, limit = 0;
    kd_data_opts dopts = kd_data_opts_default();
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "d:n:h", opts, NULL)) != -1;) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'n': if (!kd_cli_int(C, "--runs", optarg, 1, 100000000, &runs)) return KD_EXIT_USAGE; break;
        case 'v': verify = 1; break;
        case 'l': if (!kd_cli_int(C, "--limit", optarg, 1, 1 << 30, &limit)) return KD_EXIT_USAGE; break;
        case 'h': help(); fputs(KD_CLI_DATA_HELP, stdout); return 0;
        default: if (kd_cli_data_opt(C, c, optarg, &dopts)) return KD_EXIT_USAGE; break;
        }
    }
    if (optind != argc - 1) return kd_cli_usage_error(C, "expects one MODEL.kdm argument");
    const char *path = argv[optind];
    kd_dataset test = {0};
    kd_cli_kdm r;
    kd_error err;
    int fd = kd_open_input(path, &err); /* what is wrong with MODEL, before the test set is read */
    if (fd < 0) return kd_cli_fail(C, &err);
    kdrt_kdm_header h; /* an image folder is read at the model's shape, as eval reads it */
    if (read(fd, &h, sizeof h) == (ssize_t)sizeof h && !memcmp(h.magic, KDRT_KDM_MAGIC, 4))
        kd_cli_data_fit(data, &dopts, h.in_c, h.in_h, h.in_w);
    close(fd);
    if (kd_cli_load_data(C, data, "test", &dopts, NULL, &test)) return KD_EXIT_ERROR;
    if (limit && limit < test.n) kd_dataset_truncate(&test, limit);
    int rc = kd_cli_kdm_run(C, path, &test, runs, &r);
    if (rc) {
        kd_dataset_free(&test);
        return rc;
    }
    const kdrt_model *m = &r.m;
    printf("%s (%s): %d layers, %d classes\n", path, m->name[0] ? m->name : "unnamed", m->n_layers, m->n_classes);
    printf("  model bytes      %zu\n", m->size);
    printf("  arena bytes      %zu (activations %zu, requantization parameters %zu, kernel scratch %zu); "
           "all activations summed: %zu\n", r.arena_bytes, m->activation_bytes, m->param_bytes, m->scratch_bytes,
           r.all_acts);
    printf("  batch-1 latency  median %.2f us, p99 %.2f us (%d runs, 1 thread)\n", r.median_us, r.p99_us, runs);
    printf("  throughput       %.0f images/s (%d test images one at a time)\n", r.images_per_s, r.n);
    printf("  accuracy         %.2f%% on %s/test\n", 100.0 * r.accuracy, data);
    if (verify) { /* the training side's integer evaluation of the same file */
        kd_int8_model *q8 = NULL;
        size_t K = (size_t)m->n_classes;
        int8_t *ref = malloc(K * (size_t)r.n);
        if (!ref || kd_kdm_read(r.bytes, r.len, &q8, &err) || kd_int8_forward_q(q8, r.in, r.n, ref, &err)) {
            rc = ref ? kd_cli_fail(C, &err) : KD_EXIT_ERROR;
        } else {
            int same = 0;
            for (int i = 0; i < r.n; i++) same += !memcmp(ref + (size_t)i * K, r.out + (size_t)i * K, K);
            printf("  verify           int8 logits identical to the training side's integer evaluation on %d/%d "
                   "images\n", same, r.n);
            if (same != r.n) rc = KD_EXIT_ERROR;
        }
        free(ref);
        kd_int8_free(q8);
    }
    kd_cli_kdm_free(&r);
    kd_dataset_free(&test);
    return rc;
}
