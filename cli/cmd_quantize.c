/* `distill quantize`: post-training int8 quantization of a checkpoint. Folds batch norm,
 * calibrates activation ranges on N training images, builds the int8 model (runtime layouts),
 * evaluates it with integer arithmetic (the kdrt reference kernels) and writes it. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "distill/fileio.h"
#include "distill/quantize.h"

static void help(void) {
    printf("Usage: distill quantize MODEL.safetensors [options] [-o MODEL.int8.safetensors]\n\n"
           "Post-training int8 quantization: batch norm folded, weights int8 per output channel (symmetric),\n"
           "activations int8 per tensor (asymmetric) with ranges calibrated on the first N training\n"
           "images, int32 biases, multiplier+shift requantization (docs/QUANTIZATION.md). The int8 model\n"
           "is evaluated with integer arithmetic by the runtime's reference kernels; prints the fp32 and\n"
           "int8 test accuracy, the drop and the parameter bytes.\n\n"
           "  -n, --calib-images N  calibration samples (default 1000, or all\n"
           "                        when the data has fewer)\n"
           "  -m, --method NAME     activation ranges: minmax (default), percentile, mse\n"
           "      --percentile P    for --method percentile (default 99.99)\n"
           "  -w, --weight-bits N   8 (default): int8 weights per channel; 4: int4 weights with per-group\n"
           "                        scales, run by the same int8 kernels (docs/QUANTIZATION.md section 9)\n"
           "  -g, --group N         int4: weights per group (default 32)\n"
           "  -d, --data SPEC       fashion-mnist (default), a directory of IDX files, or IMAGES,LABELS\n"
           "  -b, --batch N         evaluation batch (default 256)\n"
           "  -j, --threads N       threads (default 2)\n"
           "      --check           check the options, then exit without running\n"
           "  -o, --output FILE     write the int8 model (safetensors: I8 weights, I32 biases, multipliers\n"
           "                        and shifts, quantization parameters in the metadata)\n");
}

static const struct option opts[] = {{"calib-images", 1, 0, 'n'}, {"method", 1, 0, 'm'},
                                     {"percentile", 1, 0, 'P'},   {"data", 1, 0, 'd'},
                                     {"weight-bits", 1, 0, 'w'},  {"group", 1, 0, 'g'},
                                     {"batch", 1, 0, 'b'},        {"threads", 1, 0, 'j'},
                                     {"output", 1, 0, 'o'},       {"help", 0, 0, 'h'},
                                     {"check", 0, 0, 'K'},        KD_CLI_DATA_OPTIONS, {0, 0, 0, 0}};
const struct option *const kd_cli_quantize_options = opts;

int kd_cmd_quantize(int argc, char **argv) {
    const char *C = "quantize", *data = "fashion-mnist", *outp = NULL;
    kd_calib_config cfg;
    kd_calib_config_default(&cfg);
    kd_data_opts dopts = kd_data_opts_default();
    int batch = 256, threads = 2, check = 0;
    float pct = 99.99f;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "n:m:d:b:j:o:w:g:h", opts, NULL)) != -1;) {
        switch (c) {
        case 'n': if (!kd_cli_int(C, "--calib-images", optarg, 1, 10000000, &cfg.n_images)) return KD_EXIT_USAGE; break;
        case 'm':
            if (kd_calib_method_parse(optarg, &cfg.method))
                return kd_cli_usage_error(C, "--method expects minmax, percentile or mse, got '%s'", optarg);
            break;
        case 'P': if (!kd_cli_float(C, "--percentile", optarg, 50.0001, 100, &pct)) return KD_EXIT_USAGE; break;
        case 'd': data = optarg; break;
        case 'w':
            if (!kd_cli_int(C, "--weight-bits", optarg, 4, 8, &cfg.weight_bits)) return KD_EXIT_USAGE;
            if (cfg.weight_bits != 4 && cfg.weight_bits != 8)
                return kd_cli_usage_error(C, "--weight-bits must be 8 or 4, got %s", optarg);
            break;
        case 'g': if (!kd_cli_int(C, "--group", optarg, 1, 1 << 20, &cfg.weight_group)) return KD_EXIT_USAGE; break;
        case 'b': if (!kd_cli_int(C, "--batch", optarg, 1, 65536, &batch)) return KD_EXIT_USAGE; break;
        case 'j': if (!kd_cli_int(C, "--threads", optarg, 1, 256, &threads)) return KD_EXIT_USAGE; break;
        case 'o': outp = optarg; break;
        case 'K': check = 1; break;
        case 'h': help(); fputs(KD_CLI_DATA_HELP, stdout); return 0;
        default: if (kd_cli_data_opt(C, c, optarg, &dopts)) return KD_EXIT_USAGE; break;
        }
    }
    if (optind != argc - 1) return kd_cli_usage_error(C, "expects one MODEL argument");
    if (check) return 0; /* --check: the options are good, nothing runs */
    cfg.percentile = pct;
    cfg.threads = threads;
    kd_cli_threads(threads);
    const char *mpath = argv[optind];
    kd_model *m = NULL;
    kd_dataset train = {0}, test = {0};
    if (kd_cli_check_outputs(C, &outp, 1, &mpath, 1) || kd_cli_load_model(C, mpath, &m)) return KD_EXIT_ERROR;
    if (kd_cli_load_data(C, data, "train", &dopts, m, &train)) {
        kd_model_free(m);
        return KD_EXIT_ERROR;
    }
    if (kd_cli_load_data(C, data, "test", &dopts, m, &test)) {
        kd_dataset_free(&train);
        kd_model_free(m);
        return KD_EXIT_ERROR;
    }
    kd_error err;
    kd_eval_result fr;
    kd_int8_model *q = NULL;
    double acc8 = 0, t0, t_cal = 0, t_eval = 0;
    int rc = 0;
    if (kd_evaluate(m, &test, batch, threads, &fr, NULL, &err)) {
        rc = kd_cli_fail(C, &err);
        goto done;
    }
    t0 = kd_now();
    if (kd_int8_quantize(m, &train, &cfg, &q, &err)) {
        rc = kd_cli_fail(C, &err);
        goto done;
    }
    t_cal = kd_now() - t0;
    t0 = kd_now();
    if (kd_int8_evaluate(q, &test, batch, threads, &acc8, NULL, &err)) {
        rc = kd_cli_fail(C, &err);
        goto done;
    }
    t_eval = kd_now() - t0;
    char method[48];
    if (cfg.method == KD_CALIB_PERCENTILE) snprintf(method, sizeof method, "percentile %.4g%%", cfg.percentile);
    else snprintf(method, sizeof method, "%s", kd_calib_method_name(cfg.method));
    char wfmt[48] = "int8 weights";
    if (cfg.weight_bits == 4) snprintf(wfmt, sizeof wfmt, "int4 weights in groups of %d", cfg.weight_group);
    printf("%s: int8 post-training quantization (%s), %d calibration images, ranges: %s (%.1fs)\n", m->name, wfmt,
           kd_calib_count(&cfg, train.n), method, t_cal);
    printf("  fp32 accuracy  %.2f%% on %s/test (%d images)\n", 100 * fr.accuracy, data, fr.n);
    printf("  int8 accuracy  %.2f%% (integer evaluation, kdrt reference kernels, %.1fs)\n", 100 * acc8, t_eval);
    printf("  drop           %+.2f points\n", 100 * (fr.accuracy - acc8));
    char b32[32], b8[32];
    size_t p32 = kd_fp32_param_bytes(m), p8 = kd_int8_param_bytes(q);
    kd_cli_bytes(b32, sizeof b32, (double)p32);
    kd_cli_bytes(b8, sizeof b8, (double)p8);
    printf("  parameters     fp32 %s, int8 %s (%.1f%%; int8 weights + int32 bias, multiplier, shift)\n", b32, b8,
           100.0 * p8 / (p32 ? p32 : 1));
    if (outp) {
        if (kd_int8_save(outp, q, &err)) {
            rc = kd_cli_fail(C, &err);
            goto done;
        }
        double s32 = (double)kd_input_size(mpath, NULL), s8 = (double)kd_input_size(outp, NULL);
        kd_cli_bytes(b32, sizeof b32, s32);
        kd_cli_bytes(b8, sizeof b8, s8);
        printf("wrote %s: %s (fp32 checkpoint %s: %s, %.1f%%)\n", outp, b8, mpath, b32,
               s32 > 0 ? 100.0 * s8 / s32 : 0.0);
    }
done:
    kd_int8_free(q);
    kd_dataset_free(&train);
    kd_dataset_free(&test);
    kd_model_free(m);
    return rc;
}
