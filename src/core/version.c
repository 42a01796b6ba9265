/* The version of the library a program runs with (include/distill/version.h). */
#include "distill/version.h"

const char *kd_version(void) { return KD_VERSION_STRING; }
