/* Regression test for the fuzzer's corpus (tests/fuzz/corpus: the valid seed models and the inputs
 * libFuzzer kept for new coverage, scripts/fuzz.sh): every file goes through the fuzz target's
 * load -> prepare -> invoke path, as is and with its checksum repaired, under ASan+UBSan here. The
 * two seed models must load and classify; the rest must be accepted or rejected with a status,
 * never crash. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>

#include "../fuzz/fuzz_kdm.c"
#include "test.h"

int main(void) {
    const char *dir = KD_SOURCE_DIR "/tests/fuzz/corpus";
    DIR *d = opendir(dir);
    CHECK_MSG(d != NULL, "cannot open %s", dir);
    int files = 0, accepted = 0, seeds_ok = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        static uint8_t buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        files++;
        LLVMFuzzerTestOneInput(buf, n);
        kdrt_model m;
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, buf, n);
        int ok = kdrt_model_load(&m, copy, n) == KDRT_STATUS_OK;
        accepted += ok;
        if (strstr(e->d_name, ".kdm")) { /* a seed: a real model */
            seeds_ok += ok;
            CHECK_MSG(ok, "seed %s does not load", e->d_name);
        }
        free(copy);
    }
    if (d) closedir(d);
    printf("fuzz corpus: %d files, %d load as models, %d rejected with a status, none crashed\n", files, accepted,
           files - accepted);
    CHECK(files >= 2 && seeds_ok == 2 && accepted < files);
    TEST_DONE();
}
