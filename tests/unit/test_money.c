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

static Suite *
money_suite(void)
{
	Suite *s = suite_create("money");
	TCase *tc = tcase_create("valid");

	tcase_add_loop_test(tc, money_table, 0, (int)(sizeof(amounts) / sizeof(amounts[0])));
	tcase_add_test(tc, money_long_text);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(money_suite());
}
