/* For the .kdm fuzz targets (fuzz_kdm, fuzz_kdm_read): rewrite an image's checksum so that
 * mutations get past it to the structural checks. */
#ifndef KD_FUZZ_KDM_CRC_H
#define KD_FUZZ_KDM_CRC_H
#include <stddef.h>
#include <stdint.h>

#include "kdrt_model.h"

/* Bytes 8-11 := the CRC-32 of bytes 12 .. file_size (bytes 12-15), or .. size if that is out of range. */
static inline void fuzz_kdm_fix_crc(uint8_t *bytes, size_t size) {
    if (size < 16) return;
    uint32_t fsz = (uint32_t)bytes[12] | (uint32_t)bytes[13] << 8 | (uint32_t)bytes[14] << 16 | (uint32_t)bytes[15] << 24;
    size_t end = fsz >= 12 && fsz <= size ? fsz : size;
    uint32_t crc = kdrt_crc32(0, bytes + 12, end - 12);
    for (int i = 0; i < 4; i++) bytes[8 + i] = (uint8_t)(crc >> (8 * i));
}
#endif
