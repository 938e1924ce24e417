#include "config.h"

#include <check.h>
#include <stdlib.h>

#include "clock.h"
#include "unit.h"

static const struct {
	long sec, nsec;     /* start */
	long ms;            /* added */
	long want_sec, want_nsec;
} adds[] = {
	{ 10, 0, 0, 10, 0 },
	{ 10, 0, 10, 10, 10000000L },
	{ 10, 995000000L, 10, 11, 5000000L },        /* carries into the second */
	{ 10, 999999999L, 1, 11, 999999L },
	{ 10, 500000000L, 1500, 12, 0 },             /* whole seconds and a carry */
	{ 10, 123, 30000, 40, 123 },                 /* seconds only: nsec kept */
	{ 0, 999000000L, 999, 1, 998000000L },
};

START_TEST(add_ms_table)
{
	struct timespec ts = { adds[_i].sec, adds[_i].nsec };

	mg_clock_add_ms(&ts, adds[_i].ms);
	ck_assert_int_eq(ts.tv_sec, adds[_i].want_sec);
	ck_assert_int_eq(ts.tv_nsec, adds[_i].want_nsec);
}
END_TEST

static const struct {
	long a_sec, a_nsec, b_sec, b_nsec;
	long diff_ms;       /* a - b */
	int before;         /* a earlier than b */
} pairs[] = {
	{ 5, 0, 5, 0, 0, 0 },
	{ 5, 1, 5, 0, 0, 0 },
	{ 5, 0, 5, 1, 0, 1 },
	{ 6, 0, 5, 0, 1000, 0 },
	{ 5, 0, 6, 0, -1000, 1 },
	{ 6, 250000000L, 5, 750000000L, 500, 0 },
	{ 6, 0, 5, 999999999L, 1, 0 },               /* 1000 ms less 999.999 cut to 999 */
	{ 7, 999999999L, 7, 0, 999, 0 },             /* 999.999 ms cut toward zero */
	{ 7, 0, 7, 999999999L, -999, 1 },
	{ 4, 999999999L, 5, 0, -1, 1 },
};

START_TEST(diff_and_order_table)
{
	struct timespec a = { pairs[_i].a_sec, pairs[_i].a_nsec };
	struct timespec b = { pairs[_i].b_sec, pairs[_i].b_nsec };

	ck_assert_int_eq(mg_clock_diff_ms(&a, &b), pairs[_i].diff_ms);
	ck_assert_int_eq(mg_clock_before(&a, &b), pairs[_i].before);
}
END_TEST

START_TEST(monotonic_reads)
{
	struct timespec start, deadline;
	long s = mg_clock_seconds();

	mg_clock_now(CLOCK_MONOTONIC, &start);
	ck_assert(start.tv_nsec >= 0 && start.tv_nsec < 1000000000L);
	ck_assert_int_ge(mg_clock_ms_since(&start), 0);
	ck_assert_int_ge(start.tv_sec, s);
	mg_clock_deadline(CLOCK_MONOTONIC, 60000, &deadline);
	ck_assert(mg_clock_before(&start, &deadline));
	ck_assert_int_gt(mg_clock_ms_until(&deadline), 59000);
	ck_assert_int_le(mg_clock_ms_until(&deadline), 60000);
	ck_assert_int_le(mg_clock_ms_until(&start), 0);
}
END_TEST

START_TEST(wall_clock_is_the_epoch)
{
	struct timespec now;
	time_t t = time(NULL);

	mg_clock_now(CLOCK_REALTIME, &now);
	ck_assert_int_ge(now.tv_sec, t);
	ck_assert_int_le(now.tv_sec, t + 2);
}
END_TEST

/* ISO 8601 with microseconds, in UTC, against strftime of the same time. */
START_TEST(iso_us)
{
	static const struct {
		long long us;
		const char *want;
	} cases[] = {
		{ 0, "1970-01-01T00:00:00.000000Z" },
		{ 1, "1970-01-01T00:00:00.000001Z" },
		{ 1796609632705123LL, "2026-12-07T02:13:52.705123Z" },
		{ 951782400999999LL, "2000-02-29T00:00:00.999999Z" },
		{ -1, "1969-12-31T23:59:59.999999Z" },
		{ 253402300799999999LL, "9999-12-31T23:59:59.999999Z" },
	};
	char out[MG_CLOCK_ISO_US];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(mg_clock_iso_us(cases[i].us, out), 0);
		ck_assert_str_eq(out, cases[i].want);
	}
	ck_assert_int_eq(mg_clock_iso_us(253402300800000000LL, out), -1);   /* year 10000 */
}
END_TEST

static Suite *
clock_suite(void)
{
	Suite *s = suite_create("clock");
	TCase *tc;

	tc = tcase_create("arithmetic");
	tcase_add_loop_test(tc, add_ms_table, 0, (int)(sizeof(adds) / sizeof(adds[0])));
	tcase_add_loop_test(tc, diff_and_order_table, 0, (int)(sizeof(pairs) / sizeof(pairs[0])));
	tcase_add_test(tc, iso_us);
	suite_add_tcase(s, tc);

	tc = tcase_create("reads");
	tcase_add_test(tc, monotonic_reads);
	tcase_add_test(tc, wall_clock_is_the_epoch);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(clock_suite());
}
