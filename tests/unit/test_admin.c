#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "unit.h"

/* One limit given with a value, and whether the operations take it. */
static const struct {
	enum mg_admin_limit which;
	const char *value;
	int ok;
} limits[] = {
	{ MG_LIMIT_RPM, "1", 1 },
	{ MG_LIMIT_RPM, "120", 1 },
	{ MG_LIMIT_RPM, "999999999", 1 },
	{ MG_LIMIT_RPM, "none", 1 },
	{ MG_LIMIT_RPM, "0", 0 },
	{ MG_LIMIT_RPM, "000", 0 },
	{ MG_LIMIT_RPM, "-5", 0 },
	{ MG_LIMIT_RPM, "1.5", 0 },
	{ MG_LIMIT_RPM, "ten", 0 },
	{ MG_LIMIT_RPM, "1000000000", 0 },
	{ MG_LIMIT_RPM, "", 0 },
	{ MG_LIMIT_RPM, " 5", 0 },
	{ MG_LIMIT_TPM, "50000", 1 },
	{ MG_LIMIT_TPM, "none", 1 },
	{ MG_LIMIT_TPM, "0", 0 },
	{ MG_LIMIT_TPM, "None", 0 },
	{ MG_LIMIT_SPEND_CAP, "25.50", 1 },
	{ MG_LIMIT_SPEND_CAP, "0", 1 },
	{ MG_LIMIT_SPEND_CAP, "0.00005", 1 },
	{ MG_LIMIT_SPEND_CAP, "none", 1 },
	{ MG_LIMIT_SPEND_CAP, "-1", 0 },
	{ MG_LIMIT_SPEND_CAP, "1e3", 0 },
	{ MG_LIMIT_SPEND_CAP, "5$", 0 },
	{ MG_LIMIT_SPEND_CAP, "", 0 },
	{ MG_LIMIT_PERIOD, "month", 1 },
	{ MG_LIMIT_PERIOD, "total", 1 },
	{ MG_LIMIT_PERIOD, "none", 0 },
	{ MG_LIMIT_PERIOD, "week", 0 },
	{ MG_LIMIT_PERIOD, "Month", 0 },
	{ MG_LIMIT_PERIOD, "", 0 },
	{ MG_LIMIT_MODELS, "mock/echo", 1 },
	{ MG_LIMIT_MODELS, "openai/gpt-4o-mini, mock/echo,mock/echo", 1 },
	{ MG_LIMIT_MODELS, "", 1 },
	{ MG_LIMIT_MODELS, "none", 1 },
};

START_TEST(admin_limit_table)
{
	struct mg_admin_limits l;
	enum mg_admin_limit bad = MG_LIMIT__COUNT;
	enum mg_err rc;

	memset(&l, 0, sizeof(l));
	l.value[limits[_i].which] = limits[_i].value;
	rc = mg_admin_limits_check(&l, &bad);
	ck_assert_msg(rc == (limits[_i].ok ? MG_OK : MG_ERR_INVALID), "limit %d '%s': want %s",
	    (int)limits[_i].which, limits[_i].value, limits[_i].ok ? "taken" : "refused");
	if (!limits[_i].ok)
		ck_assert_int_eq(bad, limits[_i].which);
}
END_TEST

/* No limit given is no change, and valid; the first bad one is named. */
START_TEST(admin_limits_first_bad)
{
	struct mg_admin_limits l;
	enum mg_admin_limit bad = MG_LIMIT__COUNT;

	memset(&l, 0, sizeof(l));
	ck_assert_int_eq(mg_admin_limits_check(&l, &bad), MG_OK);
	ck_assert_int_eq(bad, MG_LIMIT__COUNT);
	l.value[MG_LIMIT_TPM] = "99";
	l.value[MG_LIMIT_RPM] = "0";
	l.value[MG_LIMIT_PERIOD] = "week";
	ck_assert_int_eq(mg_admin_limits_check(&l, &bad), MG_ERR_INVALID);
	ck_assert_int_eq(bad, MG_LIMIT_RPM);
	l.value[MG_LIMIT_RPM] = "none";
	ck_assert_int_eq(mg_admin_limits_check(&l, &bad), MG_ERR_INVALID);
	ck_assert_int_eq(bad, MG_LIMIT_PERIOD);
}
END_TEST

/* Every limit has its name and its rule, which a face puts after the
 * name. */
START_TEST(admin_limit_rules)
{
	int i;

	for (i = 0; i < MG_LIMIT__COUNT; i++) {
		ck_assert_msg(strncmp(mg_admin_limit_rule((enum mg_admin_limit)i), "must be ", 8) == 0,
		    "limit %d", i);
		ck_assert_ptr_nonnull(mg_admin_limit_name((enum mg_admin_limit)i));
	}
	ck_assert_str_eq(mg_admin_limit_rule(MG_LIMIT_PERIOD), "must be month or total");
	ck_assert_str_eq(mg_admin_limit_rule(MG_LIMIT__COUNT), "is unknown");
	ck_assert_str_eq(mg_admin_limit_name(MG_LIMIT_SPEND_CAP), "spend_cap");
	ck_assert_ptr_null(mg_admin_limit_name(MG_LIMIT__COUNT));
}
END_TEST

/* A list freed before it was filled, twice, or NULL. */
START_TEST(admin_list_free_empty)
{
	struct mg_admin_list l;

	mg_admin_list_init(&l);
	mg_admin_list_free(&l);
	mg_admin_list_free(&l);
	mg_admin_list_free(NULL);
	ck_assert_uint_eq(l.n, 0);
	ck_assert_ptr_null(l.projects);
}
END_TEST

static Suite *
admin_suite(void)
{
	Suite *s = suite_create("admin");
	TCase *tc = tcase_create("limits");

	tcase_add_loop_test(tc, admin_limit_table, 0, (int)(sizeof(limits) / sizeof(limits[0])));
	tcase_add_test(tc, admin_limits_first_bad);
	tcase_add_test(tc, admin_limit_rules);
	tcase_add_test(tc, admin_list_free_empty);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(admin_suite());
}
