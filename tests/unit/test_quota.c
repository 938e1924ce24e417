#include "config.h"

#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "quota.h"
#include "unit.h"

/* --- prompt estimate --------------------------------------------------- */

START_TEST(estimate_rounds_up)
{
	ck_assert_int_eq(mg_quota_prompt_estimate(0), 1);
	ck_assert_int_eq(mg_quota_prompt_estimate(1), 1);
	ck_assert_int_eq(mg_quota_prompt_estimate(3), 1);
	ck_assert_int_eq(mg_quota_prompt_estimate(4), 2);
	ck_assert_int_eq(mg_quota_prompt_estimate(300), 100);
	ck_assert_int_eq(mg_quota_prompt_estimate(301), 101);
	/* never below the mock's (and a tokenizer's usual) 4 bytes a token */
	ck_assert_int_ge(mg_quota_prompt_estimate(4000), 1000);
}
END_TEST

/* --- durations --------------------------------------------------------- */

static const struct {
	long long ms;
	const char *text;
} durations[] = {
	{ -5, "0ms" },
	{ 0, "0ms" },
	{ 20, "20ms" },
	{ 999, "999ms" },
	{ 1000, "1s" },
	{ 1500, "1.5s" },
	{ 1250, "1.25s" },
	{ 19970, "19.97s" },
	{ 59978, "59.978s" },
	{ 1005, "1.005s" },
	{ 1050, "1.05s" },
	{ 1100, "1.1s" },
	{ 10010, "10.01s" },
	{ 59999, "59.999s" },
	{ 60000, "1m0s" },
	{ 60001, "1m1s" },
	{ 360000, "6m0s" },
	{ 3723000, "1h2m3s" },
	{ 86400000, "24h0m0s" },
	{ 3599999, "1h0m0s" },
	{ 3600000, "1h0m0s" },
	{ 3659001, "1h1m0s" },
	{ 9223372036854775807LL, "2562047788015h12m56s" },
};

START_TEST(duration_table)
{
	char out[32];

	mg_quota_duration(durations[_i].ms, out, sizeof(out));
	ck_assert_str_eq(out, durations[_i].text);
}
END_TEST

/* A buffer too small gets the start, as from snprintf. */
START_TEST(duration_cut)
{
	char out[8];

	memset(out, '#', sizeof(out));
	mg_quota_duration(59978, out, 4);
	ck_assert_str_eq(out, "59.");
	ck_assert_int_eq(out[4], '#');
	mg_quota_duration(1500, out, 1);
	ck_assert_str_eq(out, "");
	mg_quota_duration(1500, out + 1, 0);
	ck_assert_int_eq(out[1], '9');
}
END_TEST

/* --- headers ----------------------------------------------------------- */

static struct mg_admission
admission(enum mg_admit_outcome o)
{
	struct mg_admission a;

	memset(&a, 0, sizeof(a));
	a.outcome = o;
	snprintf(a.auth.project, sizeof(a.auth.project), "acme");
	a.rpm = a.rpm_remaining = a.rpm_reset_ms = -1;
	a.tpm = a.tpm_remaining = a.tpm_reset_ms = -1;
	a.retry_after_ms = -1;
	return a;
}

START_TEST(headers_none_without_limits)
{
	struct mg_admission a = admission(MG_ADMIT_OK);
	char h[256] = "x-request-id: r\r\n";

	ck_assert_int_eq(mg_quota_headers(&a, h, sizeof(h)), 0);
	ck_assert_str_eq(h, "x-request-id: r\r\n");
}
END_TEST

START_TEST(headers_requests_and_tokens)
{
	struct mg_admission a = admission(MG_ADMIT_OK);
	char h[512] = "";

	a.rpm = 60;
	a.rpm_remaining = 59;
	a.rpm_reset_ms = 1000;
	a.tpm = 150000;
	a.tpm_remaining = 149984;
	a.tpm_reset_ms = 360000;
	ck_assert_int_eq(mg_quota_headers(&a, h, sizeof(h)), 0);
	ck_assert_str_eq(h,
	    "x-ratelimit-limit-requests: 60\r\n"
	    "x-ratelimit-remaining-requests: 59\r\n"
	    "x-ratelimit-reset-requests: 1s\r\n"
	    "x-ratelimit-limit-tokens: 150000\r\n"
	    "x-ratelimit-remaining-tokens: 149984\r\n"
	    "x-ratelimit-reset-tokens: 6m0s\r\n");
}
END_TEST

START_TEST(headers_too_long_left_unchanged)
{
	struct mg_admission a = admission(MG_ADMIT_OK);
	char h[64] = "x-request-id: r\r\n";

	a.rpm = 60;
	a.rpm_remaining = 1;
	a.rpm_reset_ms = 1;
	a.tpm = 60;
	a.tpm_remaining = 1;
	a.tpm_reset_ms = 1;
	ck_assert_int_eq(mg_quota_headers(&a, h, sizeof(h)), -1);
	ck_assert_str_eq(h, "x-request-id: r\r\n");
}
END_TEST

/* --- refusals ---------------------------------------------------------- */

START_TEST(refusal_rate_limit)
{
	struct mg_admission a = admission(MG_ADMIT_REQUESTS);
	struct mg_apierror e;
	char h[256] = "";

	a.rpm = 60;
	a.rpm_remaining = 0;
	a.retry_after_ms = 1500;
	mg_quota_refusal(&a, "m", &e, h, sizeof(h));
	ck_assert_int_eq(e.status, 429);
	ck_assert_str_eq(e.type, "requests");
	ck_assert_str_eq(e.code, "rate_limit_exceeded");
	ck_assert_ptr_nonnull(strstr(e.message, "limit 60"));
	ck_assert_ptr_nonnull(strstr(e.message, "1.5s"));
	ck_assert_str_eq(h, "Retry-After: 2\r\nretry-after-ms: 1500\r\n");
}
END_TEST

START_TEST(refusal_spend_cap_monthly)
{
	struct mg_admission a = admission(MG_ADMIT_SPEND_CAP);
	struct mg_apierror e;
	char h[256] = "";

	snprintf(a.spend_cap, sizeof(a.spend_cap), "5");
	snprintf(a.spent, sizeof(a.spent), "4.99");
	snprintf(a.reserved, sizeof(a.reserved), "0.02");
	a.retry_after_ms = 86400000;
	mg_quota_refusal(&a, "m", &e, h, sizeof(h));
	ck_assert_int_eq(e.status, 429);
	ck_assert_str_eq(e.type, "insufficient_quota");
	ck_assert_str_eq(e.code, "spend_cap_exceeded");
	ck_assert_ptr_nonnull(strstr(e.message, "$5 for this month (UTC)"));
	ck_assert_ptr_nonnull(strstr(e.message, "$4.99 is spent"));
	ck_assert_ptr_nonnull(strstr(e.message, "$0.02"));
	ck_assert_str_eq(h, "Retry-After: 86400\r\nretry-after-ms: 86400000\r\nx-should-retry: false\r\n");
}
END_TEST

START_TEST(refusal_spend_cap_total)
{
	struct mg_admission a = admission(MG_ADMIT_SPEND_CAP);
	struct mg_apierror e;
	char h[256] = "";

	snprintf(a.spend_cap, sizeof(a.spend_cap), "1");
	mg_quota_refusal(&a, "m", &e, h, sizeof(h));
	ck_assert_ptr_nonnull(strstr(e.message, "in total"));
	ck_assert_str_eq(h, "x-should-retry: false\r\n");
}
END_TEST

START_TEST(refusal_models_and_tokens)
{
	struct mg_admission a = admission(MG_ADMIT_MODEL_NOT_ALLOWED);
	struct mg_apierror e;
	char h[256] = "";

	mg_quota_refusal(&a, "x/y", &e, h, sizeof(h));
	ck_assert_int_eq(e.status, 403);
	ck_assert_str_eq(e.code, "model_not_allowed");
	ck_assert_str_eq(e.param, "model");
	ck_assert_ptr_nonnull(strstr(e.message, "'x/y'"));
	a.outcome = MG_ADMIT_MODEL_NOT_FOUND;
	mg_quota_refusal(&a, "x/y", &e, h, sizeof(h));
	ck_assert_int_eq(e.status, 404);
	ck_assert_str_eq(e.code, "model_not_found");
	ck_assert_str_eq(h, "");
	a.outcome = MG_ADMIT_TOKENS_TOO_MANY;
	a.tpm = 100;
	a.need_tokens = 150;
	mg_quota_refusal(&a, "x/y", &e, h, sizeof(h));
	ck_assert_int_eq(e.status, 429);
	ck_assert_str_eq(e.type, "tokens");
	ck_assert_ptr_nonnull(strstr(e.message, "150 tokens"));
	ck_assert_str_eq(h, "x-should-retry: false\r\n");
}
END_TEST

/* --- catalog rows ------------------------------------------------------ */

static const char *
field(json_object *row, const char *name)
{
	json_object *v;

	if (!json_object_object_get_ex(row, name, &v) || v == NULL)
		return NULL;
	return json_object_get_string(v);
}

START_TEST(catalog_rows_prices_exact)
{
	json_object *chat = mg_unit_parse("{\"data\":["
	    "{\"id\":\"openai/gpt-4o-mini\",\"name\":\"GPT-4o mini\",\"context_length\":128000,"
	    " \"pricing\":{\"prompt\":\"0.00000015\",\"completion\":\"0.0000006\"}},"
	    "{\"id\":\"openrouter/auto\",\"context_length\":2000000,"
	    " \"pricing\":{\"prompt\":\"-1\",\"completion\":\"-1\"}},"
	    "{\"id\":\"x/num\",\"pricing\":{\"prompt\":0.000001,\"completion\":2e-6}},"
	    "{\"id\":\"x/bad\",\"context_length\":\"big\",\"pricing\":{\"prompt\":\"free\"}},"
	    "{\"name\":\"no id\"}]}");
	json_object *emb = mg_unit_parse("{\"data\":[{\"id\":\"openai/text-embedding-3-small\","
	    "\"pricing\":{\"prompt\":\"0.00000002\",\"completion\":\"0\"}},"
	    "{\"id\":\"openai/gpt-4o-mini\"}]}");
	json_object *rows = NULL, *r, *obj;

	ck_assert_int_eq(mg_catalog_rows(chat, emb, &rows), MG_OK);
	ck_assert_uint_eq(json_object_array_length(rows), 5);
	r = json_object_array_get_idx(rows, 0);
	ck_assert_str_eq(field(r, "id"), "openai/gpt-4o-mini");
	ck_assert_str_eq(field(r, "kind"), "chat");
	ck_assert_str_eq(field(r, "name"), "GPT-4o mini");
	ck_assert_str_eq(field(r, "context_length"), "128000");
	ck_assert_str_eq(field(r, "prompt_price"), "0.00000015");
	ck_assert_str_eq(field(r, "completion_price"), "0.0000006");
	ck_assert(json_object_object_get_ex(r, "object", &obj));
	ck_assert_str_eq(field(obj, "object"), "model");
	ck_assert_str_eq(field(obj, "owned_by"), "openai");
	r = json_object_array_get_idx(rows, 1);
	ck_assert_ptr_null(field(r, "prompt_price"));      /* "-1": priced per request */
	ck_assert_ptr_null(field(r, "completion_price"));
	r = json_object_array_get_idx(rows, 2);
	ck_assert_str_eq(field(r, "prompt_price"), "0.000001");  /* a number's own text */
	ck_assert_str_eq(field(r, "completion_price"), "2e-6");
	r = json_object_array_get_idx(rows, 3);
	ck_assert_ptr_null(field(r, "prompt_price"));
	ck_assert_ptr_null(field(r, "context_length"));
	r = json_object_array_get_idx(rows, 4);
	ck_assert_str_eq(field(r, "id"), "openai/text-embedding-3-small");
	ck_assert_str_eq(field(r, "kind"), "embedding");
	ck_assert_str_eq(field(r, "completion_price"), "0");
	json_object_put(rows);
	json_object_put(chat);
	json_object_put(emb);
}
END_TEST

START_TEST(catalog_rows_need_a_list)
{
	json_object *bad = mg_unit_parse("{\"error\":{\"message\":\"no\"}}");
	json_object *rows = NULL;

	ck_assert_int_eq(mg_catalog_rows(bad, NULL, &rows), MG_ERR_UPSTREAM);
	ck_assert_ptr_null(rows);
	json_object_put(bad);
}
END_TEST

static Suite *
quota_suite(void)
{
	Suite *s = suite_create("quota");
	TCase *tc = tcase_create("quota");

	tcase_add_test(tc, estimate_rounds_up);
	tcase_add_loop_test(tc, duration_table, 0, (int)(sizeof(durations) / sizeof(durations[0])));
	tcase_add_test(tc, duration_cut);
	tcase_add_test(tc, headers_none_without_limits);
	tcase_add_test(tc, headers_requests_and_tokens);
	tcase_add_test(tc, headers_too_long_left_unchanged);
	tcase_add_test(tc, refusal_rate_limit);
	tcase_add_test(tc, refusal_spend_cap_monthly);
	tcase_add_test(tc, refusal_spend_cap_total);
	tcase_add_test(tc, refusal_models_and_tokens);
	suite_add_tcase(s, tc);
	tc = tcase_create("catalog");
	tcase_add_test(tc, catalog_rows_prices_exact);
	tcase_add_test(tc, catalog_rows_need_a_list);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(quota_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
