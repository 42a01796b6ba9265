/* Bounded YAML loading (include/distill/yaml_doc.h): a first pass over libyaml's events checks
 * depth and node count and stops at the first excess, so a hostile file costs at most
 * KD_YAML_MAX_DEPTH levels and KD_YAML_MAX_NODES nodes of work; only then does libyaml build the
 * document. Every YAML reader of the tree goes through here. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distill/fileio.h"
#include "distill/yaml_doc.h"

/* libyaml's error as "SOURCE: YAML error at line L, column C: PROBLEM". Reader (encoding) errors
 * carry a byte offset instead of a mark: the line and column are counted from the text. */
static kd_status yaml_fail(const yaml_parser_t *p, const char *text, size_t len, const char *source, kd_error *err) {
    size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
    if (p->error == YAML_READER_ERROR) {
        size_t end = p->problem_offset < len ? p->problem_offset : len;
        line = col = 1;
        for (size_t i = 0; i < end; i++) {
            if (text[i] == '\n') line++, col = 1;
            else col++;
        }
    }
    if (p->error == YAML_MEMORY_ERROR)
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory parsing YAML", source);
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_READER_ERROR && p->problem_value >= 0)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: YAML error at line %zu, column %zu: %s (byte 0x%02x)",
                            source, line, col, problem, (unsigned)p->problem_value & 0xffu);
    if (p->context)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: YAML error at line %zu, column %zu: %s %s", source, line,
                            col, problem, p->context);
    return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: YAML error at line %zu, column %zu: %s", source, line, col,
                        problem);
}

/* The bounds, on events only (no tree is built). */
static kd_status check_bounds(const char *text, size_t len, const char *source, kd_error *err) {
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", source);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    kd_status st = KD_STATUS_OK;
    long nodes = 0;
    int depth = 0;
    for (int done = 0; !done && !st;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            st = yaml_fail(&parser, text, len, source, err);
            break;
        }
        size_t line = ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            nodes++;
            if (++depth > KD_YAML_MAX_DEPTH)
                st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s:%zu: nested deeper than %d levels", source, line,
                                  KD_YAML_MAX_DEPTH);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: depth--; break;
        case YAML_SCALAR_EVENT:
        case YAML_ALIAS_EVENT: nodes++; break;
        case YAML_DOCUMENT_END_EVENT: /* yaml_parser_load reads the first document only */
        case YAML_STREAM_END_EVENT: done = 1; break;
        default: break;
        }
        if (!st && nodes > KD_YAML_MAX_NODES)
            st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s:%zu: more than %d YAML nodes (values, keys, lists)", source,
                              line, KD_YAML_MAX_NODES);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return st;
}

kd_status kd_yaml_load(yaml_document_t *doc, const char *text, size_t len, const char *source, kd_error *err) {
    memset(doc, 0, sizeof *doc);
    if (!source) source = "<yaml>";
    if (len > KD_YAML_MAX_BYTES)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: %zu bytes, more than a YAML file may have (%d)", source, len,
                            KD_YAML_MAX_BYTES);
    kd_status st = check_bounds(text, len, source, err);
    if (st) return st;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", source);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, doc)) {
        st = yaml_fail(&parser, text, len, source, err);
        memset(doc, 0, sizeof *doc);
    }
    yaml_parser_delete(&parser);
    return st;
}

kd_status kd_yaml_read_file(const char *path, char **text, size_t *len, kd_error *err) {
    return kd_read_file_max(path, KD_YAML_MAX_BYTES, "a YAML file", text, len, err);
}
