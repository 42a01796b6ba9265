/* Regression test for the fuzz targets' corpora (tests/fuzz/corpus/<format>/: the valid seed files,
 * a few broken ones and the inputs libFuzzer kept for new coverage, scripts/fuzz.sh): every file
 * goes through its target's entry point (the same function libFuzzer calls), under ASan+UBSan here.
 * Seeds (named with the format's extension, e.g. cnn-s.kdm) must be accepted, hand-made broken
 * files (named bad-*) rejected, and nothing may crash or leak. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>

#define KD_FUZZ_REPLAY
#include "../fuzz/fuzz_cifar.c"
#include "../fuzz/fuzz_csv.c"
#include "../fuzz/fuzz_idx.c"
#include "../fuzz/fuzz_image.c"
#include "../fuzz/fuzz_int8.c"
#include "../fuzz/fuzz_kdm.c"
#include "../fuzz/fuzz_kdm_read.c"
#include "../fuzz/fuzz_lm_ckpt.c"
#include "../fuzz/fuzz_lm_text.c"
#include "../fuzz/fuzz_model_yaml.c"
#include "../fuzz/fuzz_npy.c"
#include "../fuzz/fuzz_npz.c"
#include "../fuzz/fuzz_onnx.c"
#include "../fuzz/fuzz_pipeline_yaml.c"
#include "../fuzz/fuzz_run_yaml.c"
#include "../fuzz/fuzz_safetensors.c"
#include "../fuzz/fuzz_spec.c"
#include "../fuzz/fuzz_train_state.c"
#include "test.h"

static const struct {
    const char *dir, *ext;
    int (*one)(const uint8_t *data, size_t size);
} targets[] = {{"kdm", ".kdm", fuzz_kdm},
               {"safetensors", ".safetensors", fuzz_safetensors},
               {"int8", ".safetensors", fuzz_int8},
               {"lm_ckpt", ".safetensors", fuzz_lm_ckpt},
               {"npy", ".npy", fuzz_npy},
               {"idx", ".idx", fuzz_idx},
               {"image", ".img", fuzz_image},
               {"model_yaml", ".yaml", fuzz_model_yaml},
               {"run_yaml", ".yaml", fuzz_run_yaml},
               {"pipeline_yaml", ".yaml", fuzz_pipeline_yaml},
               {"train_state", ".ckpt", fuzz_train_state},
               {"kdm_read", ".kdm", fuzz_kdm_read},
               {"lm_text", ".txt", fuzz_lm_text},
               {"spec", ".spec", fuzz_spec},
               {"onnx", ".onnx", fuzz_onnx},
               {"cifar", ".bin", fuzz_cifar},
               {"npz", ".npz", fuzz_npz},
               {"csv", ".csv", fuzz_csv}};

static void replay(int t) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", KD_SOURCE_DIR, targets[t].dir);
    DIR *d = opendir(dir);
    CHECK_MSG(d != NULL, "cannot open %s", dir);
    if (!d) return;
    int files = 0, accepted = 0, seeds = 0, bad = 0;
    static uint8_t buf[1 << 20];
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        files++;
        int ok = targets[t].one(buf, n);
        accepted += ok;
        const char *ext = strstr(e->d_name, targets[t].ext);
        if (ext && !ext[strlen(targets[t].ext)]) {
            seeds++;
            CHECK_MSG(ok, "%s: seed %s is not accepted", targets[t].dir, e->d_name);
        } else if (!strncmp(e->d_name, "bad-", 4)) {
            bad++;
            CHECK_MSG(!ok, "%s: broken file %s is accepted", targets[t].dir, e->d_name);
        }
    }
    closedir(d);
    printf("fuzz corpus %s: %d files (%d seeds, %d hand-made broken), %d accepted, %d rejected with a status, none "
           "crashed\n", targets[t].dir, files, seeds, bad, accepted, files - accepted);
    CHECK_MSG(seeds >= 1 && accepted < files, "%s: the corpus needs a valid seed and a rejected file", targets[t].dir);
}

int main(void) {
    for (size_t t = 0; t < sizeof targets / sizeof *targets; t++) replay((int)t);
    TEST_DONE();
}
