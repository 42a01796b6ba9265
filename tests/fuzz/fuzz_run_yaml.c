/* libFuzzer target for the run-file reader behind `--config` and `distill pipeline` (cli/config.c,
 * compiled in): the input as a run file turned into argv with an option table, and as a pipeline
 * file (read once: its top-level keys checked, its "teacher" section as argv, a top-level scalar);
 * accepted if either reading succeeds. Errors are printed (that is the CLI's job) but nothing may crash or leak.
 * Built and run by scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/run_yaml. */
#define _GNU_SOURCE
#include <getopt.h>

#include "../../cli/cli.h"
#include "fuzz_file.h"

static int fuzz_run_yaml(const uint8_t *data, size_t size) {
    /* the options of examples/kd-fitnet.yaml and examples/lm-kd.yaml (`distill kd`, `distill lm kd`),
     * and of the teacher section of examples/fashion-mnist.yaml */
    static const struct option flags[] = {
        {"teacher", 1, 0, 't'}, {"student", 1, 0, 's'}, {"output", 1, 0, 'o'},  {"epochs", 1, 0, 'e'},
        {"temperature", 1, 0, 'T'}, {"alpha", 1, 0, 'a'}, {"loss", 1, 0, 'L'},  {"text", 1, 0, 'x'},
        {"layers", 1, 0, 'l'},  {"steps", 1, 0, 'S'},   {"batch", 1, 0, 'b'},   {"lr", 1, 0, 'r'},
        {"warmup", 1, 0, 'w'},  {"hflip", 0, 0, 'h'},   {"init-from-teacher", 1, 0, 'I'},
        {"config", 1, 0, 'c'},  {"help", 0, 0, '?'},    {"model", 1, 0, 'm'},   {"translate", 1, 0, 'X'},
        {0, 0, 0, 0}};
    static const char *const head[] = {"train", NULL};
    const char *path = fuzz_file("run", data, size);
    if (!path) return 0;
    char arg0[] = "distill", arg1[] = "--epochs", arg2[] = "3";
    char *cmdline[] = {arg0, arg1, arg2, NULL};
    int argc = 3, n_file = 0, ok = 0;
    char **argv = cmdline;
    if (kd_cli_config_args("train", path, flags, &argc, &argv, &n_file)) {
        ok = 1;
        kd_cli_free_args(argc, argv);
    }
    kd_cli_yaml *y = kd_cli_yaml_open("pipeline", path);
    if (y) { /* a pipeline file */
        static const char *const keys[] = {"out",     "data",    "threads", "seed",     "teacher-file", "teacher",
                                           "baseline", "student", "prune",  "quantize", "qat",          NULL},
                                 *const required[] = {"student", NULL};
        const struct option *const tables[] = {flags, NULL};
        const char *out = NULL;
        argc = 0;
        argv = NULL;
        int sec = kd_cli_config_keys(y, keys, required) ? kd_cli_config_section(y, "teacher", tables, head, &argc, &argv) : 0;
        if (sec) kd_cli_free_args(argc, argv);
        ok = ok || (sec == 1 && kd_cli_config_scalar(y, "out", "out", &out));
        kd_cli_yaml_close(y);
    }
    unlink(path);
    return ok;
}

KD_FUZZ_TARGET(fuzz_run_yaml)
