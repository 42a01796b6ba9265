/* libFuzzer target for a pipeline file as `distill pipeline` reads it (cli/cmd_pipeline.c through
 * cli/config.c, compiled in): every stage's section (teacher, baseline, student, prune, quantize,
 * qat) turned into the argv of its command, and the top-level scalars (out, data, threads, seed,
 * teacher-file). Accepted if any stage reads. Errors are printed (the CLI's job) but nothing may
 * crash, hang or leak. Built and run by scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c replays
 * tests/fuzz/corpus/pipeline_yaml. */
#include "../../cli/cli.h"
#include "fuzz_file.h"

static int fuzz_pipeline_yaml(const uint8_t *data, size_t size) {
    static const char *const sections[] = {"teacher", "baseline", "student", "prune", "quantize", "qat"};
    static const char *const scalars[] = {"out", "data", "threads", "seed", "teacher-file"};
    static const char *const head[] = {"kd", "--data", "fashion-mnist", "--resume", NULL};
    const char *path = fuzz_file("pipeline", data, size);
    if (!path) return 0;
    int ok = 0;
    for (size_t i = 0; i < sizeof sections / sizeof *sections; i++) {
        int argc = 0;
        char **argv = NULL;
        int r = kd_cli_config_section("pipeline", path, sections[i], head, &argc, &argv);
        if (r) kd_cli_free_args(argc, argv);
        ok |= r == 1;
    }
    char buf[256];
    for (size_t i = 0; i < sizeof scalars / sizeof *scalars; i++) kd_cli_config_scalar(path, scalars[i], NULL, buf, sizeof buf);
    unlink(path);
    return ok;
}

KD_FUZZ_TARGET(fuzz_pipeline_yaml)
