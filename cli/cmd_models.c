/* `distill models`: the built-in models (examples/models, embedded), each with its parameters and
 * multiply-accumulates at an input shape and class count, and its description (the first comment
 * line of its YAML); a model that cannot take that input says why instead. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void models_help(void) {
    printf("Usage: distill models [--input CxHxW] [--classes N] | --show NAME\n\n"
           "The built-in models with their parameters and multiply-accumulates per sample at an input\n"
           "shape and class count; every built-in model takes the data's shape and classes ('input: auto',\n"
           "'out: classes': docs/MODELS.md). Models that cannot take the input say why.\n\n"
           "  -i, --input CxHxW   the samples' shape, channels x height x width (default 1x28x28); a single\n"
           "                      number F is a table row of F features (Fx1x1)\n"
           "  -c, --classes N     the number of classes (default 10)\n"
           "      --show NAME     print the YAML of built-in model NAME (to copy and edit)\n");
}

/* "CxHxW" or "F" (F x 1 x 1) into fit; 0 if it is neither. */
static int parse_shape(const char *s, kd_model_fit *fit) {
    int c, h, w, n;
    char end;
    if (sscanf(s, "%dx%dx%d%n%c", &c, &h, &w, &n, &end) == 3 && s[n] == '\0') {
        /* the three values as parsed */
    } else if (sscanf(s, "%d%n%c", &c, &n, &end) == 1 && s[n] == '\0') {
        h = w = 1;
    } else {
        return 0;
    }
    if (c < 1 || h < 1 || w < 1 || c > 65536 || h > 65536 || w > 65536) return 0;
    fit->in_c = c;
    fit->in_h = h;
    fit->in_w = w;
    return 1;
}

/* The first comment line of a zoo YAML without its "# NAME: " ("" when it has none). */
static void description(const char *yaml, const char *name, char *out, size_t cap) {
    out[0] = '\0';
    if (yaml[0] != '#') return;
    const char *s = yaml + 1 + (yaml[1] == ' ');
    size_t nl = strlen(name);
    if (!strncmp(s, name, nl) && s[nl] == ':') s += nl + 1 + (s[nl + 1] == ' ');
    size_t len = strcspn(s, "\n");
    snprintf(out, cap, "%.*s", (int)(len < cap ? len : cap - 1), s);
}

int kd_cmd_models(int argc, char **argv) {
    static const struct option opts[] = {{"input", 1, 0, 'i'}, {"classes", 1, 0, 'c'}, {"show", 1, 0, 'S'},
                                         {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *C = "models", *show = NULL;
    kd_model_fit fit = {1, 28, 28, 10};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "i:c:h", opts, NULL)) != -1;) {
        switch (c) {
        case 'i':
            if (!parse_shape(optarg, &fit))
                return kd_cli_usage_error(C, "--input expects CxHxW (e.g. 3x32x32) or a feature count, each 1..65536, got '%s'",
                                          optarg);
            break;
        case 'c': if (!kd_cli_int(C, "--classes", optarg, 1, 1 << 20, &fit.n_classes)) return KD_EXIT_USAGE; break;
        case 'S': show = optarg; break;
        case 'h': models_help(); return 0;
        default: return kd_cli_usage_error(C, "unknown option");
        }
    }
    if (optind != argc) return kd_cli_usage_error(C, "takes no arguments ('%s')", argv[optind]);
    if (show) {
        const char *yaml = kd_model_zoo_yaml(show);
        if (!yaml) return kd_cli_usage_error(C, "'%s' is not a built-in model (distill models lists them)", show);
        fputs(yaml, stdout);
        return 0;
    }
    printf("Built-in models at input %dx%dx%d, %d classes:\n", fit.in_c, fit.in_h, fit.in_w, fit.n_classes);
    printf("%-12s %10s %14s  %s\n", "model", "params", "MACs", "description");
    for (int i = 0; kd_model_zoo_name(i); i++) {
        const char *name = kd_model_zoo_name(i);
        char desc[160];
        description(kd_model_zoo_yaml(name), name, desc, sizeof desc);
        kd_model *m = NULL;
        kd_error err = {0};
        if (kd_model_create_for(&m, name, 1, &fit, &err) == KD_STATUS_OK) {
            printf("%-12s %10zu %14lld  %s\n", name, m->n_params, kd_model_macs(m), desc);
            kd_model_free(m);
        } else {
            /* the problem, without "model NAME cannot take ... input: NAME:LINE: " in front */
            const char *why = err.msg, *p = strstr(why, " input: ");
            size_t nl = strlen(name);
            if (p) why = p + strlen(" input: ");
            if (!strncmp(why, name, nl) && why[nl] == ':') {
                why += nl + 1;
                why += strspn(why, "0123456789:");
                why += strspn(why, " ");
            }
            printf("%-12s cannot take %dx%dx%d: %s\n", name, fit.in_c, fit.in_h, fit.in_w, why);
        }
    }
    return 0;
}
