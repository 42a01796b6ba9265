/* Runtime-only test of kdrt's optimised kernels: every variant built for this architecture (x86-64:
 * AVX-512 VNNI and AVX2; aarch64: NEON) and the dispatchers, bit-exact against `_ref` on the zoo's
 * layer shapes and on random problems (tests/runtime/kernel_check.h). Needs only the runtime's
 * sources, so scripts/cross-test.sh builds it for aarch64 and runs it under qemu-aarch64-static.
 * Prints one line per variant family and "N checked, M failed"; exits non-zero on any failure. */
#include <stdio.h>
#include <stdlib.h>

#include "kernel_check.h"

int main(int argc, char **argv) {
    int problems = argc > 1 ? atoi(argv[1]) : 300;
    kc_variant vs[4];
    int nv = kc_variants(vs);
#if defined(__aarch64__)
#if defined(__ARM_FEATURE_DOTPROD)
    printf("aarch64 with the dot-product extension (SDOT)\n");
#else
    printf("aarch64 without the dot-product extension (int16 multiply-accumulate)\n");
#endif
#endif
    for (int v = 0; v < nv; v++) printf("variant %s\n", vs[v].name);
    kc_run_all(vs, nv, problems);
    printf("%ld checked, %ld failed\n", kc_checked, kc_failed);
    return kc_failed ? 1 : 0;
}
