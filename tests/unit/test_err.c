/* test_err.c -- Error codes and their text. */
#include "config.h"

#include <check.h>
#include <string.h>

#include "err.h"
#include "unit.h"

START_TEST(strerror_every_code)
{
	int i, j;

	for (i = 0; i < MG_ERR__COUNT; i++) {
		const char *s = mg_strerror((enum mg_err)i);

		ck_assert_ptr_nonnull(s);
		ck_assert_msg(s[0] != '\0', "code %d: empty text", i);
		ck_assert_msg(strcmp(s, "unknown error") != 0, "code %d has no text", i);
		for (j = 0; j < i; j++)
			ck_assert_msg(strcmp(s, mg_strerror((enum mg_err)j)) != 0, "codes %d and %d share '%s'", j, i, s);
	}
	ck_assert_str_eq(mg_strerror(MG_OK), "success");
	ck_assert_str_eq(mg_strerror(MG_ERR_TOO_BIG), "input too large");
	ck_assert_str_eq(mg_strerror(MG_ERR__COUNT), "unknown error");
	ck_assert_str_eq(mg_strerror((enum mg_err)1000), "unknown error");
	ck_assert_str_eq(mg_strerror((enum mg_err)-1), "unknown error");
}
END_TEST

static Suite *
err_suite(void)
{
	Suite *s = suite_create("err");
	TCase *tc = tcase_create("err");

	tcase_add_test(tc, strerror_every_code);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(err_suite());
}
