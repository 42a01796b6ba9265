/* CSV and TSV tables: numeric feature columns and one label column, a header row optional (RFC 4180
 * quotes, CRLF, a BOM, a missing last newline and blank lines are all fine). Features become float32
 * samples of shape F x 1 x 1; labels are class indices (all integers >= 0) or strings mapped to
 * classes in bytewise order. Also reads scikit-learn's bundled tables (wine_data.csv, iris.csv,
 * ...: a first row "N,F,class names..."). The rules are in docs/DATA.md ("CSV and TSV tables"). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/data.h"
#include "distill/fileio.h"

#define CSV_MAX_COLUMNS 100000
#define CSV_MAX_CELL (1 << 20)     /* bytes of one cell */
#define CSV_MAX_LABEL (1 << 20)    /* integer labels are class indices below this */

/* A parsed file: every row's cells (NUL-terminated, unquoted, in buf) and the line it starts on. */
typedef struct csv_table {
    const char *path;
    char *buf;
    char **cell;        /* all cells, row after row */
    size_t n_cells, cap_cells;
    int *row_start;     /* index of each row's first cell in cell[]; row_start[n_rows] = n_cells */
    int *row_line;      /* 1-based line of each row */
    int n_rows, cap_rows;
    char delim;
} csv_table;

static void table_free(csv_table *t) {
    free(t->buf);
    free(t->cell);
    free(t->row_start);
    free(t->row_line);
    memset(t, 0, sizeof *t);
}

static int row_len(const csv_table *t, int r) { return t->row_start[r + 1] - t->row_start[r]; }
static char *cell_at(const csv_table *t, int r, int c) { return t->cell[t->row_start[r] + c]; }

static int push_cell(csv_table *t, char *c) {
    if (t->n_cells >= INT32_MAX - 1) return -1;
    if (t->n_cells == t->cap_cells) {
        size_t cap = t->cap_cells ? 2 * t->cap_cells : 1024;
        char **p = realloc(t->cell, cap * sizeof *p);
        if (!p) return -1;
        t->cell = p;
        t->cap_cells = cap;
    }
    t->cell[t->n_cells++] = c;
    return 0;
}

static int push_row(csv_table *t, int line) {
    if (t->n_rows + 1 >= t->cap_rows) {
        int cap = t->cap_rows ? 2 * t->cap_rows : 256;
        int *a = realloc(t->row_start, sizeof(int) * (size_t)cap), *b = a ? realloc(t->row_line, sizeof(int) * (size_t)cap) : NULL;
        if (a) t->row_start = a;
        if (!b) return -1;
        t->row_line = b;
        t->cap_rows = cap;
    }
    t->row_line[t->n_rows] = line;
    t->row_start[t->n_rows++] = (int)t->n_cells;
    return 0;
}

/* The delimiter: a tab for .tsv; else a comma, or a semicolon when the first line has semicolons
 * and no comma (outside quotes). A first line with both is ambiguous: an error. */
static kd_status pick_delimiter(csv_table *t, const char *p, kd_error *err) {
    size_t n = strlen(t->path);
    if (n >= 4 && (!strcmp(t->path + n - 4, ".tsv") || !strcmp(t->path + n - 4, ".TSV"))) {
        t->delim = '\t';
        return KD_STATUS_OK;
    }
    int commas = 0, semis = 0, q = 0;
    for (; *p && (q || (*p != '\n' && *p != '\r')); p++) {
        if (*p == '"') q = !q;
        else if (!q) commas += *p == ',', semis += *p == ';';
    }
    if (commas && semis)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: line 1 has both commas and semicolons: cannot tell which "
                            "separates the columns (quote the cells that hold the other)", t->path);
    t->delim = semis ? ';' : ',';
    return KD_STATUS_OK;
}

/* Read and split path into rows and cells; blank lines are skipped. */
static kd_status table_read(csv_table *t, const char *path, size_t max_bytes, kd_error *err) {
    memset(t, 0, sizeof *t);
    t->path = path;
    size_t len;
    kd_status st = kd_read_file_max(path, max_bytes, "a table in memory", &t->buf, &len, err);
    if (st) return st;
    char *r = t->buf, *end = t->buf + len;
    if (len >= 3 && !memcmp(r, "\xef\xbb\xbf", 3)) r += 3; /* UTF-8 byte order mark */
    if ((st = pick_delimiter(t, r, err))) return st;
    int line = 1;
    while (r < end) {
        if (*r == '\n' || *r == '\r') { /* a blank line */
            if (*r == '\r' && r + 1 < end && r[1] == '\n') r++;
            r++;
            line++;
            continue;
        }
        if (push_row(t, line)) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
        int row_line = line, cols = 0;
        for (;;) { /* one cell: unquoted text, or "..." with "" for a quote; written back in place */
            char *w = r, *start = r;
            if (++cols > CSV_MAX_COLUMNS)
                return kd_error_set(err, KD_STATUS_BAD_FILE, "%s:%d: more than %d columns", path, row_line, CSV_MAX_COLUMNS);
            if (*r == '"') {
                r++;
                for (;;) {
                    if (r >= end)
                        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s:%d: column %d: a quote is never closed", path,
                                            row_line, cols);
                    if (*r == '"') {
                        if (r + 1 < end && r[1] == '"') { *w++ = '"'; r += 2; continue; }
                        r++;
                        break;
                    }
                    if (*r == '\n') line++;
                    *w++ = *r++;
                }
                if (r < end && *r != t->delim && *r != '\n' && *r != '\r')
                    return kd_error_set(err, KD_STATUS_BAD_FILE, "%s:%d: column %d: text after a closing quote", path,
                                        line, cols);
            } else {
                while (r < end && *r != t->delim && *r != '\n' && *r != '\r') {
                    if (*r == '"')
                        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s:%d: column %d: a quote inside an unquoted "
                                            "cell", path, line, cols);
                    r++;
                }
                w = r;
            }
            if (w - start > CSV_MAX_CELL)
                return kd_error_set(err, KD_STATUS_BAD_FILE, "%s:%d: column %d: a cell longer than %d bytes", path, line,
                                    cols, CSV_MAX_CELL);
            char d = r < end ? *r : '\n';
            *w = 0; /* w <= r: the delimiter or line end is overwritten at most */
            if (push_cell(t, start)) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
            if (r < end) r++;
            if (d == t->delim) continue;
            if (d == '\r' && r < end && *r == '\n') r++;
            line++;
            break;
        }
    }
    if (push_row(t, line)) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    t->n_rows--; /* the sentinel: row_start[n_rows] = n_cells */
    return KD_STATUS_OK;
}

/* s as a number (surrounding spaces allowed): 1 and *v when it is one, else 0. */
static int parse_number(const char *s, double *v) {
    char *e;
    errno = 0;
    *v = strtod(s, &e);
    if (e == s) return 0;
    while (isspace((unsigned char)*e)) e++;
    return *e == 0;
}

/* s as an integer label >= 0: 1 and *v, else 0. */
static int parse_label(const char *s, long *v) {
    while (*s == ' ') s++;
    if (!isdigit((unsigned char)*s)) return 0;
    char *e;
    errno = 0;
    *v = strtol(s, &e, 10);
    while (*e == ' ') e++;
    return *e == 0 && errno == 0;
}

/* The layout of the tables of one spec: which column is the label, whether row 0 is a header, or
 * scikit-learn's layout (row 0: "N,F,names...") with its class names. */
typedef struct csv_layout {
    int cols, label, header, sklearn;
} csv_layout;

static int is_sklearn(const csv_table *t) {
    long n, f;
    if (t->n_rows < 2 || row_len(t, 0) < 3 || !parse_label(cell_at(t, 0, 0), &n) || !parse_label(cell_at(t, 0, 1), &f))
        return 0;
    return n == t->n_rows - 1 && f + 1 == row_len(t, 1) && f >= 1;
}

static kd_status find_layout(const csv_table *t, const kd_data_opts *opts, csv_layout *L, kd_error *err) {
    memset(L, 0, sizeof *L);
    if (t->n_rows == 0) return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: no rows", t->path);
    if (is_sklearn(t)) {
        L->sklearn = 1;
        L->header = 1;
        L->cols = row_len(t, 1);
        L->label = L->cols - 1;
        return KD_STATUS_OK;
    }
    L->cols = row_len(t, 0);
    if (L->cols < 2)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s:%d: one column only: a table needs feature columns and a label "
                            "column%s", t->path, t->row_line[0], t->delim == ',' ? " (is it separated by commas?)" : "");
    const char *lc = opts->label_column;
    long idx;
    if (!lc[0]) L->label = L->cols - 1;
    else if (parse_label(lc, &idx)) {
        if (idx >= L->cols)
            return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: label column %ld does not exist (the table has %d columns, "
                                "counted from 0)", t->path, idx, L->cols);
        L->label = (int)idx;
    } else {
        L->label = -1;
        for (int c = 0; c < L->cols; c++)
            if (!strcmp(cell_at(t, 0, c), lc)) L->label = c;
        if (L->label < 0)
            return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: no column named '%s' in the first row", t->path, lc);
        L->header = 1;
        return KD_STATUS_OK;
    }
    double v;
    for (int c = 0; c < L->cols; c++)
        if (c != L->label && !parse_number(cell_at(t, 0, c), &v)) L->header = 1; /* a feature cell that is no number */
    if (L->header || t->n_rows < 2 || parse_number(cell_at(t, 0, L->label), &v)) return KD_STATUS_OK;
    /* numeric column names ("0,1,2,label": pandas' to_csv of integer column names): row 0's label cell is
     * no number while every other row's is an integer class */
    long k;
    for (int r = 1; r < t->n_rows; r++)
        if (L->label >= row_len(t, r) || !parse_label(cell_at(t, r, L->label), &k)) return KD_STATUS_OK;
    L->header = 1;
    return KD_STATUS_OK;
}

/* Column c named for a message: "column 3 ("alcohol")" (1-based), or "column 3" without a header. */
static void column_name(char *out, size_t cap, const csv_table *t, const csv_layout *L, int c) {
    if (L->header && !L->sklearn && c < row_len(t, 0)) snprintf(out, cap, "column %d (\"%.60s\")", c + 1, cell_at(t, 0, c));
    else snprintf(out, cap, "column %d", c + 1);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The classes of the label cells of every table: integers, or sorted distinct strings (*names,
 * *n_names; pointers into the tables). */
static kd_status find_classes(csv_table *t, int nt, const csv_layout *L, int *n_classes, char ***names, int *n_names,
                              kd_error *err) {
    *names = NULL;
    *n_names = 0;
    int all_int = 1;
    long max = -1, v;
    size_t total = 0;
    for (int k = 0; k < nt; k++)
        for (int r = L[k].header; r < t[k].n_rows; r++) {
            total++;
            if (row_len(&t[k], r) != L[k].cols) continue; /* reported with its row when the samples are read */
            if (!parse_label(cell_at(&t[k], r, L[k].label), &v)) all_int = 0;
            else if (v > max) max = v;
        }
    if (L[0].sklearn) all_int = 1;
    if (all_int) {
        if (max >= CSV_MAX_LABEL)
            return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: label %ld is out of range (integer labels are class "
                                "indices, 0 .. %d)", t[0].path, max, CSV_MAX_LABEL - 1);
        *n_classes = (int)max + 1;
        return KD_STATUS_OK;
    }
    char **s = malloc(sizeof(char *) * (total ? total : 1));
    if (!s) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    size_t m = 0;
    for (int k = 0; k < nt; k++)
        for (int r = L[k].header; r < t[k].n_rows; r++)
            if (row_len(&t[k], r) == L[k].cols) s[m++] = cell_at(&t[k], r, L[k].label);
    qsort(s, m, sizeof *s, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < m; i++)
        if (!u || strcmp(s[u - 1], s[i])) s[u++] = s[i];
    if (u > CSV_MAX_LABEL) {
        free(s);
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: %zu distinct labels, more than %d", t[0].path, u, CSV_MAX_LABEL);
    }
    *names = s;
    *n_names = *n_classes = (int)u;
    return KD_STATUS_OK;
}

/* ds's samples and labels from table t. */
static kd_status table_samples(kd_dataset *ds, const csv_table *t, const csv_layout *L, char **names, int n_names,
                               const char *spec, size_t max_bytes, kd_error *err) {
    int n = t->n_rows - L->header, f = L->cols - 1;
    if (n <= 0) return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: no rows%s", t->path, L->header ? " after the header" : "");
    kd_status st = kd_dataset_check_size(spec, n, f, 1, 1, 4, max_bytes, err);
    if (st) return st;
    ds->n = n;
    ds->c = f;
    ds->h = ds->w = 1;
    ds->type = KD_DATA_F32;
    ds->pixels = malloc((size_t)n * (size_t)f * 4);
    ds->labels = malloc(sizeof(int32_t) * (size_t)n);
    if (!ds->pixels || !ds->labels) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", t->path);
    char col[120];
    for (int i = 0; i < n; i++) {
        int r = i + L->header, line = t->row_line[r];
        if (row_len(t, r) != L->cols)
            return kd_error_set(err, KD_STATUS_BAD_FILE, "%s:%d: %d columns, the %s has %d (a ragged row)", t->path, line,
                                row_len(t, r), L->sklearn ? "second row" : "first row", L->cols);
        float *x = (float *)(void *)(ds->pixels + (size_t)i * (size_t)f * 4);
        for (int c = 0, j = 0; c < L->cols; c++) {
            const char *s = cell_at(t, r, c);
            if (c == L->label) {
                long v;
                if (!names) {
                    if (!parse_label(s, &v) || (L->sklearn && v >= ds->n_classes)) {
                        column_name(col, sizeof col, t, L, c);
                        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s:%d: %s: label '%.40s' is not a class (0 .. %d)",
                                            t->path, line, col, s, ds->n_classes - 1);
                    }
                    ds->labels[i] = (int32_t)v;
                } else {
                    const char *why = kd_class_name_problem(s);
                    if (why) {
                        column_name(col, sizeof col, t, L, c);
                        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s:%d: %s: the label (a class name) %s", t->path,
                                            line, col, why);
                    }
                    char **hit = bsearch(&s, names, (size_t)n_names, sizeof *names, cmp_str);
                    ds->labels[i] = (int32_t)(hit - names);
                }
                continue;
            }
            double v;
            const char *why = NULL;
            const char *q = s;
            while (*q == ' ') q++;
            if (!*q) why = "a missing value";
            else if (!parse_number(s, &v)) why = "not a number";
            else if (!isfinite((float)v)) why = "NaN or inf (or beyond float32)";
            if (why) {
                column_name(col, sizeof col, t, L, c);
                return kd_error_set(err, KD_STATUS_BAD_FILE, "%s:%d: %s: %s%s%.40s%s", t->path, line, col, why,
                                    *q ? " '" : "", s, *q ? "'" : "");
            }
            x[j++] = (float)v;
        }
    }
    return KD_STATUS_OK;
}

kd_status kd_dataset_load_csv(kd_dataset *ds, const char *spec, const char *split, const kd_data_opts *opts,
                              kd_error *err) {
    memset(ds, 0, sizeof *ds);
    kd_data_opts def = kd_data_opts_default();
    if (!opts) opts = &def;
    char path[2][1024];
    const char *comma = strchr(spec, ',');
    int nt = comma ? 2 : 1, test = !strcmp(split, "test");
    if (comma && strchr(comma + 1, ','))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: a table is FILE or TRAIN,TEST", spec);
    snprintf(path[0], sizeof path[0], "%.*s", comma ? (int)(comma - spec) : (int)strlen(spec), spec);
    if (comma) snprintf(path[1], sizeof path[1], "%s", comma + 1);
    csv_table t[2];
    csv_layout L[2];
    memset(t, 0, sizeof t);
    char **names = NULL;
    int n_names = 0;
    kd_status st = KD_STATUS_OK;
    for (int k = 0; !st && k < nt; k++) {
        st = table_read(&t[k], path[k], opts->max_bytes, err);
        if (!st) st = find_layout(&t[k], opts, &L[k], err);
    }
    if (!st && nt == 2 && (L[0].cols != L[1].cols || L[0].label != L[1].label || L[0].sklearn != L[1].sklearn))
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s has %d columns (label: column %d), %s has %d (label: column %d): "
                          "train and test must have the same", path[0], L[0].cols, L[0].label + 1, path[1], L[1].cols,
                          L[1].label + 1);
    if (!st) st = find_classes(t, nt, L, &ds->n_classes, &names, &n_names, err);
    int k = nt == 2 ? test : 0;
    if (!st && L[k].sklearn) { /* the class names of row 0: as many as the classes */
        ds->n_classes = row_len(&t[k], 0) - 2;
        if (ds->n_classes < 1)
            st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s:%d: no class names after N,F", path[k], t[k].row_line[0]);
    }
    if (!st) st = table_samples(ds, &t[k], &L[k], names, n_names, spec, opts->max_bytes, err);
    if (!st && L[k].sklearn) st = kd_dataset_set_class_names(ds, (const char *const *)&t[k].cell[2], ds->n_classes, err);
    if (!st && names) st = kd_dataset_set_class_names(ds, (const char *const *)names, n_names, err);
    if (st && err && !strncmp(err->msg, "class name", 10)) { /* say which file the long label is in */
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err->msg);
        kd_error_set(err, st, "%s: label column: %s", spec, m);
    }
    snprintf(ds->labels_path, sizeof ds->labels_path, "%.255s", path[k]);
    if (!st && nt == 1) /* one file: this split's share, stratified and seeded */
        st = kd_dataset_take_split(ds, opts, split, err);
    free(names);
    table_free(&t[0]);
    table_free(&t[1]);
    if (st) {
        kd_dataset_free(ds);
        memset(ds, 0, sizeof *ds);
    }
    return st;
}
