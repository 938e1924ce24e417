#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

/* Collects the events a parser reports, joined as "event|data;". */
struct collected {
	char text[4096];
	int count;
	int stop_after;     /* ask the parser to stop after this many (0: never) */
};

static int
collect(void *arg, const struct mg_sse_event *ev)
{
	struct collected *c = arg;
	size_t used = strlen(c->text);

	ck_assert_uint_eq(strlen(ev->data), ev->len);
	snprintf(c->text + used, sizeof(c->text) - used, "%s|%s;", ev->event, ev->data);
	c->count++;
	return c->stop_after > 0 && c->count >= c->stop_after;
}

struct sse_case {
	const char *name;
	const char *input;
	const char *expect;
};

static const struct sse_case cases[] = {
	{ "one event", "data: {\"a\":1}\n\n", "|{\"a\":1};" },
	{ "crlf line ends", "data: x\r\n\r\ndata: y\r\n\r\n", "|x;|y;" },
	{ "cr line ends", "data: x\r\rdata: y\r\r", "|x;|y;" },
	{ "comments skipped", ": OPENROUTER PROCESSING\n\n: ping\n\ndata: z\n\n", "|z;" },
	{ "comment inside an event", "data: a\n: note\ndata: b\n\n", "|a\nb;" },
	{ "multi-line data joined", "data: a\ndata: b\ndata: c\n\n", "|a\nb\nc;" },
	{ "no space after colon", "data:x\n\n", "|x;" },
	{ "only one space dropped", "data:  x\n\n", "| x;" },
	{ "event field", "event: error\ndata: {}\n\n", "error|{};" },
	{ "unknown fields ignored", "id: 7\nretry: 10\ndata: q\n\n", "|q;" },
	{ "event without data not dispatched", "event: x\n\ndata: y\n\n", "|y;" },
	{ "incomplete event held back", "data: a\n\ndata: b\n", "|a;" },
	{ "empty data line", "data:\n\n", "|;" },
	{ "done marker", "data: [DONE]\n\n", "|[DONE];" },
	{ "field without colon", "data\n\n", "|;" },
};

/* Feeds the input split at every possible point (and byte by byte): the
 * events must not depend on how the bytes arrive. */
START_TEST(sse_table)
{
	const struct sse_case *tc = &cases[_i];
	size_t n = strlen(tc->input), cut;

	for (cut = 0; cut <= n; cut++) {
		struct mg_sse p;
		struct collected got;

		memset(&got, 0, sizeof(got));
		mg_sse_init(&p, 1024);
		ck_assert_int_eq(mg_sse_feed(&p, tc->input, cut, collect, &got), MG_OK);
		ck_assert_int_eq(mg_sse_feed(&p, tc->input + cut, n - cut, collect, &got), MG_OK);
		mg_sse_free(&p);
		ck_assert_msg(strcmp(got.text, tc->expect) == 0, "%s (split at %zu): got '%s', want '%s'",
		    tc->name, cut, got.text, tc->expect);
	}
	{
		struct mg_sse p;
		struct collected got;
		size_t i;

		memset(&got, 0, sizeof(got));
		mg_sse_init(&p, 1024);
		for (i = 0; i < n; i++)
			ck_assert_int_eq(mg_sse_feed(&p, tc->input + i, 1, collect, &got), MG_OK);
		mg_sse_free(&p);
		ck_assert_msg(strcmp(got.text, tc->expect) == 0, "%s (bytewise): got '%s'", tc->name, got.text);
	}
}
END_TEST

START_TEST(sse_line_cap)
{
	struct mg_sse p;
	struct collected got;
	char big[200];

	memset(&got, 0, sizeof(got));
	memset(big, 'x', sizeof(big));
	mg_sse_init(&p, 64);
	ck_assert_int_eq(mg_sse_feed(&p, "data: ", 6, collect, &got), MG_OK);
	ck_assert_int_eq(mg_sse_feed(&p, big, sizeof(big), collect, &got), MG_ERR_TOO_BIG);
	mg_sse_free(&p);
	ck_assert_int_eq(got.count, 0);
}
END_TEST

START_TEST(sse_event_cap)
{
	/* many short data lines must not grow one event past the cap */
	struct mg_sse p;
	struct collected got;
	enum mg_err rc = MG_OK;
	int i;

	memset(&got, 0, sizeof(got));
	mg_sse_init(&p, 64);
	for (i = 0; i < 100 && rc == MG_OK; i++)
		rc = mg_sse_feed(&p, "data: 0123456789\n", 17, collect, &got);
	mg_sse_free(&p);
	ck_assert_int_eq(rc, MG_ERR_TOO_BIG);
}
END_TEST

START_TEST(sse_stop)
{
	struct mg_sse p;
	struct collected got;
	static const char in[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";

	memset(&got, 0, sizeof(got));
	got.stop_after = 2;
	mg_sse_init(&p, 1024);
	ck_assert_int_eq(mg_sse_feed(&p, in, sizeof(in) - 1, collect, &got), MG_ERR_INVALID);
	mg_sse_free(&p);
	ck_assert_str_eq(got.text, "|1;|2;");
}
END_TEST

START_TEST(sse_free_null)
{
	mg_sse_free(NULL);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("sse");
	TCase *tc = tcase_create("parser");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, sse_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, sse_line_cap);
	tcase_add_test(tc, sse_event_cap);
	tcase_add_test(tc, sse_stop);
	tcase_add_test(tc, sse_free_null);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
