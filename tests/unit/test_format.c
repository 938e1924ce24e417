/* test_format.c -- Report objects as text: the exact table, CSV and NDJSON
 * of each report, client text kept as data, and the JSON that reads back
 * as the object. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "format.h"
#include "report.h"
#include "unit.h"

/* A usage report by model and status, as mg_usage_report returns it. */
static const char usage_by_model_status[] =
	"{\"object\": \"usage\", \"timezone\": \"Europe/Paris\","
	" \"period\": {\"since\": \"2026-11-01T00:00:00+01:00\","
	" \"until\": \"2026-11-05T14:30:00+01:00\"},"
	" \"group_by\": [\"model\", \"status\"],"
	" \"filters\": {\"project\": null, \"key\": null, \"model\": null},"
	" \"data\": ["
	"{\"model\": \"openai/gpt-4o-mini\", \"status\": \"2xx\", \"requests\": 12, \"errors\": 0,"
	" \"prompt_tokens\": 1200, \"completion_tokens\": 340, \"total_tokens\": 1540,"
	" \"cost\": \"0.00123\", \"latency_ms\": {\"avg\": 812, \"p50\": 750, \"p95\": 1500},"
	" \"ttft_ms\": {\"avg\": 210, \"p50\": 200, \"p95\": 400}},"
	" {\"model\": \"mock/echo\", \"status\": \"5xx\", \"requests\": 3, \"errors\": 3,"
	" \"prompt_tokens\": 0, \"completion_tokens\": 0, \"total_tokens\": 0, \"cost\": \"0\","
	" \"latency_ms\": {\"avg\": 20, \"p50\": 15, \"p95\": 40},"
	" \"ttft_ms\": {\"avg\": null, \"p50\": null, \"p95\": null}}],"
	" \"totals\": {\"requests\": 15, \"errors\": 3, \"prompt_tokens\": 1200,"
	" \"completion_tokens\": 340, \"total_tokens\": 1540, \"cost\": \"0.00123\","
	" \"latency_ms\": {\"avg\": 654, \"p50\": 700, \"p95\": 1500},"
	" \"ttft_ms\": {\"avg\": 210, \"p50\": 200, \"p95\": 400}}}";

/* With no group_by the one row of data is the totals. */
static const char usage_ungrouped[] =
	"{\"object\": \"usage\", \"timezone\": \"UTC\","
	" \"period\": {\"since\": \"2026-11-01T00:00:00Z\", \"until\": \"2026-11-05T13:45:00Z\"},"
	" \"group_by\": [], \"filters\": {\"project\": null, \"key\": null, \"model\": null},"
	" \"data\": [{\"requests\": 16, \"errors\": 3, \"prompt_tokens\": 1205,"
	" \"completion_tokens\": 347, \"total_tokens\": 1552, \"cost\": \"0.50123\","
	" \"latency_ms\": {\"avg\": 600, \"p50\": 700, \"p95\": 1500},"
	" \"ttft_ms\": {\"avg\": 190, \"p50\": 200, \"p95\": 400}}],"
	" \"totals\": {\"requests\": 16, \"errors\": 3, \"prompt_tokens\": 1205,"
	" \"completion_tokens\": 347, \"total_tokens\": 1552, \"cost\": \"0.50123\","
	" \"latency_ms\": {\"avg\": 600, \"p50\": 700, \"p95\": 1500},"
	" \"ttft_ms\": {\"avg\": 190, \"p50\": 200, \"p95\": 400}}}";

/* Model names a client chose: a terminal escape and a line feed, UTF-8
 * of two bytes a character, and the C1 control U+009B (CSI, which
 * terminals obey as ESC [).  The metrics left out show as "-". */
static const char usage_client_text[] =
	"{\"object\": \"usage\", \"timezone\": \"UTC\","
	" \"period\": {\"since\": \"2026-11-01T00:00:00Z\", \"until\": \"2026-11-02T00:00:00Z\"},"
	" \"group_by\": [\"model\", \"status\"],"
	" \"data\": [{\"model\": \"x\\u001b[31m\\ny\", \"status\": \"2xx\", \"requests\": 1},"
	" {\"model\": \"модель/ü\", \"status\": \"2xx\", \"requests\": 22},"
	" {\"model\": \"gpt-4o\", \"status\": \"4xx\", \"requests\": 333},"
	" {\"model\": \"a\\u009b31mb\", \"status\": \"5xx\", \"requests\": 4444}],"
	" \"totals\": {\"requests\": 4800}}";

/* The latest requests: one pending, one refused, and a next page. */
static const char requests_page[] =
	"{\"object\": \"list\", \"timezone\": \"UTC\","
	" \"period\": {\"since\": null, \"until\": \"2026-11-05T13:30:00Z\"},"
	" \"filters\": {\"project\": null, \"key\": null, \"model\": null, \"status\": null},"
	" \"data\": ["
	"{\"id\": \"req_2\", \"created_at\": \"2026-11-05T13:29:58Z\", \"project\": \"acme\","
	" \"key\": \"mg_abc123\", \"model\": \"mock/echo\", \"endpoint\": \"chat\", \"stream\": true,"
	" \"status\": null, \"pending\": true, \"error_type\": null, \"prompt_tokens\": null,"
	" \"completion_tokens\": null, \"total_tokens\": null, \"cost\": null,"
	" \"cost_source\": null, \"latency_ms\": null, \"ttft_ms\": null},"
	" {\"id\": \"req_1\", \"created_at\": \"2026-11-05T13:29:01Z\", \"project\": \"acme\","
	" \"key\": \"mg_abc123\", \"model\": \"openai/gpt-4o-mini\", \"endpoint\": \"chat\","
	" \"stream\": false, \"status\": 429, \"pending\": false, \"error_type\": \"rate_limit\","
	" \"prompt_tokens\": 10, \"completion_tokens\": 0, \"total_tokens\": 10,"
	" \"cost\": \"0.0000015\", \"cost_source\": \"upstream\", \"latency_ms\": 1234,"
	" \"ttft_ms\": 3}],"
	" \"has_more\": true, \"next_cursor\": \"c1793971741000000_41\"}";

/* Two projects: a monthly cap with an rpm limit; no cap, a tpm limit. */
static const char quota_two[] =
	"{\"object\": \"list\", \"data\": ["
	"{\"project\": \"acme\", \"period\": {\"kind\": \"month\", \"timezone\": \"UTC\","
	" \"start\": \"2026-11-01T00:00:00Z\", \"end\": \"2026-12-01T00:00:00Z\"},"
	" \"spend_cap\": \"25\", \"spent\": \"1.25\", \"reserved\": \"0.004\","
	" \"remaining\": \"23.746\", \"rpm\": {\"limit\": 60, \"remaining\": 59, \"reset_ms\": 1000},"
	" \"tpm\": null, \"models\": [\"mock/echo\"]},"
	" {\"project\": \"beta\", \"period\": {\"kind\": \"total\", \"timezone\": \"UTC\","
	" \"start\": \"2026-01-01T00:00:00Z\", \"end\": null},"
	" \"spend_cap\": null, \"spent\": \"0\", \"reserved\": \"0\", \"remaining\": null,"
	" \"rpm\": null, \"tpm\": {\"limit\": 100000, \"remaining\": 100000, \"reset_ms\": 0},"
	" \"models\": null}]}";

/* Requests whose text a spreadsheet would run or split: the CSV keeps
 * it as text; numbers, even negative ones, stay numbers. */
static const char requests_csv_hostile[] =
	"{\"object\": \"list\", \"timezone\": \"UTC\","
	" \"period\": {\"since\": null, \"until\": \"2026-11-05T13:30:00Z\"},"
	" \"data\": ["
	"{\"id\": \"req_3\", \"created_at\": \"2026-11-05T13:29:58Z\", \"project\": \"acme\","
	" \"key\": \"@mg_abc\", \"model\": \"a,b \\\"c\\\"\", \"endpoint\": \"chat\","
	" \"stream\": false, \"status\": 200, \"pending\": false, \"error_type\": \"=cmd|' /C calc'!A0\","
	" \"prompt_tokens\": 1, \"completion_tokens\": 2, \"total_tokens\": 3, \"cost\": \"0.5\","
	" \"cost_source\": \"-1+1\", \"latency_ms\": -1, \"ttft_ms\": null},"
	" {\"id\": \"+req\", \"created_at\": \"\\t2026\", \"project\": \"\\rx\","
	" \"key\": \"k=1\", \"model\": \"=HYPERLINK(\\\"http://x\\\")\", \"endpoint\": \"a\\nb\","
	" \"stream\": true, \"status\": 500, \"pending\": false, \"error_type\": \"\","
	" \"prompt_tokens\": -5, \"completion_tokens\": 0, \"total_tokens\": -5, \"cost\": \"0\","
	" \"cost_source\": null, \"latency_ms\": 7, \"ttft_ms\": 2}],"
	" \"has_more\": false, \"next_cursor\": null}";

/* What mg_format_report writes for the object json. */
static char *
format_text(enum mg_report r, const char *json, enum mg_format f)
{
	json_object *o = mg_unit_parse(json);
	char *text = NULL;
	size_t n = 0;
	FILE *out = open_memstream(&text, &n);

	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(mg_format_report(out, r, o, f), MG_OK);
	ck_assert_int_eq(fclose(out), 0);
	json_object_put(o);
	return text;
}

/* The text of json in format f is want, byte for byte. */
static void
assert_format(enum mg_report r, const char *json, enum mg_format f, const char *want)
{
	char *got = format_text(r, json, f);

	ck_assert_str_eq(got, want);
	free(got);
}

START_TEST(table_usage_by_model_status)
{
	assert_format(MG_REPORT_USAGE, usage_by_model_status, MG_FORMAT_TABLE,
	    "usage from 2026-11-01T00:00:00+01:00 to 2026-11-05T14:30:00+01:00 (Europe/Paris)\n"
	    "model               status  requests  errors  prompt  completion  tokens  cost_usd"
	    "  avg_ms  p50_ms  p95_ms  ttft_p50  ttft_p95\n"
	    "openai/gpt-4o-mini  2xx           12       0    1200         340    1540   0.00123"
	    "     812     750    1500       200       400\n"
	    "mock/echo           5xx            3       3       0           0       0         0"
	    "      20      15      40         -         -\n"
	    "total                             15       3    1200         340    1540   0.00123"
	    "     654     700    1500       200       400\n");
}
END_TEST

START_TEST(table_usage_ungrouped)
{
	assert_format(MG_REPORT_USAGE, usage_ungrouped, MG_FORMAT_TABLE,
	    "usage from 2026-11-01T00:00:00Z to 2026-11-05T13:45:00Z (UTC)\n"
	    "requests  errors  prompt  completion  tokens  cost_usd  avg_ms  p50_ms  p95_ms"
	    "  ttft_p50  ttft_p95\n"
	    "      16       3    1205         347    1552   0.50123     600     700    1500"
	    "       200       400\n");
}
END_TEST

/* Control characters reach no terminal, each shown as one '?'; UTF-8 is
 * as wide as its characters. */
START_TEST(table_usage_client_text)
{
	assert_format(MG_REPORT_USAGE, usage_client_text, MG_FORMAT_TABLE,
	    "usage from 2026-11-01T00:00:00Z to 2026-11-02T00:00:00Z (UTC)\n"
	    "model     status  requests  errors  prompt  completion  tokens  cost_usd  avg_ms"
	    "  p50_ms  p95_ms  ttft_p50  ttft_p95\n"
	    "x?[31m?y  2xx            1       -       -           -       -         -       -"
	    "       -       -         -         -\n"
	    "модель/ü  2xx           22       -       -           -       -         -       -"
	    "       -       -         -         -\n"
	    "gpt-4o    4xx          333       -       -           -       -         -       -"
	    "       -       -         -         -\n"
	    "a?31mb    5xx         4444       -       -           -       -         -       -"
	    "       -       -         -         -\n"
	    "total                 4800       -       -           -       -         -       -"
	    "       -       -         -         -\n");
}
END_TEST

START_TEST(table_requests)
{
	assert_format(MG_REPORT_REQUESTS, requests_page, MG_FORMAT_TABLE,
	    "requests up to 2026-11-05T13:30:00Z (UTC)\n"
	    "created_at            id     project  key        model               endpoint"
	    "  stream  status  pending  error       prompt  completion  tokens   cost_usd"
	    "  cost_source    ms  ttft_ms\n"
	    "2026-11-05T13:29:58Z  req_2  acme     mg_abc123  mock/echo           chat    "
	    "  true         -  true     -                -           -       -          -"
	    "  -               -        -\n"
	    "2026-11-05T13:29:01Z  req_1  acme     mg_abc123  openai/gpt-4o-mini  chat    "
	    "  false      429  false    rate_limit      10           0      10  0.0000015"
	    "  upstream     1234        3\n"
	    "more: --cursor c1793971741000000_41\n");
}
END_TEST

/* The last page: no "more" line. */
START_TEST(table_requests_last_page)
{
	static const char last[] =
		"{\"object\": \"list\", \"timezone\": \"UTC\","
		" \"period\": {\"since\": \"2026-11-05T00:00:00Z\", \"until\": \"2026-11-06T00:00:00Z\"},"
		" \"data\": [], \"has_more\": false, \"next_cursor\": null}";

	assert_format(MG_REPORT_REQUESTS, last, MG_FORMAT_TABLE,
	    "requests from 2026-11-05T00:00:00Z to 2026-11-06T00:00:00Z (UTC)\n"
	    "created_at  id  project  key  model  endpoint  stream  status  pending  error"
	    "  prompt  completion  tokens  cost_usd  cost_source  ms  ttft_ms\n");
}
END_TEST

START_TEST(table_quota)
{
	assert_format(MG_REPORT_QUOTA, quota_two, MG_FORMAT_TABLE,
	    "project  period  start                 end                   spend_cap  spent"
	    "  reserved  remaining  rpm  rpm_left     tpm  tpm_left\n"
	    "acme     month   2026-11-01T00:00:00Z  2026-12-01T00:00:00Z         25   1.25"
	    "     0.004     23.746   60        59       -         -\n"
	    "beta     total   2026-01-01T00:00:00Z  -                             -      0"
	    "         0          -    -         -  100000    100000\n");
}
END_TEST

/* Dimensions first, then member paths with '.' as '_'; one CRLF line a
 * row of data and no totals line. */
START_TEST(csv_usage)
{
	assert_format(MG_REPORT_USAGE, usage_by_model_status, MG_FORMAT_CSV,
	    "model,status,requests,errors,prompt_tokens,completion_tokens,total_tokens,cost,"
	    "latency_ms_avg,latency_ms_p50,latency_ms_p95,ttft_ms_p50,ttft_ms_p95\r\n"
	    "openai/gpt-4o-mini,2xx,12,0,1200,340,1540,0.00123,812,750,1500,200,400\r\n"
	    "mock/echo,5xx,3,3,0,0,0,0,20,15,40,,\r\n");
}
END_TEST

START_TEST(csv_usage_ungrouped)
{
	assert_format(MG_REPORT_USAGE, usage_ungrouped, MG_FORMAT_CSV,
	    "requests,errors,prompt_tokens,completion_tokens,total_tokens,cost,"
	    "latency_ms_avg,latency_ms_p50,latency_ms_p95,ttft_ms_p50,ttft_ms_p95\r\n"
	    "16,3,1205,347,1552,0.50123,600,700,1500,200,400\r\n");
}
END_TEST

/* RFC 4180 quoting; a string starting with = + - @ TAB or CR gets an
 * apostrophe inside the quotes, a JSON number never. */
START_TEST(csv_requests_client_text)
{
	assert_format(MG_REPORT_REQUESTS, requests_csv_hostile, MG_FORMAT_CSV,
	    "created_at,id,project,key,model,endpoint,stream,status,pending,error_type,"
	    "prompt_tokens,completion_tokens,total_tokens,cost,cost_source,latency_ms,ttft_ms\r\n"
	    "2026-11-05T13:29:58Z,req_3,acme,\"'@mg_abc\",\"a,b \"\"c\"\"\",chat,false,200,false,"
	    "\"'=cmd|' /C calc'!A0\",1,2,3,0.5,\"'-1+1\",-1,\r\n"
	    "\"'\t2026\",\"'+req\",\"'\rx\",k=1,\"'=HYPERLINK(\"\"http://x\"\")\",\"a\nb\",true,"
	    "500,false,,-5,0,-5,0,,7,2\r\n");
}
END_TEST

START_TEST(csv_quota)
{
	assert_format(MG_REPORT_QUOTA, quota_two, MG_FORMAT_CSV,
	    "project,period_kind,period_start,period_end,spend_cap,spent,reserved,remaining,"
	    "rpm_limit,rpm_remaining,tpm_limit,tpm_remaining\r\n"
	    "acme,month,2026-11-01T00:00:00Z,2026-12-01T00:00:00Z,25,1.25,0.004,23.746,60,59,,\r\n"
	    "beta,total,2026-01-01T00:00:00Z,,,0,0,,,,100000,100000\r\n");
}
END_TEST

/* One line a row of data, as compact JSON, and nothing else: no totals,
 * no period. */
START_TEST(ndjson_usage)
{
	assert_format(MG_REPORT_USAGE, usage_by_model_status, MG_FORMAT_NDJSON,
	    "{\"model\":\"openai/gpt-4o-mini\",\"status\":\"2xx\",\"requests\":12,\"errors\":0,"
	    "\"prompt_tokens\":1200,\"completion_tokens\":340,\"total_tokens\":1540,"
	    "\"cost\":\"0.00123\",\"latency_ms\":{\"avg\":812,\"p50\":750,\"p95\":1500},"
	    "\"ttft_ms\":{\"avg\":210,\"p50\":200,\"p95\":400}}\n"
	    "{\"model\":\"mock/echo\",\"status\":\"5xx\",\"requests\":3,\"errors\":3,"
	    "\"prompt_tokens\":0,\"completion_tokens\":0,\"total_tokens\":0,\"cost\":\"0\","
	    "\"latency_ms\":{\"avg\":20,\"p50\":15,\"p95\":40},"
	    "\"ttft_ms\":{\"avg\":null,\"p50\":null,\"p95\":null}}\n");
}
END_TEST

/* A line feed in a value stays escaped: each line is still one row. */
START_TEST(ndjson_rows_read_back)
{
	static const struct {
		enum mg_report r;
		const char *json;
	} reports[] = {
		{ MG_REPORT_USAGE, usage_client_text },
		{ MG_REPORT_REQUESTS, requests_page },
		{ MG_REPORT_REQUESTS, requests_csv_hostile },
		{ MG_REPORT_QUOTA, quota_two },
	};
	size_t i, k;

	for (k = 0; k < sizeof(reports) / sizeof(reports[0]); k++) {
		json_object *o = mg_unit_parse(reports[k].json), *data;
		char *text = format_text(reports[k].r, reports[k].json, MG_FORMAT_NDJSON);
		char *line = text, *nl;

		ck_assert(json_object_object_get_ex(o, "data", &data));
		for (i = 0; i < json_object_array_length(data); i++) {
			json_object *row;

			nl = strchr(line, '\n');
			ck_assert_msg(nl != NULL, "report %zu: %zu lines, want %zu", k, i,
			    json_object_array_length(data));
			*nl = '\0';
			row = mg_unit_parse(line);
			ck_assert_msg(json_object_equal(row, json_object_array_get_idx(data, i)),
			    "report %zu row %zu: %s", k, i, line);
			json_object_put(row);
			line = nl + 1;
		}
		ck_assert_str_eq(line, "");
		free(text);
		json_object_put(o);
	}
}
END_TEST

/* The JSON format is the object as every face returns it. */
START_TEST(json_reads_back)
{
	static const struct {
		enum mg_report r;
		const char *json;
	} reports[] = {
		{ MG_REPORT_USAGE, usage_by_model_status },
		{ MG_REPORT_USAGE, usage_ungrouped },
		{ MG_REPORT_USAGE, usage_client_text },
		{ MG_REPORT_REQUESTS, requests_page },
		{ MG_REPORT_QUOTA, quota_two },
	};
	size_t k;

	for (k = 0; k < sizeof(reports) / sizeof(reports[0]); k++) {
		json_object *o = mg_unit_parse(reports[k].json), *back;
		char *text = format_text(reports[k].r, reports[k].json, MG_FORMAT_JSON);
		size_t n = strlen(text);

		ck_assert_msg(n > 0 && text[n - 1] == '\n', "report %zu", k);
		back = mg_unit_parse(text);
		ck_assert_msg(json_object_equal(o, back), "report %zu: %s", k, text);
		/* slashes of model ids as they are */
		if (strstr(reports[k].json, "mock/echo") != NULL)
			ck_assert_ptr_nonnull(strstr(text, "\"mock/echo\""));
		json_object_put(back);
		json_object_put(o);
		free(text);
	}
}
END_TEST

/* A stream that cannot be written (a full disk) is MG_ERR_IO. */
START_TEST(write_error)
{
	json_object *o = mg_unit_parse(quota_two);
	FILE *out = fopen("/dev/full", "w");

	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(mg_format_report(out, MG_REPORT_QUOTA, o, MG_FORMAT_TABLE), MG_ERR_IO);
	fclose(out);
	json_object_put(o);
}
END_TEST

static const struct {
	const char *name;
	int ok;
	enum mg_format f;
} formats[] = {
	{ "table", 1, MG_FORMAT_TABLE },
	{ "json", 1, MG_FORMAT_JSON },
	{ "csv", 1, MG_FORMAT_CSV },
	{ "ndjson", 1, MG_FORMAT_NDJSON },
	{ "TABLE", 0, MG_FORMAT_TABLE },
	{ "Json", 0, MG_FORMAT_TABLE },
	{ "jsonl", 0, MG_FORMAT_TABLE },
	{ "tsv", 0, MG_FORMAT_TABLE },
	{ "csv ", 0, MG_FORMAT_TABLE },
	{ "tab", 0, MG_FORMAT_TABLE },
	{ "", 0, MG_FORMAT_TABLE },
	{ NULL, 0, MG_FORMAT_TABLE },
};

/* A name that is no format leaves *f as it was. */
START_TEST(format_names)
{
	enum mg_format f = MG_FORMAT_NDJSON;

	if (formats[_i].ok) {
		ck_assert_int_eq(mg_format_parse(formats[_i].name, &f), 0);
		ck_assert_int_eq(f, formats[_i].f);
	} else {
		ck_assert_int_eq(mg_format_parse(formats[_i].name, &f), -1);
		ck_assert_int_eq(f, MG_FORMAT_NDJSON);
	}
}
END_TEST

static Suite *
format_suite(void)
{
	Suite *s = suite_create("format");
	TCase *tc = tcase_create("format");

	tcase_add_test(tc, table_usage_by_model_status);
	tcase_add_test(tc, table_usage_ungrouped);
	tcase_add_test(tc, table_usage_client_text);
	tcase_add_test(tc, table_requests);
	tcase_add_test(tc, table_requests_last_page);
	tcase_add_test(tc, table_quota);
	tcase_add_test(tc, csv_usage);
	tcase_add_test(tc, csv_usage_ungrouped);
	tcase_add_test(tc, csv_requests_client_text);
	tcase_add_test(tc, csv_quota);
	tcase_add_test(tc, ndjson_usage);
	tcase_add_test(tc, ndjson_rows_read_back);
	tcase_add_test(tc, json_reads_back);
	tcase_add_test(tc, write_error);
	tcase_add_loop_test(tc, format_names, 0, (int)(sizeof(formats) / sizeof(formats[0])));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(format_suite());
}
