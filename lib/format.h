#ifndef MG_FORMAT_H
#define MG_FORMAT_H

#include <json-c/json.h>
#include <stdio.h>

#include "err.h"
#include "report.h"

/* The report objects (report.h) as people and programs read them: an
 * aligned table with a totals line, the object itself as JSON, CSV, or
 * one JSON object per line.  Text that came from clients (model names,
 * key names) is shown as data: control characters never reach a
 * terminal, and a CSV cell never starts a formula.  Called by cli.c. */

enum mg_format {
	MG_FORMAT_TABLE,
	MG_FORMAT_JSON,      /* the object, as every face returns it */
	MG_FORMAT_CSV,       /* a header, then one line per row of data */
	MG_FORMAT_NDJSON     /* one row of data per line */
};

/* The format named name ("table", "json", "csv", "ndjson").  0, or -1
 * for another name. */
int mg_format_parse(const char *name, enum mg_format *f) __attribute__((warn_unused_result));

/* Writes the object o of report r to out in format f.  MG_ERR_IO when
 * writing failed. */
enum mg_err mg_format_report(FILE *out, enum mg_report r, json_object *o, enum mg_format f)
	__attribute__((warn_unused_result));
/* The same into memory: *text (malloc'd, NUL-terminated, *len bytes; the
 * caller frees it), NULL on failure. */
enum mg_err mg_format_report_text(enum mg_report r, json_object *o, enum mg_format f,
    char **text, size_t *len) __attribute__((warn_unused_result));

#endif
