/* test_report.c -- The query layer's C side: which fields each report
 * takes, the parameters of its call, the refusals made before any SQL,
 * SQLSTATEs as errors, and the answer read as a JSON object. */
#include "config.h"

#include <check.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "err.h"
#include "report.h"
#include "unit.h"

#define SLOT(f) offsetof(struct mg_report_query, f)

/* Each field name, the member it names and whether usage, requests,
 * quota, reconcile, models and projects take it. */
static const struct {
	const char *name;
	size_t offset;           /* when some report takes it */
	int usage, requests, quota, reconcile, models, projects;
} fields[] = {
	{ "project", SLOT(project), 1, 1, 1, 0, 1, 0 },
	{ "key", SLOT(key), 1, 1, 0, 0, 0, 0 },
	{ "model", SLOT(model), 1, 1, 0, 0, 0, 0 },
	{ "since", SLOT(since), 1, 1, 0, 1, 0, 0 },
	{ "until", SLOT(until), 1, 1, 0, 1, 0, 0 },
	{ "tz", SLOT(tz), 1, 1, 0, 0, 0, 0 },
	{ "by", SLOT(by), 1, 0, 0, 0, 0, 0 },
	{ "status", SLOT(status), 0, 1, 0, 0, 0, 0 },
	{ "limit", SLOT(limit), 0, 1, 0, 0, 0, 0 },
	{ "cursor", SLOT(cursor), 0, 1, 0, 0, 0, 0 },
	/* names that are no field: prefixes, longer, case, empty */
	{ "b", 0, 0, 0, 0, 0, 0, 0 },
	{ "bye", 0, 0, 0, 0, 0, 0, 0 },
	{ "proj", 0, 0, 0, 0, 0, 0, 0 },
	{ "projects", 0, 0, 0, 0, 0, 0, 0 },
	{ "Project", 0, 0, 0, 0, 0, 0, 0 },
	{ "limits", 0, 0, 0, 0, 0, 0, 0 },
	{ "", 0, 0, 0, 0, 0, 0, 0 },
	{ "group_by", 0, 0, 0, 0, 0, 0, 0 },
};

START_TEST(field_table)
{
	const int takes[MG_REPORT__COUNT] = { fields[_i].usage, fields[_i].requests,
		fields[_i].quota, fields[_i].reconcile, fields[_i].models, fields[_i].projects };
	struct mg_report_query q;
	int r;

	memset(&q, 0, sizeof(q));
	for (r = 0; r < MG_REPORT__COUNT; r++) {
		const char **got = mg_report_field(&q, (enum mg_report)r, fields[_i].name,
		    strlen(fields[_i].name));

		if (takes[r])
			ck_assert_msg((char *)got == (char *)&q + fields[_i].offset,
			    "%s in report %d", fields[_i].name, r);
		else
			ck_assert_msg(got == NULL, "%s in report %d", fields[_i].name, r);
	}
}
END_TEST

/* The name is the n bytes given, not the string: how /v1/usage and the
 * CLI pass "by=..." and "--by=...". */
START_TEST(field_by_length)
{
	struct mg_report_query q;

	memset(&q, 0, sizeof(q));
	ck_assert_ptr_eq(mg_report_field(&q, MG_REPORT_USAGE, "by=model", 2), &q.by);
	ck_assert_ptr_null(mg_report_field(&q, MG_REPORT_USAGE, "by=model", 1));
	ck_assert_ptr_null(mg_report_field(&q, MG_REPORT_USAGE, "by=model", 3));
	ck_assert_ptr_eq(mg_report_field(&q, MG_REPORT_USAGE, "bye", 2), &q.by);
	ck_assert_ptr_eq(mg_report_field(&q, MG_REPORT_REQUESTS, "limits", 5), &q.limit);
	ck_assert_ptr_null(mg_report_field(&q, MG_REPORT_USAGE, "by", 0));
	/* "b" then its terminating NUL is not "by" */
	ck_assert_ptr_null(mg_report_field(&q, MG_REPORT_USAGE, "b", 2));
	ck_assert_ptr_null(mg_report_field(&q, MG_REPORT_USAGE, "by", 3));
}
END_TEST

/* The fields of q set through mg_report_field, as the faces do. */
static void
set_field(struct mg_report_query *q, enum mg_report r, const char *name, const char *v)
{
	const char **slot = mg_report_field(q, r, name, strlen(name));

	ck_assert_msg(slot != NULL, "report %d takes no %s", (int)r, name);
	*slot = v;
}

/* The conf fields a report reads, the rest zero. */
static void
conf_init(struct mg_conf *conf)
{
	static char tz[] = "Europe/Paris";

	memset(conf, 0, sizeof(*conf));
	conf->report_tz = tz;
	conf->report_max_days = 400;
}

/* call->params[i] is want (NULL: is NULL). */
static void
assert_param(const struct mg_report_call *call, int i, const char *want)
{
	if (want == NULL)
		ck_assert_msg(call->params[i] == NULL, "param %d: \"%s\", want NULL", i + 1,
		    call->params[i]);
	else
		ck_assert_msg(call->params[i] != NULL && strcmp(call->params[i], want) == 0,
		    "param %d: \"%s\", want \"%s\"", i + 1,
		    call->params[i] != NULL ? call->params[i] : "(null)", want);
}

START_TEST(prepare_usage)
{
	struct mg_report_query q;
	struct mg_report_call call;
	struct mg_conf conf;
	char err[256] = "";
	int i;

	conf_init(&conf);
	memset(&q, 0, sizeof(q));
	set_field(&q, MG_REPORT_USAGE, "project", "acme");
	set_field(&q, MG_REPORT_USAGE, "key", "mg_abc");
	set_field(&q, MG_REPORT_USAGE, "model", "openai/gpt-4o-mini");
	set_field(&q, MG_REPORT_USAGE, "since", "7d");
	set_field(&q, MG_REPORT_USAGE, "until", "today");
	set_field(&q, MG_REPORT_USAGE, "tz", "Asia/Kolkata");
	set_field(&q, MG_REPORT_USAGE, "by", "model,status");
	ck_assert_int_eq(mg_report_prepare(MG_REPORT_USAGE, &q, &conf, &call, err, sizeof(err)),
	    MG_OK);
	ck_assert_str_eq(call.name, "mg_usage_report");
	ck_assert_ptr_nonnull(strstr(call.sql, "mg_usage_report("));
	ck_assert_int_eq(call.nparams, 8);
	assert_param(&call, 0, "acme");
	assert_param(&call, 1, "mg_abc");
	assert_param(&call, 2, "openai/gpt-4o-mini");
	assert_param(&call, 3, "7d");
	assert_param(&call, 4, "today");
	assert_param(&call, 5, "Asia/Kolkata");
	assert_param(&call, 6, "model,status");
	assert_param(&call, 7, "400");
	ck_assert_ptr_eq(call.params[7], call.max_days);
	for (i = call.nparams; i < MG_REPORT_MAX_PARAMS; i++)
		assert_param(&call, i, NULL);
}
END_TEST

START_TEST(prepare_usage_defaults)
{
	struct mg_report_query q;
	struct mg_report_call call;
	struct mg_conf conf;
	char err[256] = "";
	int i;

	conf_init(&conf);
	conf.report_max_days = 31;
	memset(&q, 0, sizeof(q));
	ck_assert_int_eq(mg_report_prepare(MG_REPORT_USAGE, &q, &conf, &call, err, sizeof(err)),
	    MG_OK);
	for (i = 0; i < 5; i++)
		assert_param(&call, i, NULL);
	/* the configured time zone, not NULL (which the SQL reads as UTC) */
	assert_param(&call, 5, "Europe/Paris");
	assert_param(&call, 6, NULL);
	assert_param(&call, 7, "31");
}
END_TEST

/* by "" (--by= or by=) is no grouping, as if not given: string_to_array
 * would make it {""}. */
START_TEST(prepare_usage_by_empty)
{
	struct mg_report_query q;
	struct mg_report_call call;
	struct mg_conf conf;
	char err[256] = "";

	conf_init(&conf);
	memset(&q, 0, sizeof(q));
	q.by = "";
	ck_assert_int_eq(mg_report_prepare(MG_REPORT_USAGE, &q, &conf, &call, err, sizeof(err)),
	    MG_OK);
	assert_param(&call, 6, NULL);
}
END_TEST

START_TEST(prepare_requests)
{
	struct mg_report_query q;
	struct mg_report_call call;
	struct mg_conf conf;
	char err[256] = "";

	conf_init(&conf);
	memset(&q, 0, sizeof(q));
	set_field(&q, MG_REPORT_REQUESTS, "project", "acme");
	set_field(&q, MG_REPORT_REQUESTS, "key", "mg_abc");
	set_field(&q, MG_REPORT_REQUESTS, "model", "mock/echo");
	set_field(&q, MG_REPORT_REQUESTS, "status", "4xx");
	set_field(&q, MG_REPORT_REQUESTS, "since", "2026-11-05");
	set_field(&q, MG_REPORT_REQUESTS, "until", "2026-11-06T12:00Z");
	set_field(&q, MG_REPORT_REQUESTS, "tz", "UTC");
	set_field(&q, MG_REPORT_REQUESTS, "limit", "1000");
	set_field(&q, MG_REPORT_REQUESTS, "cursor", "c1700000000000000_42");
	ck_assert_int_eq(mg_report_prepare(MG_REPORT_REQUESTS, &q, &conf, &call, err,
	    sizeof(err)), MG_OK);
	ck_assert_str_eq(call.name, "mg_usage_requests");
	ck_assert_ptr_nonnull(strstr(call.sql, "mg_usage_requests("));
	ck_assert_int_eq(call.nparams, 10);
	assert_param(&call, 0, "acme");
	assert_param(&call, 1, "mg_abc");
	assert_param(&call, 2, "mock/echo");
	assert_param(&call, 3, "4xx");
	assert_param(&call, 4, "2026-11-05");
	assert_param(&call, 5, "2026-11-06T12:00Z");
	assert_param(&call, 6, "UTC");
	assert_param(&call, 7, "1000");
	assert_param(&call, 8, "c1700000000000000_42");
	assert_param(&call, 9, "400");
	ck_assert_ptr_eq(call.params[7], call.limit);
	ck_assert_ptr_eq(call.params[9], call.max_days);
}
END_TEST

START_TEST(prepare_requests_defaults)
{
	struct mg_report_query q;
	struct mg_report_call call;
	struct mg_conf conf;
	char err[256] = "";
	int i;

	conf_init(&conf);
	memset(&q, 0, sizeof(q));
	ck_assert_int_eq(mg_report_prepare(MG_REPORT_REQUESTS, &q, &conf, &call, err,
	    sizeof(err)), MG_OK);
	for (i = 0; i < 6; i++)
		assert_param(&call, i, NULL);
	assert_param(&call, 6, "Europe/Paris");
	assert_param(&call, 7, "50");
	assert_param(&call, 8, NULL);
	assert_param(&call, 9, "400");
}
END_TEST

START_TEST(prepare_quota)
{
	struct mg_report_query q;
	struct mg_report_call call;
	struct mg_conf conf;
	char err[256] = "";
	int i;

	conf_init(&conf);
	memset(&q, 0, sizeof(q));
	set_field(&q, MG_REPORT_QUOTA, "project", "acme");
	ck_assert_int_eq(mg_report_prepare(MG_REPORT_QUOTA, &q, &conf, &call, err, sizeof(err)),
	    MG_OK);
	ck_assert_str_eq(call.name, "mg_usage_quota");
	ck_assert_str_eq(call.sql, "SELECT mg_usage_quota($1)");
	ck_assert_int_eq(call.nparams, 1);
	assert_param(&call, 0, "acme");
	for (i = 1; i < MG_REPORT_MAX_PARAMS; i++)
		assert_param(&call, i, NULL);

	/* the reconciliation: its period, in UTC days, and the longest */
	memset(&q, 0, sizeof(q));
	set_field(&q, MG_REPORT_RECONCILE, "since", "7d");
	set_field(&q, MG_REPORT_RECONCILE, "until", "today");
	ck_assert_ptr_null(mg_report_field(&q, MG_REPORT_RECONCILE, "project", 7));
	ck_assert_int_eq(mg_report_prepare(MG_REPORT_RECONCILE, &q, &conf, &call, err,
	    sizeof(err)), MG_OK);
	ck_assert_str_eq(call.sql, "SELECT mg_recon_report($1, $2, $3::integer)");
	ck_assert_int_eq(call.nparams, 3);
	assert_param(&call, 0, "7d");
	assert_param(&call, 1, "today");
	assert_param(&call, 2, "400");
	for (i = 3; i < MG_REPORT_MAX_PARAMS; i++)
		assert_param(&call, i, NULL);
}
END_TEST

START_TEST(sql_of_reports)
{
	const char *name = NULL;
	int n = 0;

	ck_assert_ptr_nonnull(mg_report_sql(MG_REPORT_USAGE, &name, &n));
	ck_assert_str_eq(name, "mg_usage_report");
	ck_assert_int_eq(n, 8);
	ck_assert_ptr_nonnull(mg_report_sql(MG_REPORT_REQUESTS, &name, &n));
	ck_assert_str_eq(name, "mg_usage_requests");
	ck_assert_int_eq(n, 10);
	ck_assert_str_eq(mg_report_sql(MG_REPORT_QUOTA, NULL, NULL), "SELECT mg_usage_quota($1)");
	ck_assert_ptr_null(mg_report_sql(MG_REPORT__COUNT, &name, &n));
}
END_TEST

/* Text refused before the call, with the field named in the message. */
static const struct {
	enum mg_report report;
	const char *field;
	const char *value;       /* NULL: 257 bytes of 'a' */
	const char *message;     /* a part of err */
} refusals[] = {
	{ MG_REPORT_USAGE, "project", NULL, "project is longer than 256 bytes" },
	{ MG_REPORT_USAGE, "model", NULL, "model is longer than 256 bytes" },
	{ MG_REPORT_REQUESTS, "cursor", NULL, "cursor is longer than 256 bytes" },
	{ MG_REPORT_QUOTA, "project", NULL, "project is longer than 256 bytes" },
	{ MG_REPORT_USAGE, "model", "gpt\n4o", "model holds a control character" },
	{ MG_REPORT_USAGE, "key", "mg_\x1b[31m", "key holds a control character" },
	{ MG_REPORT_USAGE, "tz", "UTC\r", "tz holds a control character" },
	{ MG_REPORT_USAGE, "by", "model,\tstatus", "by holds a control character" },
	{ MG_REPORT_REQUESTS, "status", "4xx\x7f", "status holds a control character" },
	{ MG_REPORT_REQUESTS, "since", "\x01today", "since holds a control character" },
	/* broken UTF-8 failed in Postgres (a 503) before */
	{ MG_REPORT_USAGE, "project", "a\xff", "project holds a control character or is not UTF-8" },
	{ MG_REPORT_USAGE, "model", "a\xc0\xaf", "model holds a control character or is not UTF-8" },
	{ MG_REPORT_QUOTA, "project", "a\xc2\x9b", "project holds a control character or is not UTF-8" },
	{ MG_REPORT_REQUESTS, "limit", "", "limit must be a whole number" },
	{ MG_REPORT_REQUESTS, "limit", "0x5", "limit must be a whole number" },
	{ MG_REPORT_REQUESTS, "limit", "-1", "limit must be a whole number" },
	{ MG_REPORT_REQUESTS, "limit", "1e3", "limit must be a whole number" },
	{ MG_REPORT_REQUESTS, "limit", "1234567890", "limit must be a whole number" },
	{ MG_REPORT_REQUESTS, "limit", " 5", "limit must be a whole number" },
	{ MG_REPORT_REQUESTS, "limit", "5 ", "limit must be a whole number" },
	{ MG_REPORT_REQUESTS, "limit", "+5", "limit must be a whole number" },
	{ MG_REPORT_REQUESTS, "limit", "1.0", "limit must be a whole number" },
};

START_TEST(prepare_refusals)
{
	struct mg_report_query q;
	struct mg_report_call call;
	struct mg_conf conf;
	char err[256] = "";
	char *long_value = mg_unit_repeat('a', 257);
	const char *v = refusals[_i].value != NULL ? refusals[_i].value : long_value;

	conf_init(&conf);
	memset(&q, 0, sizeof(q));
	set_field(&q, refusals[_i].report, refusals[_i].field, v);
	ck_assert_int_eq(mg_report_prepare(refusals[_i].report, &q, &conf, &call, err,
	    sizeof(err)), MG_ERR_INVALID);
	ck_assert_msg(strstr(err, refusals[_i].message) != NULL, "%s: \"%s\"",
	    refusals[_i].field, err);
	free(long_value);
}
END_TEST

/* The longest a field may be, and the limits the SQL judges, pass. */
START_TEST(prepare_edges_taken)
{
	struct mg_report_query q;
	struct mg_report_call call;
	struct mg_conf conf;
	char err[256] = "";
	char *longest = mg_unit_repeat('a', 256);

	conf_init(&conf);
	memset(&q, 0, sizeof(q));
	q.model = longest;
	q.limit = "999999999";
	ck_assert_int_eq(mg_report_prepare(MG_REPORT_REQUESTS, &q, &conf, &call, err,
	    sizeof(err)), MG_OK);
	assert_param(&call, 2, longest);
	assert_param(&call, 7, "999999999");
	/* 0 and 1001 are the SQL's to refuse (limit must be ... 1 to 1000) */
	q.limit = "0";
	ck_assert_int_eq(mg_report_prepare(MG_REPORT_REQUESTS, &q, &conf, &call, err,
	    sizeof(err)), MG_OK);
	assert_param(&call, 7, "0");
	/* a UTF-8 model id is text, not control characters */
	q.model = "модель/ü";
	ck_assert_int_eq(mg_report_prepare(MG_REPORT_REQUESTS, &q, &conf, &call, err,
	    sizeof(err)), MG_OK);
	assert_param(&call, 2, "модель/ü");
	free(longest);
}
END_TEST

START_TEST(prepare_no_such_report)
{
	struct mg_report_query q;
	struct mg_report_call call;
	struct mg_conf conf;
	char err[256] = "";

	conf_init(&conf);
	memset(&q, 0, sizeof(q));
	ck_assert_int_eq(mg_report_prepare(MG_REPORT__COUNT, &q, &conf, &call, err, sizeof(err)),
	    MG_ERR_INVALID);
	ck_assert_str_eq(err, "no such report");
}
END_TEST

static const struct {
	const char *sqlstate;
	enum mg_err want;
} sqlstates[] = {
	{ "22023", MG_ERR_INVALID },   /* invalid_parameter_value */
	{ "22021", MG_ERR_INVALID },   /* character_not_in_repertoire */
	{ "22P02", MG_ERR_INVALID },   /* invalid_text_representation */
	{ "22P05", MG_ERR_INVALID },   /* untranslatable_character */
	{ "23505", MG_ERR_DB },        /* unique_violation */
	{ "57014", MG_ERR_DB },        /* query_canceled */
	{ "22", MG_ERR_DB },
	{ "220230", MG_ERR_DB },
	{ "22p02", MG_ERR_DB },
	{ "", MG_ERR_DB },
	{ NULL, MG_ERR_DB },           /* the connection failed */
};

START_TEST(sqlstate_table)
{
	ck_assert_msg(mg_report_sqlstate_err(sqlstates[_i].sqlstate) == sqlstates[_i].want,
	    "%s", sqlstates[_i].sqlstate != NULL ? sqlstates[_i].sqlstate : "NULL");
}
END_TEST

/* Query strings as /v1/usage reads them: decoded in place, each field
 * once; the reason and the parameter named when refused. */
static const struct {
	enum mg_report r;
	const char *text;
	int ok;
	const char *param;   /* the parameter named when refused, or NULL */
	const char *since, *by, *format;
} query_strings[] = {
	{ MG_REPORT_USAGE, "", 1, NULL, NULL, NULL, NULL },
	{ MG_REPORT_USAGE, "since=7d&by=model,day&format=csv", 1, NULL, "7d", "model,day", "csv" },
	{ MG_REPORT_USAGE, "&&since=2026-01-01T00%3A00Z&", 1, NULL, "2026-01-01T00:00Z", NULL, NULL },
	{ MG_REPORT_USAGE, "by=a+b", 1, NULL, NULL, "a b", NULL },
	{ MG_REPORT_USAGE, "since=1&since=2", 0, "since", NULL, NULL, NULL },
	{ MG_REPORT_USAGE, "since=", 0, "since", NULL, NULL, NULL },
	{ MG_REPORT_USAGE, "since", 0, "since", NULL, NULL, NULL },
	{ MG_REPORT_USAGE, "cursor=x", 0, NULL, NULL, NULL, NULL },  /* requests only */
	{ MG_REPORT_USAGE, "since=%zz", 0, NULL, NULL, NULL, NULL },
	{ MG_REPORT_USAGE, "since=a%00b", 0, NULL, NULL, NULL, NULL },
	{ MG_REPORT_QUOTA, "since=7d", 0, NULL, NULL, NULL, NULL },
};

START_TEST(query_string_table)
{
	char text[128], err[MG_ERR_DETAIL_LEN] = "";
	const char *format = NULL, *param = NULL;
	struct mg_report_query q;
	int rc;

	memset(&q, 0, sizeof(q));
	snprintf(text, sizeof(text), "%s", query_strings[_i].text);
	rc = mg_report_query_string(text, query_strings[_i].r, &q, &format, &param, err,
	    sizeof(err));
	ck_assert_msg((rc == 0) == query_strings[_i].ok, "'%s': %s", query_strings[_i].text, err);
	if (!query_strings[_i].ok) {
		ck_assert(err[0] != '\0');
		if (query_strings[_i].param == NULL)
			ck_assert_ptr_null(param);
		else
			ck_assert_str_eq(param, query_strings[_i].param);
		return;
	}
	ck_assert_pstr_eq(q.since, query_strings[_i].since);
	ck_assert_pstr_eq(q.by, query_strings[_i].by);
	ck_assert_pstr_eq(format, query_strings[_i].format);
}
END_TEST

START_TEST(parse_object)
{
	json_object *o = NULL, *v;
	char err[256] = "";

	ck_assert_int_eq(mg_report_parse("{\"object\": \"usage\", \"data\": [{\"requests\": 2}]}",
	    &o, err, sizeof(err)), MG_OK);
	ck_assert_ptr_nonnull(o);
	ck_assert(json_object_object_get_ex(o, "object", &v));
	ck_assert_str_eq(json_object_get_string(v), "usage");
	json_object_put(o);
	ck_assert_int_eq(mg_report_parse("{}", &o, err, sizeof(err)), MG_OK);
	ck_assert_int_eq(json_object_object_length(o), 0);
	json_object_put(o);
}
END_TEST

/* Not an object: refused, *out NULL, nothing left allocated (valgrind). */
static const char *const not_objects[] = {
	"[{\"object\": \"usage\"}]",
	"\"usage\"",
	"42",
	"null",
	"true",
	"{\"object\": \"usage\", \"data\": [",
	"{\"object\"",
	"{",
	"",
	" ",
	"}",
	"{} x",
	"{}{}",
};

START_TEST(parse_not_object)
{
	/* not NULL, to see that a refusal sets it */
	json_object *o = (json_object *)&o;
	char err[256] = "";

	ck_assert_int_eq(mg_report_parse(not_objects[_i], &o, err, sizeof(err)), MG_ERR_DB);
	ck_assert_ptr_null(o);
	ck_assert_ptr_nonnull(strstr(err, "not a JSON object"));
}
END_TEST

static Suite *
report_suite(void)
{
	Suite *s = suite_create("report");
	TCase *tc = tcase_create("report");

	tcase_add_loop_test(tc, field_table, 0, (int)(sizeof(fields) / sizeof(fields[0])));
	tcase_add_test(tc, field_by_length);
	tcase_add_loop_test(tc, query_string_table, 0,
	    (int)(sizeof(query_strings) / sizeof(query_strings[0])));
	tcase_add_test(tc, prepare_usage);
	tcase_add_test(tc, prepare_usage_defaults);
	tcase_add_test(tc, prepare_usage_by_empty);
	tcase_add_test(tc, prepare_requests);
	tcase_add_test(tc, prepare_requests_defaults);
	tcase_add_test(tc, prepare_quota);
	tcase_add_test(tc, sql_of_reports);
	tcase_add_loop_test(tc, prepare_refusals, 0, (int)(sizeof(refusals) / sizeof(refusals[0])));
	tcase_add_test(tc, prepare_edges_taken);
	tcase_add_test(tc, prepare_no_such_report);
	tcase_add_loop_test(tc, sqlstate_table, 0, (int)(sizeof(sqlstates) / sizeof(sqlstates[0])));
	tcase_add_test(tc, parse_object);
	tcase_add_loop_test(tc, parse_not_object, 0,
	    (int)(sizeof(not_objects) / sizeof(not_objects[0])));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(report_suite());
}
