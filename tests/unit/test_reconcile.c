#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"
#include "reconcile.h"
#include "unit.h"

/* Answers to GET /generation?id= and what they say. */
static const struct {
	long status;
	const char *body;
	enum mg_recon_answer want;
	const char *cost;
} answers[] = {
	/* OpenRouter's answer, the cost as the upstream wrote it */
	{ 200, "{\"data\":{\"id\":\"gen-1\",\"total_cost\":0.000123,\"usage\":0.000123}}",
	  MG_RECON_BILLED, "0.000123" },
	{ 200, "{\"data\":{\"usage\":1,\"total_cost\":2e-7}}", MG_RECON_BILLED, "2e-7" },
	{ 200, "{\"data\":{\"total_cost\":0}}", MG_RECON_BILLED, "0" },
	{ 200, " {\"other\":[1,{\"total_cost\":9}],\"data\":{\"x\":{\"total_cost\":8},"
	  "\"total_cost\":0.5}} ", MG_RECON_BILLED, "0.5" },
	/* named twice: the last one counts, as everywhere */
	{ 200, "{\"data\":{\"total_cost\":1,\"total_cost\":3}}", MG_RECON_BILLED, "3" },
	/* not an amount: try again later, never a guess */
	{ 200, "{\"data\":{\"total_cost\":-1}}", MG_RECON_FAILED, "" },
	{ 200, "{\"data\":{\"total_cost\":\"0.1\"}}", MG_RECON_FAILED, "" },
	{ 200, "{\"data\":{\"total_cost\":null}}", MG_RECON_FAILED, "" },
	{ 200, "{\"data\":{}}", MG_RECON_FAILED, "" },
	{ 200, "{\"data\":[]}", MG_RECON_FAILED, "" },
	{ 200, "{\"data\":{\"total_cost\":1", MG_RECON_FAILED, "" },
	{ 200, "<html>ok</html>", MG_RECON_FAILED, "" },
	{ 200, "", MG_RECON_FAILED, "" },
	/* not known yet: the upstream's own JSON error */
	{ 404, "{\"error\":{\"code\":404,\"message\":\"Generation not found\"}}",
	  MG_RECON_NOT_YET, "" },
	/* no such route: a page, or JSON that is no error object */
	{ 404, "<html><body>404 Not Found</body></html>", MG_RECON_NO_API, "" },
	{ 404, "", MG_RECON_NO_API, "" },
	{ 404, "{\"detail\":\"Not Found\"}", MG_RECON_NO_API, "" },
	{ 404, "{\"error\":\"Not Found\"}", MG_RECON_NO_API, "" },
	{ 405, "{\"error\":{\"message\":\"Method Not Allowed\"}}", MG_RECON_NO_API, "" },
	{ 501, "", MG_RECON_NO_API, "" },
	/* anything else: later */
	{ 429, "{\"error\":{\"code\":429}}", MG_RECON_FAILED, "" },
	{ 500, "{\"error\":{\"code\":500}}", MG_RECON_FAILED, "" },
	{ 401, "{\"error\":{\"code\":401}}", MG_RECON_FAILED, "" },
	{ 0, "", MG_RECON_FAILED, "" },
};

START_TEST(recon_read_table)
{
	char cost[64];
	const char *b = answers[_i].body;

	memset(cost, 'x', sizeof(cost));
	ck_assert_int_eq(mg_recon_read(answers[_i].status, b, strlen(b), cost, sizeof(cost)),
	    answers[_i].want);
	ck_assert_str_eq(cost, answers[_i].cost);
}
END_TEST

/* A cost longer than an amount may be is refused, and nothing is cut. */
START_TEST(recon_read_long_cost)
{
	char body[256], cost[16];

	snprintf(body, sizeof(body), "{\"data\":{\"total_cost\":0.%s}}", "123456789012345678901");
	ck_assert_int_eq(mg_recon_read(200, body, strlen(body), cost, sizeof(cost)),
	    MG_RECON_FAILED);
	ck_assert_str_eq(cost, "");
}
END_TEST

START_TEST(recon_path)
{
	char out[64];

	ck_assert_int_eq(mg_recon_path("gen-1733-AbC_x.y~z", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/generation?id=gen-1733-AbC_x.y~z");
	ck_assert_int_eq(mg_recon_path("a b&c=d/é", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/generation?id=a%20b%26c%3Dd%2F%C3%A9");
	ck_assert_int_eq(mg_recon_path("", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/generation?id=");
	/* just fits, then one too many */
	ck_assert_int_eq(mg_recon_path("abcd", out, 20), 0);
	ck_assert_int_eq(mg_recon_path("abcde", out, 20), -1);
	ck_assert_int_eq(mg_recon_path("ab&", out, 20), -1);
	ck_assert_int_eq(mg_recon_path("x", out, 15), -1);
}
END_TEST

/* GET /activity answers: what mg_recon_activity_read makes of them for
 * day 2026-12-05 (NULL: refused). */
static const struct {
	const char *body;
	const char *out;
} activities[] = {
	{ "{\"data\":[]}", "[]" },
	{ "{\"data\":[{\"date\":\"2026-12-05\",\"model\":\"openai/gpt-4o\","
	  "\"model_permaslug\":\"openai/gpt-4o-2024-08-06\",\"endpoint_id\":\"e1\","
	  "\"provider_name\":\"OpenAI\",\"usage\":0.0012345,\"byok_usage_inference\":0,"
	  "\"requests\":3,\"prompt_tokens\":10,\"completion_tokens\":5,"
	  "\"reasoning_tokens\":0}]}",
	  "[{\"model\":\"openai/gpt-4o\",\"requests\":3,\"usage\":\"0.0012345\"}]" },
	/* counts and amounts as strings, an exponent, the time in the date,
	 * another day's item left out, a model with an escape kept escaped */
	{ "{\"data\":[{\"date\":\"2026-12-05 00:00:00\",\"model\":\"a\\\"b\","
	  "\"usage\":\"1.5e-7\",\"requests\":\"2\"},"
	  "{\"date\":\"2026-12-04\",\"model\":\"x\",\"usage\":1,\"requests\":1},"
	  "{\"model\":\"m\",\"usage\":0,\"requests\":0}],\"meta\":{}}",
	  "[{\"model\":\"a\\\"b\",\"requests\":2,\"usage\":\"1.5e-7\"},"
	  "{\"model\":\"m\",\"requests\":0,\"usage\":\"0\"}]" },
	/* a raw control character in the model, taken as json-c takes it,
	 * goes on escaped: Postgres's json refuses it raw (fuzz_recon) */
	{ "{\"data\":[{\"model\":\"a\nb\x01\",\"usage\":1,\"requests\":1}]}",
	  "[{\"model\":\"a\\u000ab\\u0001\",\"requests\":1,\"usage\":\"1\"}]" },
	/* a count with leading zeros, in a string: JSON takes none (fuzz_recon) */
	{ "{\"data\":[{\"model\":\"m\",\"usage\":\"1\",\"requests\":\"007\"},"
	  "{\"model\":\"n\",\"usage\":\"1\",\"requests\":\"00\"}]}",
	  "[{\"model\":\"m\",\"requests\":7,\"usage\":\"1\"},"
	  "{\"model\":\"n\",\"requests\":0,\"usage\":\"1\"}]" },
	{ "{}", NULL },                                           /* no data */
	{ "{\"data\":{}}", NULL },
	{ "{\"data\":[{\"usage\":1,\"requests\":1}]}", NULL },   /* no model */
	{ "{\"data\":[{\"model\":\"m\",\"requests\":1}]}", NULL },  /* no usage */
	{ "{\"data\":[{\"model\":\"m\",\"usage\":-1,\"requests\":1}]}", NULL },
	{ "{\"data\":[{\"model\":\"m\",\"usage\":\"1; DROP\",\"requests\":1}]}", NULL },
	{ "{\"data\":[{\"model\":\"m\",\"usage\":1,\"requests\":1.5}]}", NULL },
	{ "{\"data\":[{\"model\":7,\"usage\":1,\"requests\":1}]}", NULL },
	{ "{\"data\":[1]}", NULL },
	{ "{\"data\":[{\"model\":\"m\",\"usage\":1,\"requests\":1}", NULL },  /* cut */
	{ "<html>404</html>", NULL },
};

START_TEST(activity_read_table)
{
	struct mg_buf out;
	const char *b = activities[_i].body;
	int rc;

	mg_buf_init(&out, 4096);
	rc = mg_recon_activity_read(b, strlen(b), "2026-12-05", &out);
	if (activities[_i].out == NULL) {
		ck_assert_int_eq(rc, -1);
	} else {
		ck_assert_int_eq(rc, 0);
		ck_assert_str_eq(mg_buf_str(&out), activities[_i].out);
	}
	mg_buf_free(&out);
}
END_TEST

START_TEST(credits_read)
{
	static const char ok[] = "{\"data\":{\"total_credits\":100,\"total_usage\":12.3456789}}";
	static const char str[] = "{\"data\":{\"total_usage\":\"0.5\",\"total_credits\":1}}";
	static const char neg[] = "{\"data\":{\"total_usage\":-2}}";
	static const char none[] = "{\"data\":{\"total_credits\":2}}";
	static const char bad[] = "{\"error\":{\"code\":403}}";
	char usage[MG_MONEY_MAX];

	ck_assert_int_eq(mg_recon_credits_read(ok, strlen(ok), usage, sizeof(usage)), 0);
	ck_assert_str_eq(usage, "12.3456789");
	ck_assert_int_eq(mg_recon_credits_read(str, strlen(str), usage, sizeof(usage)), 0);
	ck_assert_str_eq(usage, "0.5");
	ck_assert_int_eq(mg_recon_credits_read(neg, strlen(neg), usage, sizeof(usage)), -1);
	ck_assert_int_eq(mg_recon_credits_read(none, strlen(none), usage, sizeof(usage)), -1);
	ck_assert_int_eq(mg_recon_credits_read(bad, strlen(bad), usage, sizeof(usage)), -1);
	ck_assert_int_eq(mg_recon_credits_read(ok, strlen(ok), usage, 5), -1);
}
END_TEST

static Suite *
reconcile_suite(void)
{
	Suite *s = suite_create("reconcile");
	TCase *tc = tcase_create("read");

	tcase_add_loop_test(tc, recon_read_table, 0, (int)(sizeof(answers) / sizeof(answers[0])));
	tcase_add_test(tc, recon_read_long_cost);
	tcase_add_test(tc, recon_path);
	tcase_add_loop_test(tc, activity_read_table, 0,
	    (int)(sizeof(activities) / sizeof(activities[0])));
	tcase_add_test(tc, credits_read);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(reconcile_suite());
}
