/* test_chunk.c -- Reading stream chunks: what the relay does with each, the
 * content deltas counted, the usage taken, several data lines made one. */
#include "config.h"

#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "unit.h"

#define SAME ((const char *)1)   /* text: the data as it came */

static const struct {
	const char *why;
	const char *data;
	enum mg_chunk_kind kind;
	long contents;
	const char *text;        /* DATA, USAGE_ONLY: SAME, or the one line made */
	const char *message;     /* ERROR */
	long long prompt;        /* the usage taken, -1 none */
	const char *id;
} chunks[] = {
	{ "end of the stream", "[DONE]", MG_CHUNK_DONE, 0, NULL, NULL, -1, "" },
	{ "a content delta",
	  "{\"id\":\"gen-1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"}}]}",
	  MG_CHUNK_DATA, 1, SAME, NULL, -1, "gen-1" },
	{ "an empty content",
	  "{\"choices\":[{\"delta\":{\"content\":\"\"}}]}", MG_CHUNK_DATA, 0, SAME, NULL, -1, "" },
	{ "content null, a tool call",
	  "{\"choices\":[{\"delta\":{\"content\":null,\"tool_calls\":[{\"index\":0}]}}]}",
	  MG_CHUNK_DATA, 0, SAME, NULL, -1, "" },
	{ "two choices with content, one without",
	  "{\"choices\":[{\"delta\":{\"content\":\"a\"}},{\"delta\":{}},{\"delta\":{\"content\":\"b\"}},7]}",
	  MG_CHUNK_DATA, 2, SAME, NULL, -1, "" },
	{ "the usage-only chunk",
	  "{\"id\":\"gen-2\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}",
	  MG_CHUNK_USAGE_ONLY, 0, SAME, NULL, 5, "gen-2" },
	{ "usage on a chunk with content",
	  "{\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"usage\":{\"prompt_tokens\":5}}",
	  MG_CHUNK_DATA, 1, SAME, NULL, 5, "" },
	{ "choices empty, usage null",
	  "{\"choices\":[],\"usage\":null}", MG_CHUNK_DATA, 0, SAME, NULL, -1, "" },
	{ "no choices",
	  "{\"id\":\"gen-3\"}", MG_CHUNK_DATA, 0, SAME, NULL, -1, "gen-3" },
	{ "an error with its message",
	  "{\"error\":{\"message\":\"Provider \\\"X\\\" failed \\u2014 retry\",\"code\":502}}",
	  MG_CHUNK_ERROR, 0, NULL, "Provider \"X\" failed \xe2\x80\x94 retry", -1, "" },
	{ "an error without a message",
	  "{\"error\":{\"code\":502},\"choices\":[{\"delta\":{\"content\":\"x\"}}]}",
	  MG_CHUNK_ERROR, 0, NULL, "", -1, "" },
	{ "an error that is not an object",
	  "{\"error\":\"boom\"}", MG_CHUNK_ERROR, 0, NULL, "", -1, "" },
	{ "error null",
	  "{\"error\":null,\"choices\":[{\"delta\":{\"content\":\"x\"}}]}", MG_CHUNK_DATA, 1, SAME, NULL, -1, "" },
	{ "error named twice, the last null",
	  "{\"error\":{\"message\":\"m\"},\"error\":null}", MG_CHUNK_DATA, 0, SAME, NULL, -1, "" },
	{ "choices named twice: the last counts",
	  "{\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"choices\":[]}", MG_CHUNK_DATA, 0, SAME, NULL, -1, "" },
	{ "delta named twice: the last counts",
	  "{\"choices\":[{\"delta\":{\"content\":\"a\"},\"delta\":{}}]}", MG_CHUNK_DATA, 0, SAME, NULL, -1, "" },
	{ "content named twice: the last counts",
	  "{\"choices\":[{\"delta\":{\"content\":\"\",\"content\":\"a\"}}]}", MG_CHUNK_DATA, 1, SAME, NULL, -1, "" },
	{ "escaped names",
	  "{\"ch\\u006fices\":[{\"d\\u0065lta\":{\"c\\u006fntent\":\"a\"}}]}", MG_CHUNK_DATA, 1, SAME, NULL, -1, "" },
	{ "several data lines",
	  "{\"id\":\"gen-4\",\n\"choices\":[{\"delta\":{\"content\":\"a\\nb\"}}]\n}",
	  MG_CHUNK_DATA, 1, "{\"id\":\"gen-4\", \"choices\":[{\"delta\":{\"content\":\"a\\nb\"}}] }", NULL, -1, "gen-4" },
	{ "a string cut across data lines",
	  "{\"choices\":[{\"delta\":{\"content\":\"one\ntwo \\\" \\\\\"}}]}",
	  MG_CHUNK_DATA, 1, "{\"choices\":[{\"delta\":{\"content\":\"one\\ntwo \\\" \\\\\"}}]}", NULL, -1, "" },
	{ "not JSON", "{\"choices\":[", MG_CHUNK_INVALID, 0, NULL, NULL, -1, "" },
	{ "not an object", "[1,2]", MG_CHUNK_INVALID, 0, NULL, NULL, -1, "" },
	{ "a comment's text", "keep-alive", MG_CHUNK_INVALID, 0, NULL, NULL, -1, "" },
};

START_TEST(chunk_table)
{
	struct mg_chunk c;
	struct mg_usage u;
	const char *data = chunks[_i].data;
	json_object *o;

	mg_usage_init(&u);
	mg_chunk_read(&c, &u, data, strlen(data));
	ck_assert_msg(c.kind == chunks[_i].kind, "%s: kind %d", chunks[_i].why, c.kind);
	ck_assert_msg(c.contents == chunks[_i].contents, "%s: contents %ld", chunks[_i].why, c.contents);
	if (chunks[_i].text == SAME) {
		ck_assert_ptr_eq(c.text, data);
		ck_assert_uint_eq(c.len, strlen(data));
	} else if (chunks[_i].text != NULL) {
		ck_assert_str_eq(c.text, chunks[_i].text);
		ck_assert_uint_eq(c.len, strlen(chunks[_i].text));
		ck_assert_ptr_null(memchr(c.text, '\n', c.len));
		/* still the same JSON */
		o = mg_unit_parse(c.text);
		json_object_put(o);
	}
	if (chunks[_i].message != NULL)
		ck_assert_str_eq(c.message, chunks[_i].message);
	ck_assert_int_eq(u.prompt_tokens, chunks[_i].prompt);
	ck_assert_str_eq(u.upstream_id, chunks[_i].id);
	mg_chunk_free(&c);
	ck_assert_ptr_null(c.line);
	mg_chunk_free(&c);
	mg_chunk_free(NULL);
}
END_TEST

/* An error message longer than the chunk keeps: cut, NUL-terminated. */
START_TEST(chunk_long_message)
{
	char *msg = mg_unit_repeat('m', 2000), data[2100];
	struct mg_chunk c;
	struct mg_usage u;

	snprintf(data, sizeof(data), "{\"error\":{\"message\":\"%s\"}}", msg);
	mg_usage_init(&u);
	mg_chunk_read(&c, &u, data, strlen(data));
	ck_assert_int_eq(c.kind, MG_CHUNK_ERROR);
	ck_assert_uint_eq(strlen(c.message), sizeof(c.message) - 1);
	mg_chunk_free(&c);
	free(msg);
}
END_TEST

static Suite *
chunk_suite(void)
{
	Suite *s = suite_create("chunk");
	TCase *tc = tcase_create("chunk");

	tcase_add_loop_test(tc, chunk_table, 0, (int)(sizeof(chunks) / sizeof(chunks[0])));
	tcase_add_test(tc, chunk_long_message);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(chunk_suite());
}
