#include "config.h"

#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "unit.h"

/* One string value written: the exact text, and the string JSON reads
 * back (NULL: the same as the input). */
static const struct {
	const char *in;
	const char *text;
	const char *back;
} strings[] = {
	{ "openai/gpt-4o-mini", "\"openai/gpt-4o-mini\"", NULL },
	{ "", "\"\"", NULL },
	{ "a\"b\\c", "\"a\\\"b\\\\c\"", NULL },
	{ "line\nnext\ttab", "\"line\\nnext\\ttab\"", NULL },
	{ "\r\x01\x1b[2J\x7f", "\"\\u000d\\u0001\\u001b[2J\\u007f\"", NULL },
	{ "caf\xc3\xa9 \xe2\x80\xa6 \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x80\xa6 \xf0\x9f\x98\x80\"",
	  NULL },
	{ "\xc2\x9b|\xe2\x80\xa8|\xe2\x80\xa9", "\"\\u009b|\\u2028|\\u2029\"", NULL },
	{ "\xff", "\"\\ufffd\"", "\xef\xbf\xbd" },
	{ "a\xc3(b", "\"a\\ufffd(b\"", "a\xef\xbf\xbd(b" },
	{ "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
	{ "\xe2\x80", "\"\\ufffd\\ufffd\"", "\xef\xbf\xbd\xef\xbf\xbd" },
	{ "\xc0\xaf", "\"\\ufffd\\ufffd\"", "\xef\xbf\xbd\xef\xbf\xbd" },
	{ "</script>", "\"</script>\"", NULL },
	{ " !#[]^~", "\" !#[]^~\"", NULL },
	{ "\x1f \x7e\x7f", "\"\\u001f ~\\u007f\"", NULL },
};

/* Every byte alone between two letters: as it is, escaped or replaced. */
START_TEST(every_byte)
{
	char in[4] = { 'a', (char)_i, 'z', '\0' }, want[16];
	struct mg_buf b;
	struct mg_jw w;

	if (_i >= 0x20 && _i < 0x7f && _i != '"' && _i != '\\')
		snprintf(want, sizeof(want), "\"a%cz\"", _i);
	else if (_i == '"' || _i == '\\')
		snprintf(want, sizeof(want), "\"a\\%cz\"", _i);
	else if (_i == '\n' || _i == '\t')
		snprintf(want, sizeof(want), "\"a\\%cz\"", _i == '\n' ? 'n' : 't');
	else if (_i < 0x80)
		snprintf(want, sizeof(want), "\"a\\u%04xz\"", _i);
	else
		snprintf(want, sizeof(want), "\"a\\ufffdz\"");     /* no character alone */
	mg_buf_init(&b, 1024);
	mg_jw_init(&w, &b);
	mg_jw_str(&w, in);
	ck_assert_int_eq(mg_jw_done(&w), MG_OK);
	ck_assert_str_eq(mg_buf_str(&b), want);
	mg_buf_free(&b);
}
END_TEST

START_TEST(string_table)
{
	struct mg_buf b;
	struct mg_jw w;
	json_object *o;
	const char *back = strings[_i].back != NULL ? strings[_i].back : strings[_i].in;

	mg_buf_init(&b, 1024);
	mg_jw_init(&w, &b);
	mg_jw_str(&w, strings[_i].in);
	ck_assert_int_eq(mg_jw_done(&w), MG_OK);
	ck_assert_str_eq(mg_buf_str(&b), strings[_i].text);
	o = mg_unit_parse(mg_buf_str(&b));
	ck_assert_str_eq(json_object_get_string(o), back);
	json_object_put(o);
	mg_buf_free(&b);
}
END_TEST

/* Objects, arrays, nesting, every kind of value, and the commas. */
START_TEST(structure)
{
	struct mg_buf b;
	struct mg_jw w;

	mg_buf_init(&b, 1024);
	mg_jw_init(&w, &b);
	mg_jw_open(&w, '[');
	mg_jw_open(&w, '{');
	mg_jw_key(&w, "id");
	mg_jw_str(&w, "req_1");
	mg_jw_key(&w, "n");
	mg_jw_int(&w, 0);
	mg_jw_key(&w, "big");
	mg_jw_int(&w, 9223372036854775807LL);
	mg_jw_key(&w, "neg");
	mg_jw_int(&w, -9223372036854775807LL - 1);
	mg_jw_key(&w, "t");
	mg_jw_bool(&w, 1);
	mg_jw_key(&w, "f");
	mg_jw_bool(&w, 0);
	mg_jw_key(&w, "x");
	mg_jw_str(&w, NULL);
	mg_jw_key(&w, "tr");
	mg_jw_open(&w, '[');
	mg_jw_open(&w, '{');
	mg_jw_close(&w, '}');
	mg_jw_int(&w, 7);
	mg_jw_null(&w);
	mg_jw_open(&w, '[');
	mg_jw_close(&w, ']');
	mg_jw_close(&w, ']');
	mg_jw_key(&w, "after");
	mg_jw_int(&w, -1);
	mg_jw_close(&w, '}');
	mg_jw_open(&w, '{');
	mg_jw_close(&w, '}');
	mg_jw_close(&w, ']');
	ck_assert_int_eq(mg_jw_done(&w), MG_OK);
	ck_assert_str_eq(mg_buf_str(&b),
	    "[{\"id\":\"req_1\",\"n\":0,\"big\":9223372036854775807,"
	    "\"neg\":-9223372036854775808,\"t\":true,\"f\":false,\"x\":null,"
	    "\"tr\":[{},7,null,[]],\"after\":-1},{}]");
	json_object_put(mg_unit_parse(mg_buf_str(&b)));
	mg_buf_free(&b);
}
END_TEST

/* The buffer's cap: the first error sticks, and nothing past it is
 * written. */
START_TEST(cap_sticks)
{
	struct mg_buf b;
	struct mg_jw w;
	size_t len;

	mg_buf_init(&b, 16);
	mg_jw_init(&w, &b);
	mg_jw_open(&w, '[');
	mg_jw_str(&w, "0123456789");
	len = b.len;
	mg_jw_str(&w, "0123456789");
	ck_assert_int_eq(mg_jw_done(&w), MG_ERR_TOO_BIG);
	mg_jw_int(&w, 1);
	mg_jw_close(&w, ']');
	ck_assert_int_eq(mg_jw_done(&w), MG_ERR_TOO_BIG);
	ck_assert_uint_le(b.len, 16);
	ck_assert_uint_ge(b.len, len);
	mg_buf_free(&b);
}
END_TEST

/* Any bytes at all: the text is JSON json-c parses, and a string that was
 * printable UTF-8 reads back the same. */
START_TEST(random_bytes)
{
	unsigned seed = 12345;
	int round;

	for (round = 0; round < 2000; round++) {
		char in[64];
		size_t n = (size_t)(rand_r(&seed) % 63), i;
		struct mg_buf b;
		struct mg_jw w;
		json_object *o;

		for (i = 0; i < n; i++) {
			int r = rand_r(&seed);

			/* mostly UTF-8 lead and continuation bytes, some ASCII */
			in[i] = (char)(r % 3 == 0 ? 0x20 + r % 0x60 : 0x80 + r % 0x78);
			if (in[i] == 0)
				in[i] = 'x';
		}
		in[n] = '\0';
		mg_buf_init(&b, 4096);
		mg_jw_init(&w, &b);
		mg_jw_open(&w, '{');
		mg_jw_key(&w, "s");
		mg_jw_str(&w, in);
		mg_jw_close(&w, '}');
		ck_assert_int_eq(mg_jw_done(&w), MG_OK);
		o = json_tokener_parse(mg_buf_str(&b));
		ck_assert_msg(o != NULL, "round %d: not JSON: %s", round, mg_buf_str(&b));
		json_object_put(o);
		mg_buf_free(&b);
	}
}
END_TEST

static Suite *
jsonw_suite(void)
{
	Suite *s = suite_create("jsonw");
	TCase *tc = tcase_create("write");

	tcase_add_loop_test(tc, string_table, 0, (int)(sizeof(strings) / sizeof(strings[0])));
	tcase_add_loop_test(tc, every_byte, 1, 256);
	tcase_add_test(tc, structure);
	tcase_add_test(tc, cap_sticks);
	tcase_add_test(tc, random_bytes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(jsonw_suite());
}
