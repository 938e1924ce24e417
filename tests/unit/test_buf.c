/* test_buf.c -- Bounded buffers. */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "unit.h"

START_TEST(buf_empty)
{
	struct mg_buf b;

	mg_buf_init(&b, 100);
	ck_assert_str_eq(mg_buf_str(&b), "");
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(mg_buf_add(&b, "", 0), MG_OK);
	ck_assert_str_eq(mg_buf_str(&b), "");
	mg_buf_free(&b);
	ck_assert_str_eq(mg_buf_str(&b), "");
	mg_buf_free(&b);
	mg_buf_free(NULL);
}
END_TEST

START_TEST(buf_cap_enforced)
{
	struct mg_buf b;

	mg_buf_init(&b, 10);
	ck_assert_int_eq(mg_buf_adds(&b, "hello"), MG_OK);
	ck_assert_int_eq(mg_buf_add(&b, "worlds", 6), MG_ERR_TOO_BIG);
	ck_assert_uint_eq(b.len, 5);
	ck_assert_str_eq(mg_buf_str(&b), "hello");
	ck_assert_int_eq(mg_buf_adds(&b, "world"), MG_OK);   /* exactly the cap */
	ck_assert_uint_eq(b.len, 10);
	ck_assert_str_eq(mg_buf_str(&b), "helloworld");
	ck_assert_int_eq(mg_buf_add(&b, "!", 1), MG_ERR_TOO_BIG);
	ck_assert_int_eq(mg_buf_addf(&b, "%d", 1), MG_ERR_TOO_BIG);
	ck_assert_uint_eq(b.len, 10);
	ck_assert_str_eq(mg_buf_str(&b), "helloworld");
	ck_assert_int_eq(mg_buf_add(&b, "", 0), MG_OK);
	ck_assert_uint_le(b.cap, 11);
	mg_buf_free(&b);
}
END_TEST

START_TEST(buf_cap_zero)
{
	struct mg_buf b;

	mg_buf_init(&b, 0);
	ck_assert_int_eq(mg_buf_add(&b, "", 0), MG_OK);
	ck_assert_int_eq(mg_buf_adds(&b, "x"), MG_ERR_TOO_BIG);
	ck_assert_str_eq(mg_buf_str(&b), "");
	mg_buf_free(&b);
}
END_TEST

START_TEST(buf_addf)
{
	struct mg_buf b;

	mg_buf_init(&b, 64);
	ck_assert_int_eq(mg_buf_addf(&b, "%s=%d;", "a", 42), MG_OK);
	ck_assert_int_eq(mg_buf_addf(&b, "%05.1f|%c", 3.14159, 'z'), MG_OK);
	ck_assert_str_eq(mg_buf_str(&b), "a=42;003.1|z");
	ck_assert_uint_eq(b.len, strlen("a=42;003.1|z"));
	ck_assert_int_eq(mg_buf_addf(&b, "%s", ""), MG_OK);
	ck_assert_uint_eq(b.len, 12);
	/* 52 more fit, 53 do not */
	ck_assert_int_eq(mg_buf_addf(&b, "%053d", 0), MG_ERR_TOO_BIG);
	ck_assert_str_eq(mg_buf_str(&b), "a=42;003.1|z");
	ck_assert_int_eq(mg_buf_addf(&b, "%052d", 0), MG_OK);
	ck_assert_uint_eq(b.len, 64);
	mg_buf_free(&b);
}
END_TEST

START_TEST(buf_reset_keeps_memory)
{
	struct mg_buf b;
	char *data;
	size_t cap;

	mg_buf_init(&b, 1024);
	mg_buf_reset(&b);
	ck_assert_str_eq(mg_buf_str(&b), "");
	ck_assert_int_eq(mg_buf_adds(&b, "some text"), MG_OK);
	data = b.data;
	cap = b.cap;
	mg_buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(mg_buf_str(&b), "");
	ck_assert_ptr_eq(b.data, data);
	ck_assert_uint_eq(b.cap, cap);
	ck_assert_int_eq(mg_buf_adds(&b, "new"), MG_OK);
	ck_assert_str_eq(mg_buf_str(&b), "new");
	mg_buf_free(&b);
	/* reusable after free + init */
	mg_buf_init(&b, 8);
	ck_assert_int_eq(mg_buf_adds(&b, "again"), MG_OK);
	ck_assert_str_eq(mg_buf_str(&b), "again");
	mg_buf_free(&b);
}
END_TEST

START_TEST(buf_grows_and_binary)
{
	struct mg_buf b;
	size_t i;

	mg_buf_init(&b, 1 << 20);
	for (i = 0; i < 10000; i++) {
		char c = (char)('a' + i % 26);

		ck_assert_int_eq(mg_buf_add(&b, &c, 1), MG_OK);
	}
	ck_assert_uint_eq(b.len, 10000);
	ck_assert_uint_ge(b.cap, 10001);
	for (i = 0; i < 10000; i++)
		ck_assert_int_eq(b.data[i], (char)('a' + i % 26));
	ck_assert_int_eq(b.data[10000], '\0');
	mg_buf_reset(&b);
	ck_assert_int_eq(mg_buf_add(&b, "a\0b", 3), MG_OK);
	ck_assert_uint_eq(b.len, 3);
	ck_assert(memcmp(b.data, "a\0b", 4) == 0);
	mg_buf_free(&b);
}
END_TEST

/* mg_buf_shrink: a buffer that grew past keep gives its memory back, a
 * smaller one keeps it; either way it is empty and usable afterwards. */
struct shrink_case {
	size_t len;         /* bytes held before */
	size_t keep;
	int freed;
};

static const struct shrink_case shrinks[] = {
	{ 0, 0, 1 },            /* never allocated */
	{ 5, 4096, 0 },
	{ 5, 0, 1 },
	{ 4000, 4096, 0 },      /* cap 4096 is not above keep */
	{ 100000, 4096, 1 },
	{ 100000, 1 << 20, 0 },
};

START_TEST(buf_shrink_table)
{
	const struct shrink_case *tc = &shrinks[_i];
	char *fill = mg_unit_repeat('x', tc->len), *data;
	struct mg_buf b;

	mg_buf_init(&b, 1 << 20);
	ck_assert_int_eq(mg_buf_add(&b, fill, tc->len), MG_OK);
	data = b.data;
	mg_buf_shrink(&b, tc->keep);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(mg_buf_str(&b), "");
	if (tc->freed) {
		ck_assert_ptr_null(b.data);
		ck_assert_uint_eq(b.cap, 0);
	} else {
		ck_assert_ptr_eq(b.data, data);
	}
	ck_assert_int_eq(mg_buf_adds(&b, "again"), MG_OK);
	ck_assert_str_eq(mg_buf_str(&b), "again");
	ck_assert_uint_eq(b.max, 1 << 20);
	mg_buf_free(&b);
	free(fill);
}
END_TEST

/* Regression test, once wrong in lib/buf.c reserve(): with max = SIZE_MAX, "b->max + 1" wraps to 0,
 * so the capacity is clamped to 0 and realloc(…, 0) is followed by a write
 * of len+1 bytes (heap overflow).  A buffer without a practical cap must
 * still hold what is added. */
START_TEST(buf_max_size_max)
{
	struct mg_buf b;
	enum mg_err rc;
	size_t cap, len;

	mg_buf_init(&b, SIZE_MAX);
	rc = mg_buf_adds(&b, "abc");
	cap = b.cap;
	len = b.len;
	mg_buf_free(&b);
	ck_assert_int_eq(rc, MG_OK);
	ck_assert_uint_eq(len, 3);
	ck_assert_uint_ge(cap, len + 1);
}
END_TEST

static Suite *
buf_suite(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("buf");

	tcase_add_test(tc, buf_empty);
	tcase_add_test(tc, buf_cap_enforced);
	tcase_add_test(tc, buf_cap_zero);
	tcase_add_test(tc, buf_addf);
	tcase_add_test(tc, buf_reset_keeps_memory);
	tcase_add_loop_test(tc, buf_shrink_table, 0, (int)(sizeof(shrinks) / sizeof(shrinks[0])));
	tcase_add_test(tc, buf_grows_and_binary);
	tcase_add_test(tc, buf_max_size_max);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(buf_suite());
}
