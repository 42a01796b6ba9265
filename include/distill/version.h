/* The library's version: the macros say which headers a program was compiled against,
 * kd_version() which library it runs with (they differ when a program is linked against an older
 * or newer libdistill). CMakeLists.txt reads the project version from this file, so it has one home. */
#ifndef DISTILL_VERSION_H
#define DISTILL_VERSION_H

#define KD_VERSION_MAJOR 0
#define KD_VERSION_MINOR 1
#define KD_VERSION_PATCH 0
#define KD_VERSION_STRING "0.1.0"
/* One comparable number: e.g. #if KD_VERSION_NUMBER >= KD_VERSION_ENCODE(0, 2, 0) */
#define KD_VERSION_ENCODE(major, minor, patch) ((major) * 10000 + (minor) * 100 + (patch))
#define KD_VERSION_NUMBER KD_VERSION_ENCODE(KD_VERSION_MAJOR, KD_VERSION_MINOR, KD_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library linked in, "MAJOR.MINOR.PATCH". */
const char *kd_version(void);

#ifdef __cplusplus
}
#endif
#endif
