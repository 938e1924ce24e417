#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"
#include "money.h"
#include "unit.h"

/* A scoreboard in a file of its own, removed at the end of the case. */
static char sb_path[64];

static struct mg_scoreboard *
sb_new(void)
{
	char err[256];
	struct mg_scoreboard *sb;
	int fd;

	snprintf(sb_path, sizeof(sb_path), "/tmp/mg-test-metrics.XXXXXX");
	fd = mkstemp(sb_path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	sb = mg_scoreboard_open(sb_path, err, sizeof(err));
	ck_assert_msg(sb != NULL, "%s", err);
	return sb;
}

static void
sb_done(struct mg_scoreboard *sb)
{
	mg_scoreboard_close(sb);
	unlink(sb_path);
}

/* The exposition of sb, malloc'd. */
static char *
scrape(struct mg_scoreboard *sb, int per_model, int per_project)
{
	static const char *const outcomes[] = { "ok", "connect" };
	struct mg_metrics_view v = { "1.2.3", per_model, per_project, 2, { "alpha", "beta" },
	    outcomes, 2 };
	struct mg_buf out;
	char *text;

	mg_buf_init(&out, 1u << 22);
	ck_assert_int_eq(mg_scoreboard_write(sb, &v, &out), MG_OK);
	text = strdup(mg_buf_str(&out));
	mg_buf_free(&out);
	ck_assert_ptr_nonnull(text);
	return text;
}

/* The value of the series whose line starts with series (name and
 * labels, as written), as text; "" when absent. */
static const char *
series(const char *text, const char *name, char *out, size_t len)
{
	size_t n = strlen(name);
	const char *p = text;

	out[0] = '\0';
	while ((p = strstr(p, name)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ') {
			snprintf(out, len, "%.*s", (int)strcspn(p + n + 1, "\n"), p + n + 1);
			return out;
		}
		p += n;
	}
	return out;
}

#define CHECK_SERIES(text, name, want) \
	do { \
		char v_[64]; \
		ck_assert_str_eq(series(text, name, v_, sizeof(v_)), want); \
	} while (0)

static int dead_pid;

/* Every process is alive but dead_pid. */
static int
alive_but(pid_t pid, unsigned long long start)
{
	(void)start;
	return pid != dead_pid;
}

START_TEST(sums_over_slots)
{
	struct mg_scoreboard *sb = sb_new();
	int a = mg_scoreboard_claim(sb, 1001, 1), b = mg_scoreboard_claim(sb, 1002, 1);
	char *t;

	ck_assert_int_gt(a, 0);
	ck_assert_int_gt(b, 0);
	ck_assert_int_ne(a, b);
	mg_scoreboard_add(sb, a, MG_M_TOKENS_PROMPT, 10);
	mg_scoreboard_add(sb, b, MG_M_TOKENS_PROMPT, 32);
	mg_scoreboard_charge(sb, a, NULL, NULL, 1500000001ull);
	mg_scoreboard_charge(sb, b, NULL, NULL, 1);
	mg_scoreboard_add(sb, a, MG_M_RECON_DRIFT_UP_NANOUSD, 20);
	mg_scoreboard_add(sb, b, MG_M_RECON_DRIFT_UP_NANOUSD, 1000000000ull);
	mg_scoreboard_add(sb, b, MG_M_RECON_DRIFT_DOWN_NANOUSD, 7);
	mg_scoreboard_request(sb, a, MG_MEP_CHAT, 200, 0);
	mg_scoreboard_request(sb, b, MG_MEP_CHAT, 201, 0);
	mg_scoreboard_request(sb, b, MG_MEP_CHAT, 429, 1);
	mg_scoreboard_gauge(sb, a, MG_G_STREAMS_OPEN, 3);
	mg_scoreboard_gauge(sb, b, MG_G_STREAMS_OPEN, 2);
	mg_scoreboard_observe(sb, a, MG_H_REQUEST_CHAT, 7000);      /* 7 ms */
	mg_scoreboard_observe(sb, b, MG_H_REQUEST_CHAT, 400000000); /* 400 s: +Inf */
	t = scrape(sb, 0, 0);
	/* not read yet: no such series */
	ck_assert_ptr_null(strstr(t, "modelgate_reconcile_watermark_timestamp_seconds"));
	free(t);
	mg_scoreboard_watermark(sb, 1700000000);
	t = scrape(sb, 0, 0);
	CHECK_SERIES(t, "modelgate_reconcile_watermark_timestamp_seconds", "1700000000");
	CHECK_SERIES(t, "modelgate_reconcile_adjustments_usd_total{direction=\"up\"}", "1.000000020");
	CHECK_SERIES(t, "modelgate_reconcile_adjustments_usd_total{direction=\"down\"}", "0.000000007");
	CHECK_SERIES(t, "modelgate_tokens_total{type=\"prompt\"}", "42");
	CHECK_SERIES(t, "modelgate_cost_usd_total", "1.500000002");
	CHECK_SERIES(t, "modelgate_requests_total{endpoint=\"chat.completions\",status_class=\"2xx\",stream=\"false\"}", "2");
	CHECK_SERIES(t, "modelgate_requests_total{endpoint=\"chat.completions\",status_class=\"4xx\",stream=\"true\"}", "1");
	CHECK_SERIES(t, "modelgate_streams_open", "5");
	CHECK_SERIES(t, "modelgate_responder_processes", "2");
	CHECK_SERIES(t, "modelgate_request_duration_seconds_bucket{operation=\"chat\",le=\"0.005\"}", "0");
	CHECK_SERIES(t, "modelgate_request_duration_seconds_bucket{operation=\"chat\",le=\"0.01\"}", "1");
	CHECK_SERIES(t, "modelgate_request_duration_seconds_bucket{operation=\"chat\",le=\"300\"}", "1");
	CHECK_SERIES(t, "modelgate_request_duration_seconds_bucket{operation=\"chat\",le=\"+Inf\"}", "2");
	CHECK_SERIES(t, "modelgate_request_duration_seconds_count{operation=\"chat\"}", "2");
	CHECK_SERIES(t, "modelgate_request_duration_seconds_sum{operation=\"chat\"}", "400.007000");
	CHECK_SERIES(t, "modelgate_build_info{version=\"1.2.3\"}", "1");
	ck_assert_ptr_nonnull(strstr(t, "# TYPE modelgate_requests_total counter\n"));
	ck_assert_ptr_nonnull(strstr(t, "# TYPE modelgate_request_duration_seconds histogram\n"));
	ck_assert_ptr_null(strstr(t, "modelgate_model_requests_total"));
	free(t);
	sb_done(sb);
}
END_TEST

START_TEST(retired_folding)
{
	struct mg_scoreboard *sb = sb_new();
	int a = mg_scoreboard_claim(sb, 2001, 1), b = mg_scoreboard_claim(sb, 2002, 1), c;
	char *t;

	mg_scoreboard_add(sb, a, MG_M_SETTLE_QUEUED, 5);
	mg_scoreboard_add(sb, b, MG_M_SETTLE_QUEUED, 7);
	mg_scoreboard_gauge(sb, b, MG_G_IN_FLIGHT, 4);
	mg_scoreboard_observe(sb, b, MG_H_ADMIT_BATCH, 3);
	mg_scoreboard_usage(sb, b, "m1", "p1", 1, 2);
	mg_scoreboard_charge(sb, b, "m1", "p1", 3);
	mg_scoreboard_charge(sb, b, NULL, NULL, 4);   /* the reaper's: no labels */
	mg_scoreboard_upstream(sb, a, 0, 0);
	mg_scoreboard_upstream(sb, b, 0, 0);
	mg_scoreboard_upstream(sb, b, 1, 1);
	mg_scoreboard_upstream(sb, b, 1, MG_METRICS_UPSTREAM_COOLDOWN);
	mg_scoreboard_upstream(sb, b, MG_METRICS_UPSTREAMS, 0);   /* out of range: ignored */
	dead_pid = 2002;
	ck_assert_int_eq(mg_scoreboard_reap(sb, alive_but), 1);
	/* nothing more to fold */
	ck_assert_int_eq(mg_scoreboard_reap(sb, alive_but), 0);
	t = scrape(sb, 1, 1);
	CHECK_SERIES(t, "modelgate_settlements_queued_total", "12");
	/* what the dead process had in flight is gone */
	CHECK_SERIES(t, "modelgate_requests_in_flight", "0");
	CHECK_SERIES(t, "modelgate_responder_processes", "1");
	CHECK_SERIES(t, "modelgate_admission_batch_size_bucket{le=\"4\"}", "1");
	CHECK_SERIES(t, "modelgate_admission_batch_size_sum", "3");
	CHECK_SERIES(t, "modelgate_model_requests_total{model=\"m1\"}", "1");
	CHECK_SERIES(t, "modelgate_project_cost_usd_total{project=\"p1\"}", "0.000000003");
	CHECK_SERIES(t, "modelgate_model_cost_usd_total{model=\"m1\"}", "0.000000003");
	CHECK_SERIES(t, "modelgate_cost_usd_total", "0.000000007");
	/* the upstreams' calls and cooldowns: every process, the dead one's kept */
	CHECK_SERIES(t, "modelgate_upstream_calls_total{upstream=\"alpha\",outcome=\"ok\"}", "2");
	CHECK_SERIES(t, "modelgate_upstream_calls_total{upstream=\"alpha\",outcome=\"connect\"}",
	    "0");
	CHECK_SERIES(t, "modelgate_upstream_calls_total{upstream=\"beta\",outcome=\"connect\"}",
	    "1");
	CHECK_SERIES(t, "modelgate_upstream_cooldowns_total{upstream=\"beta\"}", "1");
	CHECK_SERIES(t, "modelgate_upstream_cooldowns_total{upstream=\"alpha\"}", "0");
	free(t);
	/* the freed slot is taken again; the counts stay */
	c = mg_scoreboard_claim(sb, 2003, 1);
	ck_assert_int_eq(c, b);
	mg_scoreboard_add(sb, c, MG_M_SETTLE_QUEUED, 1);
	t = scrape(sb, 0, 0);
	CHECK_SERIES(t, "modelgate_settlements_queued_total", "13");
	free(t);
	/* a clean exit folds its own slot */
	mg_scoreboard_retire(sb, a);
	t = scrape(sb, 0, 0);
	CHECK_SERIES(t, "modelgate_settlements_queued_total", "13");
	CHECK_SERIES(t, "modelgate_responder_processes", "1");
	free(t);
	sb_done(sb);
}
END_TEST

START_TEST(labels_bounded_and_escaped)
{
	struct mg_scoreboard *sb = sb_new();
	int a = mg_scoreboard_claim(sb, 3001, 1), i;
	char name[32], *t;

	mg_scoreboard_usage(sb, a, "evil\"\n} 1\nx\\", NULL, 1, 1);
	for (i = 0; i < MG_METRICS_LABELS + 5; i++) {
		snprintf(name, sizeof(name), "model-%d", i);
		mg_scoreboard_usage(sb, a, name, NULL, 1, 0);
	}
	t = scrape(sb, 1, 0);
	CHECK_SERIES(t, "modelgate_model_requests_total{model=\"evil\\\"\\n} 1\\nx\\\\\"}", "1");
	/* 32 names kept (the evil one among them), six counted as other */
	CHECK_SERIES(t, "modelgate_model_requests_total{model=\"other\"}", "6");
	/* no line starts with what came after the newline */
	ck_assert_ptr_null(strstr(t, "\nx\\"));
	free(t);
	sb_done(sb);
}
END_TEST

static const struct {
	const char *in;
	const char *out;
} escapes[] = {
	{ "plain/model-1", "plain/model-1" },
	{ "a\"b", "a\\\"b" },
	{ "a\\b", "a\\\\b" },
	{ "a\nb", "a\\nb" },
	{ "tab\there", "tab\xef\xbf\xbdhere" },
	{ "caf\xc3\xa9", "caf\xc3\xa9" },
	{ "bad\xff", "bad\xef\xbf\xbd" },
	{ "cut\xe2\x82", "cut\xef\xbf\xbd\xef\xbf\xbd" },
	{ "overlong\xc0\xaf", "overlong\xef\xbf\xbd\xef\xbf\xbd" },
	{ "surrogate\xed\xa0\x80", "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
};

START_TEST(label_escape)
{
	struct mg_buf out;

	mg_buf_init(&out, 1024);
	ck_assert_int_eq(mg_metrics_label_escape(&out, escapes[_i].in), MG_OK);
	ck_assert_str_eq(mg_buf_str(&out), escapes[_i].out);
	mg_buf_free(&out);
}
END_TEST

static const struct {
	const char *list;
	int ok;
	const char *addr;
	int allowed;
} allows[] = {
	{ "127.0.0.0/8, ::1", 1, "127.0.0.1", 1 },
	{ "127.0.0.0/8, ::1", 1, "127.9.8.7", 1 },
	{ "127.0.0.0/8, ::1", 1, "::1", 1 },
	{ "127.0.0.0/8, ::1", 1, "::ffff:127.0.0.1", 1 },
	{ "127.0.0.0/8, ::1", 1, "10.0.0.1", 0 },
	{ "127.0.0.0/8, ::1", 1, "::2", 0 },
	{ "127.0.0.0/8, ::1", 1, "", 0 },
	{ "127.0.0.0/8, ::1", 1, "not an address", 0 },
	{ "10.1.0.0/20", 1, "10.1.15.255", 1 },
	{ "10.1.0.0/20", 1, "10.1.16.0", 0 },
	{ "fd00::/8 192.168.1.5", 1, "fd12:3456::1", 1 },
	{ "fd00::/8 192.168.1.5", 1, "192.168.1.5", 1 },
	{ "fd00::/8 192.168.1.5", 1, "192.168.1.6", 0 },
	{ "0.0.0.0/0", 1, "8.8.8.8", 1 },
	{ "", 1, "127.0.0.1", 0 },
	{ "127.0.0.1/33", 0, NULL, 0 },
	{ "127.0.0.1/", 0, NULL, 0 },
	{ "localhost", 0, NULL, 0 },
	{ "::1/129", 0, NULL, 0 },
	{ "1.2.3.4/8x", 0, NULL, 0 },
};

START_TEST(allow_list)
{
	struct mg_netmask nets[MG_METRICS_ALLOW_MAX];
	char err[160];
	int n = 0, rc;

	rc = mg_metrics_allow_parse(allows[_i].list, nets, MG_METRICS_ALLOW_MAX, &n, err,
	    sizeof(err));
	ck_assert_int_eq(rc == 0, allows[_i].ok);
	if (allows[_i].ok)
		ck_assert_int_eq(mg_metrics_allowed(nets, n, allows[_i].addr), allows[_i].allowed);
	else
		ck_assert_ptr_nonnull(strstr(err, "not an address"));
}
END_TEST

static const struct {
	const char *in;
	int ok;
	unsigned long long nano;
} nanos[] = {
	{ "0", 1, 0 },
	{ "1", 1, 1000000000ull },
	{ "0.0000171", 1, 17100 },
	{ "0.000000001", 1, 1 },
	{ "0.0000000004", 1, 0 },
	{ "0.0000000005", 1, 1 },
	{ "1.9999999995", 1, 2000000000ull },
	{ "1e-7", 1, 100 },
	{ "2.5E+3", 1, 2500000000000ull },
	{ "18446744073.709551615", 1, 18446744073709551615ull },
	{ "18446744073.709551616", 0, 0 },
	{ "1e999", 0, 0 },
	{ "-1", 0, 0 },
	{ "abc", 0, 0 },
};

START_TEST(money_nano)
{
	unsigned long long v = 0;
	int rc = mg_money_nano(nanos[_i].in, &v);

	ck_assert_int_eq(rc == 0, nanos[_i].ok);
	if (nanos[_i].ok)
		ck_assert_uint_eq(v, nanos[_i].nano);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof(a[0])))

int
main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("scoreboard");

	tcase_add_test(tc, sums_over_slots);
	tcase_add_test(tc, retired_folding);
	tcase_add_test(tc, labels_bounded_and_escaped);
	tcase_add_loop_test(tc, label_escape, 0, N(escapes));
	tcase_add_loop_test(tc, allow_list, 0, N(allows));
	tcase_add_loop_test(tc, money_nano, 0, N(nanos));
	suite_add_tcase(s, tc);
	return mg_unit_run(s);
}
