/* libFuzzer target for a pipeline file as `distill pipeline` reads it (cli/cmd_pipeline.c through
 * cli/config.c, compiled in): read once (kd_cli_yaml_open: bounded depth, nodes and size), its
 * top-level keys checked, every stage's section (teacher, baseline, student, prune, quantize, qat)
 * turned into the argv of its command, and the top-level scalars (out, data, threads, seed,
 * teacher-file). Accepted if the keys check and every section reads. Errors are printed (the CLI's
 * job) but nothing may crash, hang or leak. Built and run by scripts/fuzz.sh;
 * tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/pipeline_yaml. */
#define _GNU_SOURCE
#include <getopt.h>

#include "../../cli/cli.h"
#include "fuzz_file.h"

static int fuzz_pipeline_yaml(const uint8_t *data, size_t size) {
    static const char *const sections[] = {"teacher", "baseline", "student", "prune", "quantize", "qat"};
    static const char *const scalars[] = {"out", "data", "threads", "seed", "teacher-file"};
    static const char *const keys[] = {"out",     "data",    "threads", "seed",     "teacher-file", "teacher",
                                       "baseline", "student", "prune",  "quantize", "qat",          NULL},
                             *const required[] = {"student", NULL};
    /* a few options of each stage's command (train/kd, prune, quantize), with and without values */
    static const struct option flags[] = {
        {"model", 1, 0, 'm'},    {"student", 1, 0, 's'},  {"epochs", 1, 0, 'e'},       {"lr", 1, 0, 'r'},
        {"loss", 1, 0, 'L'},     {"batch", 1, 0, 'b'},    {"sparsity", 1, 0, 'p'},     {"channels", 1, 0, 'c'},
        {"method", 1, 0, 'M'},   {"qat", 1, 0, 'Q'},      {"calib-images", 1, 0, 'C'}, {"translate", 1, 0, 'X'},
        {"hflip", 0, 0, 'h'},    {"limit", 1, 0, 'l'},    {0, 0, 0, 0}};
    static const char *const head[] = {"kd", "--data", "fashion-mnist", "--resume", NULL};
    const char *path = fuzz_file("pipeline", data, size);
    if (!path) return 0;
    int ok = 0;
    kd_cli_yaml *y = kd_cli_yaml_open("pipeline", path);
    if (y) {
        const struct option *const tables[] = {flags, NULL};
        ok = kd_cli_config_keys(y, keys, required);
        for (size_t i = 0; i < sizeof sections / sizeof *sections; i++) {
            int argc = 0;
            char **argv = NULL;
            int r = kd_cli_config_section(y, sections[i], tables, head, &argc, &argv);
            if (argv) kd_cli_free_args(argc, argv);
            ok = ok && r != 0;
        }
        for (size_t i = 0; i < sizeof scalars / sizeof *scalars; i++) {
            const char *v = NULL;
            ok = kd_cli_config_scalar(y, scalars[i], NULL, &v) && ok;
        }
        kd_cli_yaml_close(y);
    }
    unlink(path);
    return ok;
}

KD_FUZZ_TARGET(fuzz_pipeline_yaml)
