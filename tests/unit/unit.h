#ifndef MG_TEST_UNIT_H
#define MG_TEST_UNIT_H

#include <check.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

/* Runs every case of suite (taking it over) and gives main's exit status:
 * EXIT_SUCCESS when none failed. */
static inline int
mg_unit_run(Suite *suite)
{
	SRunner *sr = srunner_create(suite);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* A malloc'd string of n copies of c. */
static inline char *
mg_unit_repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* The JSON text parsed by json-c; the case fails when it does not parse. */
static inline json_object *
mg_unit_parse(const char *text)
{
	json_object *o = json_tokener_parse(text);

	ck_assert_msg(o != NULL, "test JSON does not parse: %s", text);
	return o;
}

#endif
