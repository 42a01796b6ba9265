/* `distill prune`: one-shot pruning of a checkpoint with a per-layer report. Unstructured
 * (magnitude, per layer or global) zeroes weights; structured (whole output channels, by filter
 * L1 norm or batch-norm |gamma|) builds a smaller dense model. Fine-tuning afterwards is `distill
 * kd --student PRUNED` (structured) or `distill kd --student DENSE --prune-sparsity S` (gradual). */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "distill/compress.h"
#include "distill/fileio.h"

static void help(void) {
    printf("Usage: distill prune MODEL.safetensors -o OUT.safetensors [options]\n\n"
           "Prune a trained model once and print what changed, layer by layer.\n\n"
           "      --sparsity S        unstructured: zero the smallest-magnitude fraction S of conv/linear\n"
           "                          weights (the file stays dense: it shrinks after int8/sparse export)\n"
           "      --scope X           layer (each layer reaches S; default) or global (one threshold)\n"
           "      --channels R        structured: remove fraction R of the output channels of every\n"
           "                          conv/hidden linear layer; the model really shrinks (0.5 = half)\n"
           "      --criterion X       l1 (filter L1 norm; default) or bn-gamma (|batch-norm gamma|)\n"
           "      --fold-bn           fold batch norms into the preceding conv/linear first\n"
           "      --check             check the options, then exit without running\n"
           "  -o, --output FILE       pruned model (model-only checkpoint)\n\n"
           "Then fine-tune with the teacher:  distill kd --teacher T.safetensors --student OUT.safetensors\n"
           "Gradual pruning during training:  distill kd --teacher T --student DENSE --prune-sparsity 0.8\n");
}

static const struct option opts[] = {{"sparsity", 1, 0, 's'}, {"scope", 1, 0, 'S'},  {"channels", 1, 0, 'c'},
                                     {"criterion", 1, 0, 'C'}, {"fold-bn", 0, 0, 'f'}, {"output", 1, 0, 'o'},
                                     {"help", 0, 0, 'h'},      {"check", 0, 0, 'K'},   {0, 0, 0, 0}};
const struct option *const kd_cli_prune_options = opts;

int kd_cmd_prune(int argc, char **argv) {
    const char *C = "prune", *out = NULL;
    float sparsity = 0.f, channels = 0.f;
    int fold = 0, check = 0;
    kd_prune_scope scope = KD_PRUNE_PER_LAYER;
    kd_channel_criterion crit = KD_CHANNEL_L1;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1;) {
        switch (c) {
        case 's': if (!kd_cli_float(C, "--sparsity", optarg, 0, 0.999, &sparsity)) return KD_EXIT_USAGE; break;
        case 'c': if (!kd_cli_float(C, "--channels", optarg, 0, 0.999, &channels)) return KD_EXIT_USAGE; break;
        case 'S':
            if (!strcmp(optarg, "layer")) scope = KD_PRUNE_PER_LAYER;
            else if (!strcmp(optarg, "global")) scope = KD_PRUNE_GLOBAL;
            else return kd_cli_usage_error(C, "--scope must be layer or global, got '%s'", optarg);
            break;
        case 'C':
            if (!strcmp(optarg, "l1")) crit = KD_CHANNEL_L1;
            else if (!strcmp(optarg, "bn-gamma")) crit = KD_CHANNEL_BN_GAMMA;
            else return kd_cli_usage_error(C, "--criterion must be l1 or bn-gamma, got '%s'", optarg);
            break;
        case 'f': fold = 1; break;
        case 'K': check = 1; break;
        case 'o': out = optarg; break;
        case 'h': help(); return 0;
        default: return kd_cli_usage_error(C, "unknown option");
        }
    }
    if (optind + 1 != argc) return kd_cli_usage_error(C, "give one model checkpoint");
    if (!out) return kd_cli_usage_error(C, "give the output file with -o");
    if (!(sparsity > 0.f) == !(channels > 0.f))
        return kd_cli_usage_error(C, "give either --sparsity (unstructured) or --channels (structured)");
    if (check) return 0; /* --check: the options are good, nothing runs */
    const char *in = argv[optind];
    kd_model *m = NULL, *before = NULL, *pruned = NULL;
    kd_error err;
    kd_prune_report rep = {0};
    kd_prune_mask mask = {0};
    int rc = 0;
    if (kd_cli_check_outputs(C, &out, 1, &in, 1) || kd_cli_load_model(C, in, &m)) return KD_EXIT_ERROR;
    if (fold) {
        int n = 0;
        kd_model *f = NULL;
        if (kd_fold_batchnorm(m, &f, &n, &err)) {
            rc = kd_cli_fail(C, &err);
            goto done;
        }
        kd_model_free(m);
        m = f;
        printf("folded %d batch norm%s\n", n, n == 1 ? "" : "s");
    }
    if (channels > 0.f) {
        kd_channel_prune_config cfg = {1.f - channels, NULL, crit};
        if (kd_prune_channels(m, &cfg, &pruned, &rep, &err)) {
            rc = kd_cli_fail(C, &err);
            goto done;
        }
    } else {
        /* the dense model (folded like m) for the report */
        if (kd_cli_load_model(C, in, &before)) {
            rc = KD_EXIT_ERROR;
            goto done;
        }
        int n;
        kd_model *f = NULL;
        if (fold && kd_fold_batchnorm(before, &f, &n, &err)) {
            rc = kd_cli_fail(C, &err);
            goto done;
        }
        if (f) {
            kd_model_free(before);
            before = f;
        }
        if (kd_prune_mask_init(&mask, m, &err) || kd_prune_magnitude(m, &mask, sparsity, scope, &err)) {
            rc = kd_cli_fail(C, &err);
            goto done;
        }
        if (kd_prune_report_compare(before, m, &rep, &err)) {
            rc = kd_cli_fail(C, &err);
            goto done;
        }
    }
    printf("%-12s %-10s %10s %10s %10s %12s %12s %9s\n", "layer", "type", "params", "->", "non-zero", "MACs",
           "->", "channels");
    for (int i = 0; i < rep.n_layers; i++) {
        const kd_prune_layer_report *L = &rep.layers[i];
        if (!L->params_before && !L->macs_before) continue;
        char ch[32] = "";
        if (L->channels_before) snprintf(ch, sizeof ch, "%d->%d", L->channels_before, L->channels_after);
        printf("%-12s %-10s %10zu %10zu %10zu %12lld %12lld %9s%s%s\n", L->name, kd_layer_type_name(L->type),
               L->params_before, L->params_after, L->nonzero_after, L->macs_before, L->macs_after, ch,
               L->note ? "  " : "", L->note ? L->note : "");
    }
    printf("%-12s %-10s %10zu %10zu %10zu %12lld %12lld\n", "total", "", rep.params_before, rep.params_after,
           rep.nonzero_after, rep.macs_before, rep.macs_after);
    kd_model *result = pruned ? pruned : m;
    if (kd_checkpoint_save(out, result, NULL, NULL, &err)) {
        rc = kd_cli_fail(C, &err);
        goto done;
    }
    printf("non-zero parameters %zu -> %zu (%.1f%%), MACs %.2f M -> %.2f M; %s: %lld -> %lld bytes\n",
           rep.nonzero_before, rep.nonzero_after, 100.0 * rep.nonzero_after / (rep.nonzero_before ? rep.nonzero_before : 1),
           rep.macs_before / 1e6, rep.macs_after / 1e6, out, kd_input_size(in, NULL), kd_input_size(out, NULL));
    printf("wrote %s; fine-tune it with: distill kd --teacher TEACHER --student %s -o OUT\n", out, out);
done:
    kd_prune_report_free(&rep);
    kd_prune_mask_free(&mask);
    kd_model_free(pruned);
    kd_model_free(before);
    kd_model_free(m);
    return rc;
}
