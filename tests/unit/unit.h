#ifndef MG_TEST_UNIT_H
#define MG_TEST_UNIT_H

#include <check.h>
#include <stdlib.h>

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

#endif
