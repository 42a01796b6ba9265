/* fw_io.h for the host build of the firmware (scripts/firmware.sh compares its output with the
 * emulated device's, byte for byte). */
#include <stdio.h>
#include <stdlib.h>

#include "fw_io.h"

void fw_write(const char *s) { fputs(s, stdout); }

void fw_exit(int code) {
    fflush(stdout);
    exit(code);
}

size_t fw_stack_used(void) { return 0; }
