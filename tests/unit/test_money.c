#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"
#include "unit.h"

/* Each amount with its verdict as a person's amount (the configuration's
 * fallback prices, the CLI's --spend-cap) and as an upstream's number (a
 * reported cost, a catalog price). */
static const struct {
	const char *s;
	int plain;
	int number;
} amounts[] = {
	/* as the documented configuration, the CLI's help and the tests give them */
	{ "0", 1, 1 },
	{ "0.00001", 1, 1 },
	{ "0.00003", 1, 1 },
	{ "25", 1, 1 },
	{ "0.50", 1, 1 },
	{ "25.50", 1, 1 },
	{ "0.00005", 1, 1 },
	{ "1000000000", 1, 1 },
	{ "0.0000170", 1, 1 },
	{ "0.00000015", 1, 1 },
	{ "17", 1, 1 },
	{ "007", 1, 1 },
	/* exponents: from an upstream only, one to three digits */
	{ "1e-7", 0, 1 },
	{ "2e-6", 0, 1 },
	{ "1E+10", 0, 1 },
	{ "2.5e3", 0, 1 },
	{ "1e3", 0, 1 },
	{ "1e-5", 0, 1 },
	{ "1e999", 0, 1 },
	{ "1e1000", 0, 0 },
	{ "1e", 0, 0 },
	{ "1e+", 0, 0 },
	{ "1e-", 0, 0 },
	{ "e5", 0, 0 },
	{ "1e5.5", 0, 0 },
	{ "1.e5", 0, 0 },
	/* length: at most MG_MONEY_MAX - 1 characters */
	{ "123456789012345678901234567890123456789012345.0", 1, 1 },   /* 47 */
	{ "123456789012345678901234567890123456789012345.00", 0, 0 },  /* 48 */
	{ "1234567890123456789012345678901234567890", 1, 1 },          /* 40 */
	/* no sign: an amount is never negative, and none is written with + */
	{ "-1", 0, 0 },
	{ "-0.1", 0, 0 },
	{ "-1.5", 0, 0 },
	{ "+2", 0, 0 },
	{ "-0", 0, 0 },
	{ "-1e-7", 0, 0 },
	{ "--1", 0, 0 },
	{ "+-1", 0, 0 },
	/* a decimal point has digits on both sides */
	{ ".5", 0, 0 },
	{ "5.", 0, 0 },
	{ ".", 0, 0 },
	{ "1.2.3", 0, 0 },
	{ "1..2", 0, 0 },
	/* anything else */
	{ "", 0, 0 },
	{ "-", 0, 0 },
	{ "+", 0, 0 },
	{ " 1", 0, 0 },
	{ "1 ", 0, 0 },
	{ "1,5", 0, 0 },
	{ "5$", 0, 0 },
	{ "$5", 0, 0 },
	{ "0x10", 0, 0 },
	{ "NaN", 0, 0 },
	{ "Infinity", 0, 0 },
	{ "-Infinity", 0, 0 },
	{ "none", 0, 0 },
	{ "abc", 0, 0 },
	{ "1;DROP TABLE usage_events", 0, 0 },
	{ "'1'", 0, 0 },
	{ "1\n", 0, 0 },
};

START_TEST(money_table)
{
	ck_assert_msg(mg_money_valid(amounts[_i].s, MG_MONEY_PLAIN) == amounts[_i].plain,
	    "'%s' as plain: want %d", amounts[_i].s, amounts[_i].plain);
	ck_assert_msg(mg_money_valid(amounts[_i].s, MG_MONEY_NUMBER) == amounts[_i].number,
	    "'%s' as number: want %d", amounts[_i].s, amounts[_i].number);
}
END_TEST

/* The length is looked at before anything else, and no further than needed. */
START_TEST(money_long_text)
{
	char s[4096];

	memset(s, '1', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	ck_assert_int_eq(mg_money_valid(s, MG_MONEY_PLAIN), 0);
	s[MG_MONEY_MAX - 1] = '\0';
	ck_assert_int_eq(mg_money_valid(s, MG_MONEY_NUMBER), 1);
}
END_TEST

/* Numeric text as Postgres writes it, in 1e-9 USD. */
static const struct {
	const char *s;
	int ok;
	long long nano;
} numerics[] = {
	{ "0", 1, 0 },
	{ "0.000042", 1, 42000 },
	{ "-0.000042", 1, -42000 },
	{ "12.5", 1, 12500000000LL },
	{ "0.000000001", 1, 1 },
	{ "-0.000000001", 1, -1 },
	/* half away from zero, whatever the length of the fraction */
	{ "0.00000000049999999999999999999999999999999999999999", 1, 0 },
	{ "0.00000000050000000000000000000000000000000000000000", 1, 1 },
	{ "-0.0000000005", 1, -1 },
	{ "0.00073500000000000000000000000000000000000000000000000000", 1, 735000 },
	{ "9223372036.854775807", 1, 9223372036854775807LL },
	{ "9223372036.854775808", 0, 0 },
	{ "123456789012345678901234567890123456789012345678", 0, 0 },
	{ "", 0, 0 },
	{ "-", 0, 0 },
	{ "1e-7", 0, 0 },
	{ "NaN", 0, 0 },
	{ "--1", 0, 0 },
};

START_TEST(money_numeric_table)
{
	long long v = 7;
	int rc = mg_money_numeric_nano(numerics[_i].s, strlen(numerics[_i].s), &v);

	ck_assert_msg((rc == 0) == numerics[_i].ok, "'%s': want %s", numerics[_i].s,
	    numerics[_i].ok ? "an amount" : "none");
	if (numerics[_i].ok)
		ck_assert_int_eq(v, numerics[_i].nano);
	else
		ck_assert_int_eq(v, 7);
}
END_TEST

/* The text need not end where the amount does (an element of an array). */
START_TEST(money_numeric_in_array)
{
	static const char arr[] = "{0.5,0.000000002}";
	long long v = 0;

	ck_assert_int_eq(mg_money_numeric_nano(arr + 1, 3, &v), 0);
	ck_assert_int_eq(v, 500000000);
	ck_assert_int_eq(mg_money_numeric_nano(arr + 5, 11, &v), 0);
	ck_assert_int_eq(v, 2);
}
END_TEST

/* Integer units of 10^-scale USD as decimal text, and the room it needs. */
START_TEST(money_format_units)
{
	static const struct {
		long long v;
		int scale;
		const char *want;
	} cases[] = {
		{ 0, 6, "0.000000" },
		{ 1, 6, "0.000001" },
		{ -1, 6, "-0.000001" },
		{ 1234567, 6, "1.234567" },
		{ 5, 0, "5" },
		{ -5, 0, "-5" },
		{ 120000000000LL, 12, "0.120000000000" },
		{ -9223372036854775807LL - 1, 18, "-9.223372036854775808" },
		{ 9223372036854775807LL, 0, "9223372036854775807" },
	};
	char out[32];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(mg_money_format_units(cases[i].v, cases[i].scale, out, sizeof(out)),
		    0);
		ck_assert_str_eq(out, cases[i].want);
	}
	ck_assert_int_eq(mg_money_format_units(1234567, 6, out, 9), 0);     /* 8 and the NUL */
	ck_assert_int_eq(mg_money_format_units(1234567, 6, out, 8), -1);
	ck_assert_int_eq(mg_money_format_units(1, 19, out, sizeof(out)), -1);
	ck_assert_int_eq(mg_money_format_units(1, -1, out, sizeof(out)), -1);
}
END_TEST

static Suite *
money_suite(void)
{
	Suite *s = suite_create("money");
	TCase *tc = tcase_create("valid");

	tcase_add_loop_test(tc, money_table, 0, (int)(sizeof(amounts) / sizeof(amounts[0])));
	tcase_add_test(tc, money_long_text);
	tcase_add_loop_test(tc, money_numeric_table, 0,
	    (int)(sizeof(numerics) / sizeof(numerics[0])));
	tcase_add_test(tc, money_numeric_in_array);
	tcase_add_test(tc, money_format_units);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(money_suite());
}
