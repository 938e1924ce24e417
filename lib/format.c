/* format.c -- Report objects as output: aligned tables with a totals line,
 * JSON, CSV and NDJSON, with client text kept as data.  Called by cli.c
 * for `modelgate usage`, `requests`, `quota`, `reconcile`, `catalog` and
 * `projects`, and by mcp.c for the text of a tool's answer. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "format.h"

/* A column: its heading in a table, the member it shows ("a.b": member b
 * of member a), whether it is a number (aligned right). */
struct col {
	const char *head;
	const char *path;
	int number;
};

static const struct col usage_cols[] = {
	{ "requests", "requests", 1 },
	{ "errors", "errors", 1 },
	{ "prompt", "prompt_tokens", 1 },
	{ "completion", "completion_tokens", 1 },
	{ "tokens", "total_tokens", 1 },
	{ "cost_usd", "cost", 1 },
	{ "avg_ms", "latency_ms.avg", 1 },
	{ "p50_ms", "latency_ms.p50", 1 },
	{ "p95_ms", "latency_ms.p95", 1 },
	{ "ttft_p50", "ttft_ms.p50", 1 },
	{ "ttft_p95", "ttft_ms.p95", 1 },
};

static const struct col request_cols[] = {
	{ "created_at", "created_at", 0 },
	{ "id", "id", 0 },
	{ "project", "project", 0 },
	{ "key", "key", 0 },
	{ "model", "model", 0 },
	{ "endpoint", "endpoint", 0 },
	{ "stream", "stream", 0 },
	{ "status", "status", 1 },
	{ "pending", "pending", 0 },
	{ "error", "error_type", 0 },
	{ "prompt", "prompt_tokens", 1 },
	{ "completion", "completion_tokens", 1 },
	{ "tokens", "total_tokens", 1 },
	{ "cost_usd", "cost", 1 },
	{ "cost_source", "cost_source", 0 },
	{ "ms", "latency_ms", 1 },
	{ "ttft_ms", "ttft_ms", 1 },
};

static const struct col quota_cols[] = {
	{ "project", "project", 0 },
	{ "period", "period.kind", 0 },
	{ "start", "period.start", 0 },
	{ "end", "period.end", 0 },
	{ "spend_cap", "spend_cap", 1 },
	{ "spent", "spent", 1 },
	{ "reserved", "reserved", 1 },
	{ "remaining", "remaining", 1 },
	{ "rpm", "rpm.limit", 1 },
	{ "rpm_left", "rpm.remaining", 1 },
	{ "tpm", "tpm.limit", 1 },
	{ "tpm_left", "tpm.remaining", 1 },
};

static const struct col model_cols[] = {
	{ "id", "id", 0 },
	{ "provider", "provider", 0 },
	{ "kind", "kind", 0 },
	{ "context", "context_length", 1 },
	{ "prompt_per_1M", "prompt_per_million", 1 },
	{ "completion_per_1M", "completion_per_million", 1 },
	{ "synced_at", "synced_at", 0 },
};

static const struct col project_cols[] = {
	{ "project", "project", 0 },
	{ "created_at", "created_at", 0 },
	{ "keys", "keys", 1 },
	{ "spend_cap", "spend_cap", 1 },
	{ "period", "period", 0 },
	{ "rpm", "rpm", 1 },
	{ "tpm", "tpm", 1 },
	{ "models", "models", 0 },
};

static const struct col recon_cols[] = {
	{ "day", "day", 0 },
	{ "model", "model", 0 },
	{ "requests", "requests", 1 },
	{ "recorded", "recorded", 1 },
	{ "adjustments", "adjustments", 1 },
	{ "charged", "charged", 1 },
	{ "upstream", "upstream", 1 },
	{ "difference", "difference", 1 },
	{ "confirmed", "states.confirmed", 1 },
	{ "adjusted", "states.adjusted", 1 },
	{ "recorded_n", "states.recorded", 1 },
	{ "missing", "states.missing_upstream", 1 },
	{ "no_id", "states.no_id", 1 },
	{ "unsupported", "states.unsupported", 1 },
};

#define NCOLS(a) (sizeof(a) / sizeof(a[0]))
/* the most columns a report has: its dimensions, then its own */
#define MAX_COLS 24

int
mg_format_parse(const char *name, enum mg_format *f)
{
	static const char *const names[] = { "table", "json", "csv", "ndjson" };
	size_t i;

	for (i = 0; name != NULL && i < NCOLS(names); i++) {
		if (strcmp(name, names[i]) == 0) {
			*f = (enum mg_format)i;
			return 0;
		}
	}
	return -1;
}

/* Member path of o ("a.b"), or NULL. */
static json_object *
member(json_object *o, const char *path)
{
	char name[64];
	const char *dot;

	while (o != NULL && (dot = strchr(path, '.')) != NULL) {
		size_t n = (size_t)(dot - path);

		if (n >= sizeof(name))
			return NULL;
		memcpy(name, path, n);
		name[n] = '\0';
		if (!json_object_object_get_ex(o, name, &o))
			return NULL;
		path = dot + 1;
	}
	if (o == NULL || !json_object_object_get_ex(o, path, &o))
		return NULL;
	return o;
}

/* The text of a value: NULL for null or missing. */
static const char *
value_text(json_object *v)
{
	if (v == NULL || json_object_is_type(v, json_type_null))
		return NULL;
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

/* The display width of UTF-8 text (code points; bytes when not UTF-8). */
static size_t
width(const char *s)
{
	size_t w = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			w++;
	return w;
}

/* Writes s for a terminal: control characters become '?', one for each,
 * so the cell keeps the width counted.  The C1 controls U+0080 to U+009F
 * too: in UTF-8 (C2 80 to C2 9F) terminals such as xterm and VTE obey
 * them, U+009B as CSI like ESC [. */
static void
put_cell(FILE *out, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == 0xC2 && (unsigned char)s[1] >= 0x80 && (unsigned char)s[1] <= 0x9F) {
			fputc('?', out);
			s++;
		} else {
			fputc(c < 0x20 || c == 0x7f ? '?' : c, out);
		}
	}
}

/* Writes a CSV cell: quoted when it must be; text from the JSON strings
 * that could start a spreadsheet formula gets a leading apostrophe. */
static void
put_csv(FILE *out, json_object *v)
{
	const char *s = value_text(v);
	int formula;

	if (s == NULL)
		return;
	formula = json_object_is_type(v, json_type_string) && strchr("=+-@\t\r", s[0]) != NULL &&
	    s[0] != '\0';
	if (!formula && strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	if (formula)
		fputc('\'', out);
	for (; *s != '\0'; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

/* The columns of report r for object o: a usage report's dimensions come
 * first.  Returns how many. */
static size_t
columns(enum mg_report r, json_object *o, struct col *cols)
{
	const struct col *own;
	size_t n = 0, nown, i;
	json_object *by;

	switch (r) {
	case MG_REPORT_USAGE:
		own = usage_cols;
		nown = NCOLS(usage_cols);
		if (json_object_object_get_ex(o, "group_by", &by) &&
		    json_object_is_type(by, json_type_array)) {
			for (i = 0; i < json_object_array_length(by) && n < MAX_COLS - nown; i++) {
				const char *d = json_object_get_string(json_object_array_get_idx(by, i));

				cols[n].head = d;
				cols[n].path = d;
				cols[n].number = 0;
				n++;
				if (d != NULL && strcmp(d, "key") == 0 && n < MAX_COLS - nown) {
					cols[n].head = "key_name";
					cols[n].path = "key_name";
					cols[n].number = 0;
					n++;
				}
			}
		}
		break;
	case MG_REPORT_REQUESTS:
		own = request_cols;
		nown = NCOLS(request_cols);
		break;
	case MG_REPORT_RECONCILE:
		own = recon_cols;
		nown = NCOLS(recon_cols);
		/* the totals line stands in the first two */
		n = 0;
		break;
	case MG_REPORT_MODELS:
		own = model_cols;
		nown = NCOLS(model_cols);
		break;
	case MG_REPORT_PROJECTS:
		own = project_cols;
		nown = NCOLS(project_cols);
		break;
	default:
		own = quota_cols;
		nown = NCOLS(quota_cols);
		break;
	}
	for (i = 0; i < nown; i++)
		cols[n++] = own[i];
	return n;
}

/* The rows a table shows: data, then (usage) the totals. */
static json_object *
data_of(json_object *o)
{
	json_object *d;

	if (!json_object_object_get_ex(o, "data", &d) || !json_object_is_type(d, json_type_array))
		return NULL;
	return d;
}

static void
print_table(FILE *out, enum mg_report r, json_object *o)
{
	struct col cols[MAX_COLS];
	size_t ncols = columns(r, o, cols), ndims = 0, nrows, i, j;
	json_object *data = data_of(o), *totals = NULL, *v;
	size_t w[MAX_COLS];
	int with_totals = 0;

	if (r == MG_REPORT_USAGE) {
		ndims = ncols - NCOLS(usage_cols);
		with_totals = json_object_object_get_ex(o, "totals", &totals);
	} else if (r == MG_REPORT_RECONCILE) {
		ndims = 2;
		with_totals = json_object_object_get_ex(o, "totals", &totals);
	}
	if (r != MG_REPORT_QUOTA && json_object_object_get_ex(o, "period", &v)) {
		const char *since = value_text(member(v, "since"));

		fprintf(out, "%s %s%s to %s (%s)\n", r == MG_REPORT_USAGE ? "usage" :
		    r == MG_REPORT_RECONCILE ? "reconciliation" : "requests",
		    since != NULL ? "from " : "", since != NULL ? since : "up", value_text(member(v,
		    "until")), value_text(member(o, "timezone")));
	}
	nrows = data != NULL ? json_object_array_length(data) : 0;
	/* with no dimension the one row is the totals line */
	if (r == MG_REPORT_USAGE && ndims == 0)
		nrows = 0;
	for (j = 0; j < ncols; j++)
		w[j] = width(cols[j].head);
	for (i = 0; i < nrows + (size_t)with_totals; i++) {
		json_object *row = i < nrows ? json_object_array_get_idx(data, i) : totals;

		for (j = 0; j < ncols; j++) {
			const char *s = j < ndims && row == totals ? (j == 0 ? "total" : "")
			    : value_text(member(row, cols[j].path));
			size_t cw = width(s != NULL ? s : "-");

			if (cw > w[j])
				w[j] = cw;
		}
	}
	for (j = 0; j < ncols; j++)
		fprintf(out, cols[j].number ? "%s%*s" : "%s%-*s", j > 0 ? "  " : "",
		    j + 1 < ncols || cols[j].number ? (int)w[j] : 0, cols[j].head);
	fputc('\n', out);
	for (i = 0; i < nrows + (size_t)with_totals; i++) {
		json_object *row = i < nrows ? json_object_array_get_idx(data, i) : totals;

		for (j = 0; j < ncols; j++) {
			const char *s = j < ndims && row == totals ? (j == 0 ? "total" : "")
			    : value_text(member(row, cols[j].path));
			size_t pad;

			if (s == NULL)
				s = "-";
			pad = w[j] > width(s) ? w[j] - width(s) : 0;
			if (j > 0)
				fputs("  ", out);
			if (cols[j].number)
				fprintf(out, "%*s", (int)pad, "");
			put_cell(out, s);
			if (!cols[j].number && j + 1 < ncols)
				fprintf(out, "%*s", (int)pad, "");
		}
		fputc('\n', out);
	}
	if (r == MG_REPORT_REQUESTS && json_object_object_get_ex(o, "next_cursor", &v) &&
	    value_text(v) != NULL)
		fprintf(out, "more: --cursor %s\n", value_text(v));
	if (r == MG_REPORT_RECONCILE) {
		json_object *un;

		const char *mark = value_text(member(o, "reconciled_through"));

		fprintf(out, "reconciled through %s\n", mark != NULL ? mark : "-");
		if (json_object_object_get_ex(o, "account", &un) &&
		    json_object_is_type(un, json_type_object)) {
			const char *day = value_text(member(un, "day"));
			const char *up = value_text(member(un, "upstream"));
			const char *ch = value_text(member(un, "charged"));
			const char *diff = value_text(member(un, "difference"));

			fprintf(out, "account (close of %s): the upstream billed %s in all, the "
			    "gateway charged %s: difference %s\n", day != NULL ? day : "-",
			    up != NULL ? up : "-", ch != NULL ? ch : "-", diff != NULL ? diff : "-");
		}
		if (json_object_object_get_ex(o, "unmatched", &un) &&
		    json_object_is_type(un, json_type_array)) {
			for (i = 0; i < json_object_array_length(un); i++) {
				json_object *u = json_object_array_get_idx(un, i);
				const char *g = value_text(member(u, "generation_id"));
				const char *id = value_text(member(u, "id"));
				const char *at = value_text(member(u, "created_at"));

				fputs("unmatched: ", out);
				put_cell(out, g != NULL ? g : "-");
				fputs(" (request ", out);
				put_cell(out, id != NULL ? id : "-");
				fputs(", ", out);
				put_cell(out, at != NULL ? at : "-");
				fputs(")\n", out);
			}
		}
	}
}

/* The CSV heading of a column: its member path, '.' as '_'. */
static void
put_head(FILE *out, const char *path)
{
	for (; *path != '\0'; path++)
		fputc(*path == '.' ? '_' : *path, out);
}

static void
print_csv(FILE *out, enum mg_report r, json_object *o)
{
	struct col cols[MAX_COLS];
	size_t ncols = columns(r, o, cols), i, j;
	json_object *data = data_of(o);

	for (j = 0; j < ncols; j++) {
		if (j > 0)
			fputc(',', out);
		put_head(out, cols[j].path);
	}
	fputs("\r\n", out);
	for (i = 0; data != NULL && i < json_object_array_length(data); i++) {
		json_object *row = json_object_array_get_idx(data, i);

		for (j = 0; j < ncols; j++) {
			if (j > 0)
				fputc(',', out);
			put_csv(out, member(row, cols[j].path));
		}
		fputs("\r\n", out);
	}
}

enum mg_err
mg_format_report(FILE *out, enum mg_report r, json_object *o, enum mg_format f)
{
	json_object *data = data_of(o);
	size_t i;

	switch (f) {
	case MG_FORMAT_JSON:
		fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
		    JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE), out);
		fputc('\n', out);
		break;
	case MG_FORMAT_NDJSON:
		for (i = 0; data != NULL && i < json_object_array_length(data); i++) {
			fputs(json_object_to_json_string_ext(json_object_array_get_idx(data, i),
			    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), out);
			fputc('\n', out);
		}
		break;
	case MG_FORMAT_CSV:
		print_csv(out, r, o);
		break;
	default:
		print_table(out, r, o);
		break;
	}
	return fflush(out) == 0 && !ferror(out) ? MG_OK : MG_ERR_IO;
}

enum mg_err
mg_format_report_text(enum mg_report r, json_object *o, enum mg_format f, char **text,
    size_t *len)
{
	FILE *out;
	enum mg_err rc;

	*text = NULL;
	*len = 0;
	out = open_memstream(text, len);
	if (out == NULL)
		return MG_ERR_NOMEM;
	rc = mg_format_report(out, r, o, f);
	if (fclose(out) != 0 && rc == MG_OK)
		rc = MG_ERR_NOMEM;
	if (rc != MG_OK) {
		free(*text);
		*text = NULL;
		*len = 0;
	}
	return rc;
}
