/* The version has one home (include/distill/version.h): the macros agree with each other, the
 * library reports the version its header says, and `distill --version` prints it. */
#include <stdio.h>
#include <string.h>

#include "distill/version.h"
#include "test.h"

int main(void) {
    char buf[64];
    snprintf(buf, sizeof buf, "%d.%d.%d", KD_VERSION_MAJOR, KD_VERSION_MINOR, KD_VERSION_PATCH);
    CHECK_MSG(!strcmp(buf, KD_VERSION_STRING), "macros %s vs string %s", buf, KD_VERSION_STRING);
    CHECK_MSG(!strcmp(kd_version(), KD_VERSION_STRING), "library %s vs header %s", kd_version(),
              KD_VERSION_STRING);
    CHECK(KD_VERSION_NUMBER == KD_VERSION_MAJOR * 10000 + KD_VERSION_MINOR * 100 + KD_VERSION_PATCH);
    CHECK(KD_VERSION_NUMBER >= KD_VERSION_ENCODE(0, 1, 0));

    FILE *p = popen(KD_CLI_PATH " --version", "r");
    CHECK(p != NULL);
    if (p) {
        char line[256] = "";
        CHECK(fgets(line, sizeof line, p) != NULL);
        CHECK(pclose(p) == 0);
        char want[64];
        snprintf(want, sizeof want, "distill %s ", KD_VERSION_STRING);
        CHECK_MSG(!strncmp(line, want, strlen(want)), "distill --version printed: %s", line);
    }
    TEST_DONE();
}
