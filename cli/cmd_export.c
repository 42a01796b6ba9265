/* `distill export`: write the deployable .kdm model for the kdrt runtime (or a C header holding it)
 * from an int8 model of `distill quantize`, a .kdm file, or an fp32 checkpoint (quantized here with
 * the default calibration on the training images); or, with --format onnx, an ONNX model: fp32 from
 * an fp32 model, quantized (QLinear* operators) from an int8 model or .kdm (docs/ONNX.md). */
#define _GNU_SOURCE
#include <ctype.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "distill/export.h"
#include "distill/fileio.h"
#include "distill/onnx.h"
#include "distill/quantize.h"
#include "kdrt_model.h"

static void help(void) {
    printf("Usage: distill export MODEL -o OUT.kdm|OUT.h|OUT.onnx [options]\n\n"
           "Write the deployable model of the kdrt runtime: a .kdm file (docs/FORMAT.md: int8 weights, int32\n"
           "biases, float scales, a checksum; loaded in place by kdrt_model_load), or with --format c a C\n"
           "header holding it as an aligned const array plus a <NAME>_ARENA_SIZE macro (the exact arena\n"
           "kdrt_prepare needs: with this machine's kernel scratch on its architecture, none on targets\n"
           "with only the reference kernels, such as Cortex-M). MODEL is an int8 model from `distill\n"
           "quantize -o`, a .kdm file, or an fp32 checkpoint (or built-in model), which is then quantized\n"
           "with the calibration options below.\n"
           "Prints the file size, its ratio to the fp32 checkpoint when known, and the arena size.\n"
           "With --format onnx (the default for an output ending in .onnx), an ONNX model (opset %d, input\n"
           "\"%s\" float32 (N, C, H, W) normalised as the model was trained, output \"%s\" (N, classes);\n"
           "docs/ONNX.md): an fp32 MODEL as fp32, an int8 model or .kdm as int8 ONNX (--int8-ops).\n\n"
           "  -o, --output FILE     the output file (required)\n"
           "  -f, --format F        kdm (default), c (the default for an output ending in .h) or onnx\n"
           "      --name NAME       C array name for --format c (default: from the output file name)\n"
           "      --int8-ops FORM   int8 ONNX: exact (default: kdrt's integer arithmetic in standard\n"
           "                        operators, the same outputs as kdrt bit for bit) or qlinear (QLinearConv,\n"
           "                        the form int8 runtimes and accelerators fuse; rounds once, in float)\n"
           "      --fp32 FILE       the fp32 checkpoint to compare sizes with, which must exist (default:\n"
           "                        MODEL for an fp32 MODEL; for X.int8.safetensors, X.safetensors if it\n"
           "                        exists)\n"
           "  fp32 MODEL only:\n"
           "  -n, --calib-images N  calibration samples (default 1000, or all\n"
           "                        when the data has fewer)\n"
           "  -m, --method NAME     activation ranges: minmax (default), percentile, mse\n"
           "  -d, --data SPEC       calibration data: fashion-mnist (default), a directory of IDX files, or\n"
           "                        IMAGES,LABELS (its training split)\n"
           "  -j, --threads N       threads (default 2)\n", KD_ONNX_EXPORT_OPSET, KD_ONNX_INPUT_NAME,
           KD_ONNX_OUTPUT_NAME);
}


static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Does the file carry the distill-int8 metadata of kd_int8_save? (Its safetensors header says so.)
 * 1 yes; 0 no, or no such file (MODEL may be a built-in name); -1 when it cannot be read (err set). */
static int is_int8_file(const char *path, kd_error *err) {
    FILE *f = kd_fopen_input(path, err);
    if (!f) return err->status == KD_STATUS_NOT_FOUND ? 0 : -1;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\0') buf[i] = ' ';
    return strstr(buf, "\"distill-int8\"") != NULL;
}

/* The C array name from the output path: its base name up to the first '.', non-identifier
 * characters as '_'. */
static void default_symbol(const char *out, char *sym, size_t n) {
    const char *base = strrchr(out, '/');
    base = base ? base + 1 : out;
    size_t k = 0;
    if (*base >= '0' && *base <= '9') sym[k++] = '_';
    for (; *base && *base != '.' && k + 1 < n; base++) {
        char c = *base;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        sym[k++] = ok ? c : '_';
    }
    sym[k] = '\0';
    if (k == 0 || (k == 1 && sym[0] == '_')) snprintf(sym, n, "model");
}

/* --format onnx: an fp32 model as fp32 ONNX, an int8 model (file or .kdm) as quantized ONNX. */
static int export_onnx(const char *C, const char *mpath, const char *outp, int kdm, int int8, kd_onnx_int8_ops ops) {
    kd_error err;
    kd_status st;
    unsigned char *bytes = NULL;
    size_t len = 0;
    char name[KD_NAME_MAX];
    if (kdm || int8) {
        kd_int8_model *q = NULL;
        if (kdm ? kd_kdm_load(mpath, &q, &err) : kd_int8_load(mpath, &q, &err)) return kd_cli_fail(C, &err);
        snprintf(name, sizeof name, "%s", q->name);
        st = kd_onnx_export_int8(q, ops, &bytes, &len, &err);
        kd_int8_free(q);
    } else {
        kd_model *m = NULL;
        if (kd_cli_load_model(C, mpath, &m)) return KD_EXIT_ERROR;
        snprintf(name, sizeof name, "%s", m->name);
        st = kd_onnx_export_fp32(m, &bytes, &len, &err);
        kd_model_free(m);
    }
    int rc = st ? kd_cli_fail_in(C, mpath, &err) : kd_write_file_atomic(outp, bytes, len, &err) ? kd_cli_fail(C, &err) : 0;
    free(bytes);
    if (rc) return rc;
    char b1[32];
    kd_cli_bytes(b1, sizeof b1, (double)len);
    printf("wrote %s: %s ONNX model %s (opset %d, input \"%s\" (N, C, H, W), output \"%s\"), %s (%zu bytes)\n",
           outp, kdm || int8 ? "int8" : "fp32", name, KD_ONNX_EXPORT_OPSET, KD_ONNX_INPUT_NAME, KD_ONNX_OUTPUT_NAME,
           b1, len);
    return 0;
}

int kd_cmd_export(int argc, char **argv) {
    static const struct option opts[] = {{"output", 1, 0, 'o'},  {"format", 1, 0, 'f'},       {"name", 1, 0, 'N'},
                                         {"fp32", 1, 0, 'F'},    {"calib-images", 1, 0, 'n'}, {"method", 1, 0, 'm'},
                                         {"data", 1, 0, 'd'},    {"threads", 1, 0, 'j'},      {"help", 0, 0, 'h'},
                                         {"int8-ops", 1, 0, 'Q'}, KD_CLI_DATA_OPTIONS, {0, 0, 0, 0}};
    const char *C = "export", *outp = NULL, *format = NULL, *name = NULL, *fp32 = NULL, *data = "fashion-mnist";
    kd_calib_config cfg;
    kd_calib_config_default(&cfg);
    kd_data_opts dopts = kd_data_opts_default();
    int threads = 2;
    kd_onnx_int8_ops ops = KD_ONNX_INT8_EXACT;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "o:f:n:m:d:j:h", opts, NULL)) != -1;) {
        switch (c) {
        case 'o': outp = optarg; break;
        case 'f':
            if (strcmp(optarg, "kdm") != 0 && strcmp(optarg, "c") != 0 && strcmp(optarg, "onnx") != 0)
                return kd_cli_usage_error(C, "--format expects kdm, c or onnx, got '%s'", optarg);
            format = optarg;
            break;
        case 'N': name = optarg; break;
        case 'Q':
            if (strcmp(optarg, "exact") != 0 && strcmp(optarg, "qlinear") != 0)
                return kd_cli_usage_error(C, "--int8-ops expects exact or qlinear, got '%s'", optarg);
            ops = strcmp(optarg, "qlinear") == 0 ? KD_ONNX_INT8_QLINEAR : KD_ONNX_INT8_EXACT;
            break;
        case 'F': fp32 = optarg; break;
        case 'n': if (!kd_cli_int(C, "--calib-images", optarg, 1, 10000000, &cfg.n_images)) return KD_EXIT_USAGE; break;
        case 'm':
            if (kd_calib_method_parse(optarg, &cfg.method))
                return kd_cli_usage_error(C, "--method expects minmax, percentile or mse, got '%s'", optarg);
            break;
        case 'd': data = optarg; break;
        case 'j': if (!kd_cli_int(C, "--threads", optarg, 1, 256, &threads)) return KD_EXIT_USAGE; break;
        case 'h': help(); fputs(KD_CLI_DATA_HELP, stdout); return 0;
        default: if (kd_cli_data_opt(C, c, optarg, &dopts)) return KD_EXIT_USAGE; break;
        }
    }
    if (optind != argc - 1) return kd_cli_usage_error(C, "expects one MODEL argument");
    if (!outp) return kd_cli_usage_error(C, "needs an output file (-o OUT.kdm)");
    if (!format) format = ends_with(outp, ".h") ? "c" : kd_onnx_is_path(outp) ? "onnx" : "kdm";
    int as_c = strcmp(format, "c") == 0;
    char sym[64];
    if (name) snprintf(sym, sizeof sym, "%s", name);
    else default_symbol(outp, sym, sizeof sym);
    cfg.threads = threads;
    kd_cli_threads(threads);

    const char *mpath = argv[optind];
    kd_error err;
    kd_int8_model *q = NULL;
    int rc = 0, kdm = ends_with(mpath, ".kdm"), int8 = 0;
    char guess[4096];
    const char *ins[] = {mpath, fp32};
    if (kd_cli_check_outputs(C, &outp, 1, ins, 2)) return KD_EXIT_ERROR;
    if ((fp32 && kd_input_size(fp32, &err) < 0) || (!kdm && (int8 = is_int8_file(mpath, &err)) < 0))
        return kd_cli_fail(C, &err);
    if (!strcmp(format, "onnx")) return export_onnx(C, mpath, outp, kdm, int8, ops);
    if (kdm) {
        if (kd_kdm_load(mpath, &q, &err)) return kd_cli_fail(C, &err);
        printf("%s: read the .kdm model (%d layers)\n", mpath, q->n_layers);
    } else if (int8) {
        if (kd_int8_load(mpath, &q, &err)) return kd_cli_fail(C, &err);
        printf("%s: int8 model %s (%d layers)\n", mpath, q->name, q->n_layers);
        if (!fp32 && ends_with(mpath, ".int8.safetensors")) { /* X.int8.safetensors -> X.safetensors */
            snprintf(guess, sizeof guess, "%.*s.safetensors", (int)(strlen(mpath) - strlen(".int8.safetensors")), mpath);
            if (kd_input_size(guess, NULL) > 0) fp32 = guess;
        }
    } else {
        kd_model *m = NULL;
        kd_dataset train = {0};
        if (kd_cli_load_model(C, mpath, &m)) return KD_EXIT_ERROR;
        if (kd_cli_load_data(C, data, "train", &dopts, m, &train)) {
            kd_model_free(m);
            return KD_EXIT_ERROR;
        }
        double t0 = kd_now();
        kd_status st = kd_int8_quantize(m, &train, &cfg, &q, &err);
        if (st) rc = kd_cli_fail(C, &err);
        else
            printf("%s: fp32 model %s quantized to int8 (%d calibration images from %s, ranges %s, %.1fs)\n", mpath,
                   m->name, kd_calib_count(&cfg, train.n), data, kd_calib_method_name(cfg.method), kd_now() - t0);
        if (!fp32 && kd_input_size(mpath, NULL) > 0) fp32 = mpath;
        kd_dataset_free(&train);
        kd_model_free(m);
        if (rc) return rc;
    }

    unsigned char *bytes = NULL;
    size_t len = 0;
    if (kd_kdm_write(q, &bytes, &len, &err)) { /* the model is checked here: name the file it came from */
        rc = kd_cli_fail_in(C, mpath, &err);
        goto done;
    }
    kdrt_model rm; /* the runtime's view: its arena size */
    size_t arena = kdrt_model_load(&rm, bytes, len) == KDRT_STATUS_OK ? kdrt_arena_size(&rm) : 0;
    if (as_c) {
        char *text = NULL;
        size_t tl = 0;
        if (kd_kdm_to_c(bytes, len, sym, mpath, &text, &tl, &err) || kd_write_file_atomic(outp, text, tl, &err)) {
            free(text);
            rc = kd_cli_fail(C, &err);
            goto done;
        }
        free(text);
    } else if (kd_write_file_atomic(outp, bytes, len, &err)) {
        rc = kd_cli_fail(C, &err);
        goto done;
    }
    char b1[32], b2[32], b3[32];
    kd_cli_bytes(b1, sizeof b1, (double)len);
    kd_cli_bytes(b3, sizeof b3, (double)arena);
    printf("wrote %s: %s model (%zu bytes)", outp, b1, len);
    if (as_c) {
        char up[64];
        for (size_t i = 0; i < sizeof up; i++) up[i] = (char)toupper((unsigned char)sym[i]);
        printf(" as C array %s[] with %s_ARENA_SIZE", sym, up);
    }
    double s32 = fp32 ? (double)kd_input_size(fp32, NULL) : -1.0;
    if (s32 > 0) {
        kd_cli_bytes(b2, sizeof b2, s32);
        printf(", %.1f%% of the fp32 checkpoint %s (%s)", 100.0 * (double)len / s32, fp32, b2);
    }
    printf("\n  arena: %zu bytes (%s) for kdrt_prepare\n", arena, b3);
done:
    free(bytes);
    kd_int8_free(q);
    return rc;
}
