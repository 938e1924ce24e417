#include "config.h"

#include <check.h>
#include <string.h>

#include "text.h"
#include "unit.h"

/* Printable UTF-8 or not: a table of byte strings. */
static const struct {
	const char *text;
	size_t len;          /* 0: strlen(text) */
	int printable;
	size_t first;        /* mg_text_char of the first character */
} cases[] = {
	{ "openai/gpt-4o-mini", 0, 1, 1 },
	{ "", 0, 1, 0 },
	{ "caf\xc3\xa9", 0, 1, 1 },                     /* U+00E9 */
	{ "\xc2\xa0", 0, 1, 2 },                        /* U+00A0, first past C1 */
	{ "\xe2\x80\xa6", 0, 1, 3 },                    /* U+2026 */
	{ "\xef\xbf\xbd", 0, 1, 3 },                    /* U+FFFD */
	{ "\xf0\x9f\x98\x80", 0, 1, 4 },                /* U+1F600 */
	{ "\xf4\x8f\xbf\xbf", 0, 1, 4 },                /* U+10FFFF */
	{ "a\r\nb", 0, 0, 1 },
	{ "\n", 0, 0, 0 },
	{ "a\x01", 0, 0, 1 },
	{ "\x1b[2J", 0, 0, 0 },
	{ "\x7f", 0, 0, 0 },
	{ "a\0b", 3, 0, 1 },
	{ "\xc2\x80", 0, 0, 0 },                        /* U+0080, C1 */
	{ "\xc2\x9b", 0, 0, 0 },                        /* U+009B, CSI */
	{ "\xc2\x9f", 0, 0, 0 },
	{ "\xe2\x80\xa8", 0, 0, 0 },                    /* U+2028 */
	{ "\xe2\x80\xa9", 0, 0, 0 },                    /* U+2029 */
	{ "\xff", 0, 0, 0 },
	{ "\xfe\xff", 0, 0, 0 },
	{ "\x80", 0, 0, 0 },                            /* a lone continuation */
	{ "\xc3\x28", 0, 0, 0 },                        /* a broken pair */
	{ "\xc3", 0, 0, 0 },                            /* cut short */
	{ "\xe2\x80", 0, 0, 0 },
	{ "\xc0\xaf", 0, 0, 0 },                        /* overlong '/' */
	{ "\xc1\xbf", 0, 0, 0 },
	{ "\xe0\x80\xaf", 0, 0, 0 },                    /* overlong, 3 bytes */
	{ "\xf0\x80\x80\xaf", 0, 0, 0 },                /* overlong, 4 bytes */
	{ "\xed\xa0\x80", 0, 0, 0 },                    /* U+D800, a surrogate */
	{ "\xed\xbf\xbf", 0, 0, 0 },
	{ "\xf4\x90\x80\x80", 0, 0, 0 },                /* past U+10FFFF */
	{ "\xf5\x80\x80\x80", 0, 0, 0 },
	{ "ok\xe2\x80\xa6\xff", 0, 0, 1 },
};

START_TEST(printable_table)
{
	const char *t = cases[_i].text;
	size_t n = cases[_i].len != 0 ? cases[_i].len : strlen(t);

	ck_assert_msg(mg_text_printable(t, n) == cases[_i].printable, "case %d", _i);
	ck_assert_msg(mg_text_char(t, n) == cases[_i].first, "case %d: first %zu", _i,
	    mg_text_char(t, n));
}
END_TEST

/* A character cut by the end of what may be read is not one. */
START_TEST(char_honours_n)
{
	ck_assert_uint_eq(mg_text_char("\xe2\x80\xa6", 2), 0);
	ck_assert_uint_eq(mg_text_char("\xf0\x9f\x98\x80", 3), 0);
	ck_assert_uint_eq(mg_text_char("a", 0), 0);
	ck_assert_int_eq(mg_text_printable("ab\n", 2), 1);
}
END_TEST

START_TEST(scrub)
{
	char s[] = "id-\r\n\x1b[31m\xff\xc3\xa9\xc2\x9b\xed\xa0\x80ok";

	mg_text_scrub(s);
	ck_assert_str_eq(s, "id-???[31m?\xc3\xa9?????ok");
	ck_assert_int_eq(mg_text_printable(s, strlen(s)), 1);
}
END_TEST

/* A bounded copy: whole when it fits, cut to size - 1 bytes otherwise. */
START_TEST(copy)
{
	char d[8];

	memset(d, 'x', sizeof(d));
	mg_text_copy(d, sizeof(d), "abc");
	ck_assert_str_eq(d, "abc");
	mg_text_copy(d, sizeof(d), "");
	ck_assert_str_eq(d, "");
	mg_text_copy(d, sizeof(d), "1234567");
	ck_assert_str_eq(d, "1234567");
	mg_text_copy(d, sizeof(d), "123456789");
	ck_assert_str_eq(d, "1234567");
	mg_text_copy(d, 1, "abc");
	ck_assert_str_eq(d, "");
	ck_assert_str_eq(d + 1, "234567");
	mg_text_copy(d, sizeof(d), d + 1);     /* overlapping */
	ck_assert_str_eq(d, "234567");
}
END_TEST

static Suite *
text_suite(void)
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("utf8");

	tcase_add_loop_test(tc, printable_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, char_honours_n);
	tcase_add_test(tc, scrub);
	tcase_add_test(tc, copy);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(text_suite());
}
