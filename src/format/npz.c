/* NumPy .npz archives: a zip file of .npy members (np.savez: stored; np.savez_compressed: deflate).
 * Only what a zip reader needs for them: the end-of-central-directory record (zip64 too), the
 * central directory, each member's local header, stored or raw-deflate data, and its CRC-32.
 * Encrypted, split or otherwise compressed archives are refused with a message saying so. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

#include "distill/fileio.h"
#include "distill/npz.h"

#define NPZ_MAX_MEMBERS 4096

typedef struct npz_member {
    char name[256];
    int method;           /* 0 stored, 8 deflate */
    uint32_t crc;
    uint64_t csize, usize, offset; /* compressed and uncompressed bytes, local header's offset */
} npz_member;

struct kd_npz {
    char path[1024];
    int fd;
    uint64_t size;
    int n;
    npz_member *m;
};

static uint32_t rd16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const unsigned char *p) { return rd16(p) | rd16(p + 2) << 16; }
static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* Read exactly len bytes at off (the caller has checked off + len <= the file's size). */
static kd_status read_at(const kd_npz *z, uint64_t off, void *buf, size_t len, kd_error *err) {
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(z->fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (r <= 0) return kd_error_set(err, KD_STATUS_IO, "%s: read failed at byte %llu", z->path,
                                        (unsigned long long)(off + got));
        got += (size_t)r;
    }
    return KD_STATUS_OK;
}

void kd_npz_close(kd_npz *z) {
    if (!z) return;
    if (z->fd >= 0) close(z->fd);
    free(z->m);
    free(z);
}

/* The central directory: n entries of cd_size bytes at cd_off. */
static kd_status read_directory(kd_npz *z, uint64_t n, uint64_t cd_off, uint64_t cd_size, kd_error *err) {
    if (n > NPZ_MAX_MEMBERS)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: %llu members, more than the %d a .npz may have here", z->path,
                            (unsigned long long)n, NPZ_MAX_MEMBERS);
    if (cd_off > z->size || cd_size > z->size - cd_off || cd_size > (uint64_t)n * (46 + 65535 * 3) + 1)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: the central directory (%llu bytes at %llu) is outside the file",
                            z->path, (unsigned long long)cd_size, (unsigned long long)cd_off);
    unsigned char *cd = malloc(cd_size ? cd_size : 1);
    z->m = calloc(n ? n : 1, sizeof *z->m);
    if (!cd || !z->m) {
        free(cd);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", z->path);
    }
    kd_status st = read_at(z, cd_off, cd, cd_size, err);
    size_t p = 0;
    for (uint64_t i = 0; !st && i < n; i++) {
        if (cd_size - p < 46 || rd32(cd + p) != 0x02014b50) {
            st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: central directory entry %llu is malformed", z->path,
                              (unsigned long long)i);
            break;
        }
        const unsigned char *e = cd + p;
        size_t nl = rd16(e + 28), xl = rd16(e + 30), cl = rd16(e + 32);
        if (cd_size - p - 46 < nl + xl + cl) {
            st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: central directory entry %llu is truncated", z->path,
                              (unsigned long long)i);
            break;
        }
        npz_member *m = &z->m[i];
        snprintf(m->name, sizeof m->name, "%.*s", (int)(nl < sizeof m->name ? nl : sizeof m->name - 1),
                 (const char *)e + 46);
        for (char *c = m->name; *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) *c = '?'; /* printable in messages */
        int flags = (int)rd16(e + 8);
        m->method = (int)rd16(e + 10);
        m->crc = rd32(e + 16);
        m->csize = rd32(e + 20);
        m->usize = rd32(e + 24);
        m->offset = rd32(e + 42);
        if (rd16(e + 34) != 0 && rd16(e + 34) != 0xffff) {
            st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: member %s is on another disk (split archives are not supported)",
                              z->path, m->name);
            break;
        }
        if (flags & 1) {
            st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: member %s is encrypted", z->path, m->name);
            break;
        }
        /* zip64: the 32-bit fields that are 0xffffffff are in the extra field 0x0001, in this order */
        const unsigned char *x = e + 46 + nl, *xe = x + xl;
        int need64 = m->usize == 0xffffffffu || m->csize == 0xffffffffu || m->offset == 0xffffffffu;
        int found = 0;
        while (need64 && xe - x >= 4) {
            uint32_t id = rd16(x), sz = rd16(x + 2);
            if ((size_t)(xe - x - 4) < sz) break;
            if (id == 1) {
                const unsigned char *q = x + 4, *qe = q + sz;
                uint64_t *f[3] = {&m->usize, &m->csize, &m->offset};
                found = 1;
                for (int k = 0; k < 3; k++) {
                    if (*f[k] != 0xffffffffu) continue;
                    if (qe - q < 8) { found = 0; break; }
                    *f[k] = rd64(q);
                    q += 8;
                }
                break;
            }
            x += 4 + sz;
        }
        if (need64 && !found) {
            st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: member %s needs zip64 sizes and has none", z->path, m->name);
            break;
        }
        p += 46 + nl + xl + cl;
    }
    free(cd);
    z->n = (int)n;
    return st;
}

kd_status kd_npz_open(const char *path, kd_npz **out, kd_error *err) {
    *out = NULL;
    kd_npz *z = calloc(1, sizeof *z);
    if (!z) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    snprintf(z->path, sizeof z->path, "%s", path);
    z->fd = kd_open_input(path, err);
    if (z->fd < 0) {
        kd_status st = err ? err->status : KD_STATUS_IO;
        kd_npz_close(z);
        return st;
    }
    off_t end = lseek(z->fd, 0, SEEK_END);
    z->size = end > 0 ? (uint64_t)end : 0;
    /* The end-of-central-directory record: 22 bytes plus a comment of up to 65535, at the end. */
    size_t tail = z->size < 22 + 65535 + 20 ? (size_t)z->size : 22 + 65535 + 20;
    unsigned char *t = malloc(tail ? tail : 1);
    if (!t) {
        kd_npz_close(z);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    }
    kd_status st = read_at(z, z->size - tail, t, tail, err);
    long eocd = -1;
    for (long i = (long)tail - 22; !st && i >= 0; i--)
        if (rd32(t + i) == 0x06054b50 && (size_t)i + 22 + rd16(t + i + 20) == tail) {
            eocd = i;
            break;
        }
    if (!st && eocd < 0)
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: not a .npz (zip) file: no end of central directory", path);
    if (!st) {
        const unsigned char *e = t + eocd;
        uint64_t n = rd16(e + 10), cd_size = rd32(e + 12), cd_off = rd32(e + 16);
        if (rd16(e + 4) != 0 || rd16(e + 6) != 0) {
            if (rd16(e + 4) != 0xffff)
                st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: a split zip archive is not supported", path);
        }
        if (!st && (n == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu)) {
            /* zip64: a locator just before the record points at the zip64 end of central directory */
            uint64_t loc = z->size - tail + (uint64_t)eocd;
            unsigned char l[20], r[56];
            if (loc < 20 || (st = read_at(z, loc - 20, l, 20, err)) || rd32(l) != 0x07064b50)
                st = st ? st : kd_error_set(err, KD_STATUS_BAD_FILE, "%s: zip64 sizes without a zip64 locator", path);
            else {
                uint64_t r_off = rd64(l + 8);
                if (r_off > z->size - 56 || z->size < 56 || (st = read_at(z, r_off, r, 56, err)) ||
                    rd32(r) != 0x06064b50)
                    st = st ? st : kd_error_set(err, KD_STATUS_BAD_FILE, "%s: bad zip64 end of central directory", path);
                else {
                    n = rd64(r + 32);
                    cd_size = rd64(r + 40);
                    cd_off = rd64(r + 48);
                }
            }
        }
        if (!st) st = read_directory(z, n, cd_off, cd_size, err);
    }
    free(t);
    if (st) {
        kd_npz_close(z);
        return st;
    }
    *out = z;
    return KD_STATUS_OK;
}

static const npz_member *find(const kd_npz *z, const char *name) {
    size_t nl = strlen(name);
    for (int i = 0; i < z->n; i++) {
        const char *m = z->m[i].name;
        if (!strcmp(m, name) || (!strncmp(m, name, nl) && !strcmp(m + nl, ".npy"))) return &z->m[i];
    }
    return NULL;
}

int kd_npz_has(const kd_npz *z, const char *name) { return find(z, name) != NULL; }

kd_status kd_npz_read(kd_npz *z, const char *name, size_t max_bytes, unsigned char **data, size_t *len,
                      kd_error *err) {
    *data = NULL;
    *len = 0;
    const npz_member *m = find(z, name);
    if (!m) return kd_error_set(err, KD_STATUS_NOT_FOUND, "%s: no member %s", z->path, name);
    if (m->method != 0 && m->method != 8)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: member %s uses zip compression method %d (only stored and "
                            "deflate, as np.savez and np.savez_compressed write, are read)", z->path, m->name, m->method);
    unsigned char lh[30];
    kd_status st = KD_STATUS_OK;
    if (m->offset > z->size || z->size - m->offset < 30 || (st = read_at(z, m->offset, lh, 30, err)) ||
        rd32(lh) != 0x04034b50)
        return st ? st : kd_error_set(err, KD_STATUS_BAD_FILE, "%s: member %s: bad local header at byte %llu", z->path,
                                      m->name, (unsigned long long)m->offset);
    uint64_t start = m->offset + 30 + rd16(lh + 26) + rd16(lh + 28);
    if (start > z->size || m->csize > z->size - start)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: member %s: %llu bytes at byte %llu run past the end of the "
                            "file (%llu bytes)", z->path, m->name, (unsigned long long)m->csize,
                            (unsigned long long)start, (unsigned long long)z->size);
    if (m->usize > max_bytes || m->usize > SIZE_MAX - 1)
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: member %s holds %.2f GB, more than the %.2f GB allowed",
                            z->path, m->name, (double)m->usize / 1e9, (double)max_bytes / 1e9);
    if (m->method == 0 && m->csize != m->usize)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: member %s is stored with %llu bytes but says %llu", z->path,
                            m->name, (unsigned long long)m->csize, (unsigned long long)m->usize);
    /* deflate never shrinks data below 1/1032 of its size: a larger claim is a lie, caught before allocating */
    if (m->method == 8 && m->usize / 1032 > m->csize + 1)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: member %s claims %llu bytes from %llu compressed", z->path,
                            m->name, (unsigned long long)m->usize, (unsigned long long)m->csize);
    unsigned char *out = malloc(m->usize ? m->usize : 1);
    unsigned char *in = m->method == 8 ? malloc(m->csize ? m->csize : 1) : out;
    if (!out || !in) {
        free(out);
        if (in != out) free(in);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: cannot allocate %llu bytes for member %s", z->path,
                            (unsigned long long)m->usize, m->name);
    }
    st = read_at(z, start, in, (size_t)m->csize, err);
    if (!st && m->method == 8) {
        z_stream s;
        memset(&s, 0, sizeof s);
        if (inflateInit2(&s, -15) != Z_OK) st = kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: cannot start zlib", z->path);
        else {
            uint64_t done_in = 0, done_out = 0;
            int r = Z_OK;
            while (r == Z_OK) { /* in steps of at most 1 GB: zlib's counts are 32-bit */
                s.next_in = in + done_in;
                s.avail_in = (uInt)(m->csize - done_in < (1u << 30) ? m->csize - done_in : (1u << 30));
                s.next_out = out + done_out;
                s.avail_out = (uInt)(m->usize - done_out < (1u << 30) ? m->usize - done_out : (1u << 30));
                uInt ai = s.avail_in, ao = s.avail_out;
                r = inflate(&s, Z_NO_FLUSH);
                done_in += ai - s.avail_in;
                done_out += ao - s.avail_out;
                if (r == Z_OK && ai == s.avail_in && ao == s.avail_out) r = Z_BUF_ERROR; /* no progress */
            }
            inflateEnd(&s);
            if (r != Z_STREAM_END || done_out != m->usize)
                st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: member %s: corrupt deflate data (%s)", z->path, m->name,
                                  r == Z_STREAM_END ? "wrong size" : s.msg ? s.msg : "truncated");
        }
    }
    if (!st) {
        uLong crc = crc32(0L, Z_NULL, 0);
        for (uint64_t o = 0; o < m->usize; o += 1u << 30)
            crc = crc32(crc, out + o, (uInt)(m->usize - o < (1u << 30) ? m->usize - o : (1u << 30)));
        if ((uint32_t)crc != m->crc)
            st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: member %s: CRC-32 mismatch (stored %08x, computed %08x)",
                              z->path, m->name, m->crc, (uint32_t)crc);
    }
    if (in != out) free(in);
    if (st) {
        free(out);
        return st;
    }
    *data = out;
    *len = (size_t)m->usize;
    return KD_STATUS_OK;
}
