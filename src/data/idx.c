/* IDX files (the MNIST format: big-endian header, then raw data), raw or gzip-compressed. Every
 * field is validated before anything is allocated: magic, element type, dimensions, the total size,
 * and that the file really holds that many bytes. A gzip file is inflated to its end, so every
 * member's CRC-32 and length are checked: a flipped or missing byte is an error, not wrong pixels.
 * What every data set shares (the format dispatcher, splits, statistics, batching) is in dataset.c. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "distill/data.h"
#include "distill/fileio.h"

#define IDX_MAX_ELEMENTS (1LL << 31) /* 2 G elements: far beyond any image set we train on */

/* The bytes of an IDX file, read straight from it or inflated from gzip. zlib's inflate is used
 * directly rather than gzread, which ignores whatever follows a member that is not another member:
 * here the stream must end exactly with a member's trailer. Concatenated members are accepted
 * (RFC 1952 defines a gzip file as a series of members; `cat a.gz b.gz`, pigz and bgzip write
 * them, and gunzip decompresses them as one); any other trailing bytes are an error. */
typedef struct idx_src {
    const char *path;
    int fd;
    int gz;                 /* gzip (starts with 1f 8b) rather than raw */
    int in_member;          /* inside a gzip member: its header or data read, its trailer not yet */
    int members;            /* gzip members begun */
    long long file_off;     /* file bytes read so far */
    z_stream z;
    unsigned char in[1 << 16];
} idx_src;

/* More file bytes into s->in after the unconsumed ones: > 0 added, 0 at the end, -1 error. */
static int src_fill(idx_src *s, kd_error *err) {
    if (s->z.avail_in && s->z.next_in != s->in) memmove(s->in, s->z.next_in, s->z.avail_in);
    s->z.next_in = s->in;
    for (;;) {
        ssize_t r = read(s->fd, s->in + s->z.avail_in, sizeof s->in - s->z.avail_in);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            kd_error_set(err, KD_STATUS_IO, "%s: read error (%s)", s->path, strerror(errno));
            return -1;
        }
        s->z.avail_in += (uInt)r;
        s->file_off += r;
        return r > 0;
    }
}

static kd_status src_open(idx_src *s, const char *path, kd_error *err) {
    memset(s, 0, offsetof(idx_src, in));
    s->path = path;
    kd_error e0 = {0};
    s->fd = kd_open_input(path, &e0);
    if (s->fd < 0) {
        if (err) *err = e0;
        return e0.status;
    }
    s->z.next_in = s->in;
    while (s->z.avail_in < 2) {
        int r = src_fill(s, err);
        if (r < 0) return KD_STATUS_IO;
        if (r == 0) break;
    }
    s->gz = s->z.avail_in >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b;
    if (s->gz && inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK) { /* 16: gzip wrapper only */
        s->gz = 0;
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: cannot start zlib", path);
    }
    return KD_STATUS_OK;
}

static void src_close(idx_src *s) {
    if (s->gz) inflateEnd(&s->z);
    if (s->fd >= 0) close(s->fd);
}

/* Read up to n bytes into out (out may be NULL: discard them). Sets *got; fewer than n only at
 * the end of the data, which for gzip is a member's verified trailer followed by the file's end. */
static kd_status src_read(idx_src *s, unsigned char *out, size_t n, size_t *got, kd_error *err) {
    *got = 0;
    unsigned char sink[1 << 14];
    while (*got < n) {
        if (!s->gz) {
            if (!s->z.avail_in) {
                int r = src_fill(s, err);
                if (r < 0) return KD_STATUS_IO;
                if (r == 0) return KD_STATUS_OK;
            }
            size_t k = n - *got < s->z.avail_in ? n - *got : s->z.avail_in;
            if (out) memcpy(out + *got, s->z.next_in, k);
            s->z.next_in += k;
            s->z.avail_in -= (uInt)k;
            *got += k;
            continue;
        }
        if (!s->z.avail_in) {
            int r = src_fill(s, err);
            if (r < 0) return KD_STATUS_IO;
            if (r == 0) {
                if (!s->in_member) return KD_STATUS_OK; /* the last member's trailer was the end */
                return kd_error_set(err, KD_STATUS_BAD_FILE,
                                    "%s: truncated gzip data: the file (%lld bytes) ends inside a compressed member "
                                    "before its checksum", s->path, s->file_off);
            }
        }
        if (!s->in_member) { /* a member begins: the first, or one concatenated after the last */
            if (s->members) {
                int r = 1;
                while (s->z.avail_in < 2 && (r = src_fill(s, err)) > 0) {}
                if (r < 0) return KD_STATUS_IO;
                if (s->z.avail_in < 2 || s->z.next_in[0] != 0x1f || s->z.next_in[1] != 0x8b)
                    return kd_error_set(err, KD_STATUS_BAD_FILE,
                                        "%s: garbage after the end of the gzip data (byte %lld is not the start of "
                                        "another gzip member)", s->path, s->file_off - s->z.avail_in);
                if (inflateReset(&s->z) != Z_OK)
                    return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: cannot restart zlib", s->path);
            }
            s->in_member = 1;
            s->members++;
        }
        size_t want = n - *got;
        uInt chunk = want > (1u << 30) ? (1u << 30) : (uInt)want;
        if (!out && chunk > sizeof sink) chunk = sizeof sink;
        s->z.next_out = out ? out + *got : sink;
        s->z.avail_out = chunk;
        int ret = inflate(&s->z, Z_NO_FLUSH);
        *got += chunk - s->z.avail_out;
        if (ret == Z_STREAM_END) {
            s->in_member = 0; /* zlib has checked the member's CRC-32 and length */
        } else if (ret != Z_OK && !(ret == Z_BUF_ERROR && !s->z.avail_in)) {
            return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: corrupt gzip data: %s (detected at byte %lld)", s->path,
                                s->z.msg ? s->z.msg : "zlib error", s->file_off - s->z.avail_in);
        }
    }
    return KD_STATUS_OK;
}

/* Reads the whole IDX file: dims (up to 4) and a malloc'd payload of ubyte. */
static kd_status read_idx(const char *path, int want_ndim_lo, int want_ndim_hi, int *ndim, int dims[4],
                          uint8_t **data, size_t *count, kd_error *err) {
    *data = NULL;
    idx_src *f = malloc(sizeof *f);
    if (!f) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    kd_status st = src_open(f, path, err);
    if (st) {
        src_close(f);
        free(f);
        return st;
    }
    struct stat sb;
    if (fstat(f->fd, &sb) != 0) {
        st = kd_error_set(err, KD_STATUS_IO, "%s: cannot stat (%s)", path, strerror(errno));
        goto out;
    }
    unsigned char hdr[4];
    size_t got = 0;
    if ((st = src_read(f, hdr, 4, &got, err))) goto out;
    if (got < 4) {
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: truncated: %zu bytes, an IDX header needs at least 4", path, got);
        goto out;
    }
    if (hdr[0] != 0 || hdr[1] != 0) {
        st = kd_error_set(err, KD_STATUS_BAD_FILE,
                          "%s: not an IDX file (magic bytes %02x %02x %02x %02x; expected 00 00 <type> <ndim>)", path,
                          hdr[0], hdr[1], hdr[2], hdr[3]);
        goto out;
    }
    if (hdr[2] != 0x08) {
        const char *tn = hdr[2] == 0x09 ? "int8" : hdr[2] == 0x0B ? "int16" : hdr[2] == 0x0C ? "int32"
                       : hdr[2] == 0x0D ? "float32" : hdr[2] == 0x0E ? "float64" : "unknown";
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: IDX element type 0x%02x (%s) is not supported: expected 0x08 (unsigned byte)",
                          path, hdr[2], tn);
        goto out;
    }
    *ndim = hdr[3];
    if (*ndim < want_ndim_lo || *ndim > want_ndim_hi) {
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: has %d dimensions, expected %d%s%s", path, *ndim, want_ndim_lo,
                          want_ndim_hi > want_ndim_lo ? " to " : "", want_ndim_hi > want_ndim_lo ? (want_ndim_hi == 4 ? "4" : "?") : "");
        goto out;
    }
    unsigned char db[16];
    if ((st = src_read(f, db, (size_t)(4 * *ndim), &got, err))) goto out;
    if (got != (size_t)(4 * *ndim)) {
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: truncated header (file ends inside the dimensions)", path);
        goto out;
    }
    long long total = 1;
    for (int i = 0; i < *ndim; i++) {
        uint32_t d = (uint32_t)db[4 * i] << 24 | (uint32_t)db[4 * i + 1] << 16 | (uint32_t)db[4 * i + 2] << 8 | db[4 * i + 3];
        if (d == 0 || d > (uint32_t)IDX_MAX_ELEMENTS) {
            st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: dimension %d is %u", path, i, d);
            goto out;
        }
        dims[i] = (int)d;
        total *= d;
        if (total > IDX_MAX_ELEMENTS) {
            st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: header declares more than 2^31 elements", path);
            goto out;
        }
    }
    /* A raw file must be at least as large as it claims; a gzip stream may expand by at most
     * ~1032x, so a tiny .gz cannot hold gigabytes: refuse before allocating. */
    if ((long long)sb.st_size * 1100 + 4096 < total) {
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: truncated: header declares %lld bytes of data, file is %lld bytes",
                          path, total, (long long)sb.st_size);
        goto out;
    }
    *data = malloc((size_t)total);
    if (!*data) {
        st = kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: cannot allocate %lld bytes", path, total);
        goto out;
    }
    size_t done = 0;
    if ((st = src_read(f, *data, (size_t)total, &done, err))) goto out;
    if (done < (size_t)total) {
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: truncated: expected %lld bytes of data, got %zu", path, total, done);
        goto out;
    }
    /* Bytes after the declared data are ignored (some tools pad files), but a gzip stream is read
     * to its end: only there are the last member's checksum and length verified. */
    size_t rest = 0;
    if (f->gz && (st = src_read(f, NULL, SIZE_MAX, &rest, err))) goto out;
    *count = (size_t)total;
out:
    src_close(f);
    free(f);
    if (st) {
        free(*data);
        *data = NULL;
    }
    return st;
}

kd_status kd_dataset_load_idx(kd_dataset *ds, const char *images_path, const char *labels_path, kd_error *err) {
    memset(ds, 0, sizeof *ds);
    int nd_i = 0, nd_l = 0, di[4] = {0}, dl[4] = {0};
    uint8_t *pix = NULL, *lab = NULL;
    size_t ni = 0, nl = 0;
    kd_status st = read_idx(images_path, 3, 4, &nd_i, di, &pix, &ni, err);
    if (st) return st;
    if ((st = read_idx(labels_path, 1, 1, &nd_l, dl, &lab, &nl, err))) {
        free(pix);
        return st;
    }
    if (di[0] != dl[0]) {
        free(pix);
        free(lab);
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s has %d images but %s has %d labels", images_path, di[0],
                            labels_path, dl[0]);
    }
    ds->n = di[0];
    if (nd_i == 3) {
        ds->c = 1; ds->h = di[1]; ds->w = di[2];
    } else {
        ds->c = di[1]; ds->h = di[2]; ds->w = di[3];
    }
    ds->pixels = pix;
    ds->labels = malloc(sizeof(int32_t) * (size_t)ds->n);
    if (!ds->labels) {
        free(lab);
        kd_dataset_free(ds);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    }
    int mx = 0;
    for (int i = 0; i < ds->n; i++) {
        ds->labels[i] = lab[i];
        if (lab[i] > mx) mx = lab[i];
    }
    free(lab);
    ds->n_classes = mx + 1;
    snprintf(ds->labels_path, sizeof ds->labels_path, "%s", labels_path);
    kd_dataset_compute_stats(ds);
    return KD_STATUS_OK;
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

kd_status kd_dataset_load_idx_spec(kd_dataset *ds, const char *spec, const char *split, kd_error *err) {
    memset(ds, 0, sizeof *ds);
    const char *prefix;
    if (!strcmp(split, "train")) prefix = "train";
    else if (!strcmp(split, "test")) prefix = "t10k";
    else return kd_error_set(err, KD_STATUS_BAD_ARG, "unknown split '%s' (train or test)", split);
    const char *comma = strchr(spec, ',');
    if (comma) {
        char img[4096];
        snprintf(img, sizeof img, "%.*s", (int)(comma - spec), spec);
        return kd_dataset_load_idx(ds, img, comma + 1, err);
    }
    const char *dir = spec;
    int named = !strcmp(spec, "fashion-mnist");
    if (named) dir = KD_FASHION_MNIST_DIR;
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        if (named)
            return kd_error_set(err, KD_STATUS_NOT_FOUND,
                                "Fashion-MNIST not found in %s: install Debian's package dataset-fashion-mnist "
                                "(apt-get install dataset-fashion-mnist)", dir);
        return kd_error_set(err, KD_STATUS_NOT_FOUND,
                            "%s: no such data set (fashion-mnist, an image folder, a CIFAR or IDX directory, "
                            ".npz, .npy, .csv, .tsv or IMAGES,LABELS: docs/DATA.md)",
                            spec);
    }
    char img[4096], lab[4096];
    const char *ext[2] = {".gz", ""};
    for (int e = 0; e < 2; e++) {
        snprintf(img, sizeof img, "%s/%s-images-idx3-ubyte%s", dir, prefix, ext[e]);
        snprintf(lab, sizeof lab, "%s/%s-labels-idx1-ubyte%s", dir, prefix, ext[e]);
        if (file_exists(img) && file_exists(lab)) return kd_dataset_load_idx(ds, img, lab, err);
    }
    return kd_error_set(err, KD_STATUS_NOT_FOUND, "%s: no %s-images-idx3-ubyte[.gz] and %s-labels-idx1-ubyte[.gz] in it%s",
                        dir, prefix, prefix, named ? " (reinstall dataset-fashion-mnist)" : "");
}
