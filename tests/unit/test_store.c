/* tests/unit/test_store.c -- what the store reads out of Postgres's
 * answers without a database: the charges of a settlement batch. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "unit.h"

#define BATCH 1024

/* n usage records with ids req_0000.., and their pointers. */
static struct mg_usage *
batch(int n, const struct mg_usage **u)
{
	struct mg_usage *b = calloc((size_t)n, sizeof(*b));
	int i;

	ck_assert_ptr_nonnull(b);
	for (i = 0; i < n; i++) {
		snprintf(b[i].request_id, sizeof(b[i].request_id), "req_%04d", i);
		u[i] = &b[i];
	}
	return b;
}

/* The text of Postgres's two arrays for the requests order[0..k): the
 * id of each and a cost of (its number + 1) nano-USD. */
static void
answer(const int *order, int k, char **ids, char **costs)
{
	size_t room = (size_t)k * 24 + 3;
	size_t a = 0, c = 0;
	int j;

	*ids = malloc(room);
	*costs = malloc(room);
	ck_assert_ptr_nonnull(*ids);
	ck_assert_ptr_nonnull(*costs);
	(*ids)[a++] = '{';
	(*costs)[c++] = '{';
	for (j = 0; j < k; j++) {
		a += (size_t)sprintf(*ids + a, "%sreq_%04d", j ? "," : "", order[j]);
		c += (size_t)sprintf(*costs + c, "%s0.%09d", j ? "," : "", order[j] + 1);
	}
	strcpy(*ids + a, "}");
	strcpy(*costs + c, "}");
}

/* Postgres answered a batch in its order reversed (as a real plan did),
 * and shuffled: every request gets its own cost. */
START_TEST(charges_in_any_order)
{
	static const struct mg_usage *u[BATCH];
	static unsigned long long charged[BATCH];
	static int order[BATCH];
	struct mg_usage *b = batch(BATCH, u);
	char *ids, *costs;
	int i, round;

	for (round = 0; round < 2; round++) {
		for (i = 0; i < BATCH; i++)
			order[i] = BATCH - 1 - i;
		if (round == 1) {
			srand(7);
			for (i = BATCH - 1; i > 0; i--) {
				int j = rand() % (i + 1), t = order[i];

				order[i] = order[j];
				order[j] = t;
			}
		}
		answer(order, BATCH, &ids, &costs);
		memset(charged, 0, sizeof(charged));
		mg_store_read_charged(ids, costs, u, BATCH, charged);
		for (i = 0; i < BATCH; i++)
			ck_assert_uint_eq(charged[i], (unsigned long long)i + 1);
		free(ids);
		free(costs);
	}
	free(b);
}
END_TEST

/* Requests not in the answer (settled before) keep their charge; an id
 * of the answer that is not in the batch, or a prefix of one, charges
 * nothing; a batch of one is read too. */
START_TEST(charges_partial_and_strangers)
{
	const struct mg_usage *u[8];
	unsigned long long charged[8];
	struct mg_usage *b = batch(8, u);
	int i;

	for (i = 0; i < 8; i++)
		charged[i] = 99;
	mg_store_read_charged("{req_0005,req_9999,req_000,req_0001}",
	    "{0.000000006,0.5,0.25,0.000000002}", u, 8, charged);
	for (i = 0; i < 8; i++)
		ck_assert_uint_eq(charged[i], i == 5 ? 6 : i == 1 ? 2 : 99);

	charged[0] = 99;
	mg_store_read_charged("{req_0000}", "{0.000001}", u, 1, charged);
	ck_assert_uint_eq(charged[0], 1000);
	charged[0] = 99;
	mg_store_read_charged("{}", "{}", u, 1, charged);
	ck_assert_uint_eq(charged[0], 99);
	free(b);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("charged");

	tcase_add_test(tc, charges_in_any_order);
	tcase_add_test(tc, charges_partial_and_strangers);
	suite_add_tcase(s, tc);
	return mg_unit_run(s);
}
