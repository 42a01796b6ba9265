/* `distill import`: an ONNX model (a teacher trained in PyTorch, Keras, ...) converted into a distill
 * checkpoint (model YAML + fp32 weights), with the input normalisation it was trained with. The
 * conversion is the library's (kd_onnx_import); a .onnx path also works wherever a model is taken. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "distill/onnx.h"


static void import_help(void) {
    printf("Usage: distill import MODEL.onnx [-o OUT.safetensors] [options]\n\n"
           "Convert an ONNX model (opsets 11 to 17; the operators in docs/ONNX.md) into a distill checkpoint:\n"
           "the model YAML (layers named after the ONNX value names) and its fp32 weights. The checkpoint is\n"
           "then a teacher, a student or a model like any other; a .onnx path also works directly wherever a\n"
           "model is taken, without normalisation (import it to store one).\n\n"
           "  -o, --output FILE   the checkpoint to write (default: MODEL with .safetensors for .onnx)\n"
           "      --mean LIST     per-channel mean of the normalisation the model was trained with, on\n"
           "                      pixels in [0, 1], comma-separated (one value, or one per channel)\n"
           "      --std LIST      per-channel standard deviation (with --mean)\n"
           "      --scale01       the model takes plain [0, 1] pixels (mean 0, std 1)\n"
           "      --name NAME     the model's name (default: the file's name)\n"
           "      --check         import and print the summary, write nothing\n"
           "  -h, --help          this help\n\n"
           "Example: distill import resnet.onnx -o resnet.safetensors --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225\n");
}

int kd_cmd_import(int argc, char **argv) {
    static const struct option opts[] = {{"output", 1, 0, 'o'}, {"mean", 1, 0, 'M'},  {"std", 1, 0, 'S'},
                                         {"scale01", 0, 0, '1'}, {"name", 1, 0, 'n'}, {"check", 0, 0, 'c'},
                                         {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
    const char *C = "import", *out = NULL;
    float mean[KD_CLI_NORM_MAX], std[KD_CLI_NORM_MAX];
    int n_mean = 0, n_std = 0, scale01 = 0, check = 0;
    kd_onnx_import_opts o = {0};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1;) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'M': if (!(n_mean = kd_cli_norm_list(C, "--mean", optarg, mean, 0))) return KD_EXIT_USAGE; break;
        case 'S': if (!(n_std = kd_cli_norm_list(C, "--std", optarg, std, 0))) return KD_EXIT_USAGE; break;
        case '1': scale01 = 1; break;
        case 'n': o.name = optarg; break;
        case 'c': check = 1; break;
        case 'h': import_help(); return 0;
        default: return kd_cli_usage_error(C, "unknown option");
        }
    }
    if (optind != argc - 1) return kd_cli_usage_error(C, "expects one ONNX file");
    const char *in = argv[optind];
    if (!n_mean != !n_std) return kd_cli_usage_error(C, "--mean and --std go together");
    if (n_mean && n_mean != n_std)
        return kd_cli_usage_error(C, "--mean has %d values, --std %d: give as many of each", n_mean, n_std);
    if (scale01 && n_mean) return kd_cli_usage_error(C, "--scale01 and --mean/--std are alternatives; give one");
    if (scale01) {
        mean[0] = 0.f;
        std[0] = 1.f;
        n_mean = 1;
    }
    o.mean = mean;
    o.std = std;
    o.n_norm = n_mean;
    char def_out[4096];
    if (!out) {
        size_t n = strlen(in);
        snprintf(def_out, sizeof def_out, "%.*s.safetensors", (int)(kd_onnx_is_path(in) ? n - 5 : n), in);
        out = def_out;
    }
    if (!check && kd_cli_check_outputs(C, &out, 1, &in, 1)) return KD_EXIT_ERROR;
    kd_model *m = NULL;
    kd_onnx_import_info info;
    kd_error err;
    if (kd_onnx_import(in, &o, &m, &info, &err)) return kd_cli_fail(C, &err);
    fprintf(stderr, "distill import: %s: opset %d, %d nodes -> %d layers (%d evaluated at import, %d without a layer of "
                    "their own%s)\n", in, info.opset, info.n_nodes, m->n_layers, info.n_folded, info.n_dropped,
            info.softmax_dropped ? "; the final softmax is dropped: distill works with logits" : "");
    fprintf(stderr, "distill import: layers:");
    for (int t = 0; t < KD_LAYER_COUNT; t++) {
        int n = 0;
        for (int i = 0; i < m->n_layers; i++) n += m->layers[i].type == (kd_layer_type)t;
        if (n) fprintf(stderr, " %s %d", kd_layer_type_name((kd_layer_type)t), n);
    }
    fprintf(stderr, "\n");
    fprintf(stderr, "distill import: %s: input [%d, %d, %d], %d classes, %zu parameters, %lld MACs", m->name, m->in_c,
            m->in_h, m->in_w, m->n_classes, m->n_params, kd_model_macs(m));
    if (m->norm_mean) {
        fprintf(stderr, ", normalisation mean");
        for (int c = 0; c < m->in_c; c++) fprintf(stderr, "%s%g", c ? "," : " ", (double)m->norm_mean[c]);
        fprintf(stderr, " std");
        for (int c = 0; c < m->in_c; c++) fprintf(stderr, "%s%g", c ? "," : " ", (double)m->norm_std[c]);
    }
    fprintf(stderr, "\n");
    int rc = 0;
    if (!check) {
        if (kd_checkpoint_save(out, m, NULL, NULL, &err)) rc = kd_cli_fail(C, &err);
        else fprintf(stderr, "distill import: wrote %s\n", out);
    }
    kd_model_free(m);
    return rc;
}
