/* test_usage.c -- Reading usage from upstream answers: tokens, cost, id and
 * provider, read in place. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "usage.h"
#include "unit.h"

static const struct {
	const char *why;
	const char *json;
	long long prompt, completion, total;
	const char *cost;         /* "" when none */
	const char *upstream_id;
	const char *provider;
} usages[] = {
	{ "OpenRouter completion",
	  "{\"id\":\"gen-123\",\"provider\":\"OpenAI\",\"model\":\"openai/gpt-4o-mini\","
	  "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5,\"total_tokens\":15,\"cost\":0.0000170}}",
	  10, 5, 15, "0.0000170", "gen-123", "OpenAI" },
	{ "cost in exponent form",
	  "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2,\"cost\":1e-7}}",
	  1, 1, 2, "1e-7", "", "" },
	{ "cost with capital exponent",
	  "{\"usage\":{\"prompt_tokens\":1,\"total_tokens\":1,\"cost\":2.5E+3}}",
	  1, -1, 1, "2.5E+3", "", "" },
	{ "integer cost",
	  "{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":0,\"total_tokens\":3,\"cost\":0}}",
	  3, 0, 3, "0", "", "" },
	{ "negative cost rejected",
	  "{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7,\"cost\":-0.001}}",
	  3, 4, 7, "", "", "" },
	{ "cost as a string rejected",
	  "{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7,\"cost\":\"0.001\"}}",
	  3, 4, 7, "", "", "" },
	{ "cost null",
	  "{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7,\"cost\":null}}",
	  3, 4, 7, "", "", "" },
	{ "cost too long to keep exactly",
	  "{\"usage\":{\"prompt_tokens\":3,\"cost\":0.00001700000000000000000000000000000000000000000001}}",
	  3, -1, 3, "", "", "" },
	/* the upstream's ids go into rows, logs and URLs: each byte that is
	 * not printable UTF-8 made '?' (broken UTF-8 failed the settlement
	 * in Postgres before) */
	{ "ids with control bytes and broken UTF-8",
	  "{\"id\":\"gen-\\r\\nX: 1\xff\",\"provider\":\"Op\xc3\xa9n\\u001b[2J\xc0\xaf\","
	  "\"usage\":{\"prompt_tokens\":1}}",
	  1, -1, 1, "", "gen-??X: 1?", "Op\xc3\xa9n?[2J??" },
	{ "missing usage",
	  "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":[]}",
	  -1, -1, -1, "", "chatcmpl-1", "" },
	{ "usage null",
	  "{\"usage\":null}", -1, -1, -1, "", "", "" },
	{ "usage not an object",
	  "{\"usage\":[1,2,3]}", -1, -1, -1, "", "", "" },
	{ "total computed when missing",
	  "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5}}", 10, 5, 15, "", "", "" },
	{ "total computed from prompt only (embeddings)",
	  "{\"object\":\"list\",\"usage\":{\"prompt_tokens\":8}}", 8, -1, 8, "", "", "" },
	/* Regression test, once wrong in lib/usage.c: the sum of two huge
	 * counts overflowed (undefined behaviour) instead of stopping at the
	 * largest total. */
	{ "total computed without overflow",
	  "{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":9223372036854775807}}",
	  3, 9223372036854775807LL, 9223372036854775807LL, "", "", "" },
	{ "total kept when given",
	  "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5,\"total_tokens\":20}}", 10, 5, 20, "", "", "" },
	{ "negative tokens ignored",
	  "{\"usage\":{\"prompt_tokens\":-4,\"completion_tokens\":2,\"total_tokens\":-1}}", -1, 2, -1, "", "", "" },
	{ "tokens as strings ignored",
	  "{\"usage\":{\"prompt_tokens\":\"4\",\"completion_tokens\":\"2\"}}", -1, -1, -1, "", "", "" },
	{ "id and provider not strings",
	  "{\"id\":5,\"provider\":{\"name\":\"x\"}}", -1, -1, -1, "", "", "" },
	{ "escaped id and provider, decoded",
	  "{\"id\":\"gen\\u002d1\",\"provider\":\"Mistral \\\"AI\\\"\"}", -1, -1, -1, "", "gen-1", "Mistral \"AI\"" },
	{ "usage named twice: the last counts",
	  "{\"usage\":{\"prompt_tokens\":4,\"cost\":1},\"usage\":{\"completion_tokens\":2}}", -1, 2, -1, "", "", "" },
	{ "usage named twice, the last null",
	  "{\"usage\":{\"prompt_tokens\":4},\"usage\":null}", -1, -1, -1, "", "", "" },
	{ "a token count named twice",
	  "{\"usage\":{\"prompt_tokens\":4,\"prompt_tokens\":6}}", 6, -1, 6, "", "", "" },
	{ "escaped member names",
	  "{\"\\u0075sage\":{\"prompt_t\\u006fkens\":4}}", 4, -1, 4, "", "", "" },
	{ "a count past 18 digits stops at the largest",
	  "{\"usage\":{\"prompt_tokens\":123456789012345678901234}}", 9223372036854775807LL, -1,
	  9223372036854775807LL, "", "", "" },
	{ "a negative count past 18 digits ignored",
	  "{\"usage\":{\"prompt_tokens\":-123456789012345678901234}}", -1, -1, -1, "", "", "" },
	{ "cost -0, signed, rejected",
	  "{\"usage\":{\"prompt_tokens\":1,\"cost\":-0}}", 1, -1, 1, "", "", "" },
	{ "cost as written past 18 digits",
	  "{\"usage\":{\"prompt_tokens\":1,\"cost\":1234567890123456789012}}", 1, -1, 1, "1234567890123456789012", "", "" },
};

/* Not JSON objects: u is left as it was. */
static const char *const not_objects[] = {
	"[{\"id\":\"gen-1\",\"usage\":{\"prompt_tokens\":1}}]",
	"{\"id\":\"gen-1\",\"usage\":{\"prompt_tokens\":1}",
	"{\"id\":\"gen-1\",\"usage\":{\"prompt_tokens\":1}} x",
	"{\"usage\":{\"prompt_tokens\":NaN}}",
	"",
	"null",
};

static void
check_usage(const struct mg_usage *u, int i)
{
	ck_assert_msg(u->prompt_tokens == usages[i].prompt, "%s: prompt %lld", usages[i].why, u->prompt_tokens);
	ck_assert_msg(u->completion_tokens == usages[i].completion, "%s: completion %lld",
	    usages[i].why, u->completion_tokens);
	ck_assert_msg(u->total_tokens == usages[i].total, "%s: total %lld", usages[i].why, u->total_tokens);
	ck_assert_msg(strcmp(u->cost, usages[i].cost) == 0, "%s: cost '%s', want '%s'",
	    usages[i].why, u->cost, usages[i].cost);
	if (usages[i].cost[0] != '\0')
		ck_assert_msg(u->cost_source != NULL && strcmp(u->cost_source, "upstream") == 0,
		    "%s: cost_source", usages[i].why);
	else
		ck_assert_msg(u->cost_source == NULL, "%s: cost_source set", usages[i].why);
	ck_assert_str_eq(u->upstream_id, usages[i].upstream_id);
	ck_assert_str_eq(u->provider, usages[i].provider);
}

START_TEST(usage_table)
{
	struct mg_usage u;

	mg_usage_init(&u);
	ck_assert_int_eq(mg_usage_from_text(&u, usages[_i].json, strlen(usages[_i].json)), MG_OK);
	check_usage(&u, _i);
}
END_TEST

START_TEST(usage_not_objects)
{
	static const char first[] = "{\"id\":\"gen-0\",\"usage\":{\"prompt_tokens\":9}}";
	struct mg_usage u, before;

	mg_usage_init(&u);
	ck_assert_int_eq(mg_usage_from_text(&u, first, sizeof(first) - 1), MG_OK);
	before = u;
	ck_assert_int_eq(mg_usage_from_text(&u, not_objects[_i], strlen(not_objects[_i])), MG_ERR_JSON);
	ck_assert(memcmp(&u, &before, sizeof(u)) == 0);
}
END_TEST

/* The walk's hook: records the names it is handed and reads each value;
 * "stop" fails the scanner. */
struct seen {
	char names[128];
};

static void
seen_member(void *arg, struct mg_jscan *s, const struct mg_jscan_value *name)
{
	struct seen *w = arg;

	strncat(w->names, name->text, name->len);
	strcat(w->names, ",");
	if (mg_jscan_is(name, "stop"))
		mg_jscan_fail(s);
	mg_jscan_next(s);
}

START_TEST(usage_scan_walk)
{
	static const char chunk[] = "{\"id\":\"gen-1\",\"choices\":[{\"delta\":{}}],\"usage\":"
	    "{\"prompt_tokens\":2},\"x\":null}";
	static const char stop[] = "{\"usage\":{\"prompt_tokens\":2},\"stop\":1}";
	static const char no_usage[] = "{\"usage\":null,\"choices\":[]}";
	struct seen w;
	struct mg_usage_walk walk = { seen_member, &w, 0 };
	struct mg_usage u;

	memset(&w, 0, sizeof(w));
	mg_usage_init(&u);
	ck_assert_int_eq(mg_usage_scan(&u, chunk, strlen(chunk), &walk), MG_OK);
	ck_assert_str_eq(w.names, "choices,x,");
	ck_assert_int_eq(walk.usage, 1);
	ck_assert_str_eq(u.upstream_id, "gen-1");
	ck_assert_int_eq(u.prompt_tokens, 2);
	/* the hook may refuse: nothing is taken */
	memset(&w, 0, sizeof(w));
	mg_usage_init(&u);
	ck_assert_int_eq(mg_usage_scan(&u, stop, strlen(stop), &walk), MG_ERR_JSON);
	ck_assert_int_eq(u.prompt_tokens, -1);
	walk.usage = 1;
	ck_assert_int_eq(mg_usage_scan(&u, no_usage, strlen(no_usage), &walk), MG_OK);
	ck_assert_int_eq(walk.usage, 0);
}
END_TEST

START_TEST(usage_init)
{
	struct mg_usage u;

	memset(&u, 0x5a, sizeof(u));
	mg_usage_init(&u);
	ck_assert_int_eq(u.prompt_tokens, -1);
	ck_assert_int_eq(u.completion_tokens, -1);
	ck_assert_int_eq(u.total_tokens, -1);
	ck_assert_str_eq(u.cost, "");
	ck_assert_ptr_null(u.cost_source);
	ck_assert_str_eq(u.upstream_id, "");
	ck_assert_str_eq(u.provider, "");
	ck_assert_str_eq(u.model, "");
}
END_TEST

/* Chunks of a stream: later chunks without a field leave it alone. */
START_TEST(usage_fields_kept_across_chunks)
{
	static const char *const chunks[] = {
		"{\"id\":\"gen-9\",\"provider\":\"Groq\",\"choices\":[]}",
		"{\"id\":\"gen-9\",\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,"
		    "\"total_tokens\":10,\"cost\":0.00042}}",
		"{\"choices\":[{\"delta\":{}}]}",
	};
	struct mg_usage u;
	size_t i;

	mg_usage_init(&u);
	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++)
		ck_assert_int_eq(mg_usage_from_text(&u, chunks[i], strlen(chunks[i])), MG_OK);
	ck_assert_str_eq(u.upstream_id, "gen-9");
	ck_assert_str_eq(u.provider, "Groq");
	ck_assert_int_eq(u.prompt_tokens, 7);
	ck_assert_int_eq(u.completion_tokens, 3);
	ck_assert_int_eq(u.total_tokens, 10);
	ck_assert_str_eq(u.cost, "0.00042");
	ck_assert_str_eq(u.cost_source, "upstream");
}
END_TEST

START_TEST(usage_overlong_strings_truncated)
{
	struct mg_usage u;
	char *id = mg_unit_repeat('i', 300), *prov = mg_unit_repeat('p', 200), text[1024];

	snprintf(text, sizeof(text), "{\"id\":\"%s\",\"provider\":\"%s\",\"usage\":{\"prompt_tokens\":2}}", id, prov);
	mg_usage_init(&u);
	ck_assert_int_eq(mg_usage_from_text(&u, text, strlen(text)), MG_OK);
	ck_assert_uint_eq(strlen(u.upstream_id), sizeof(u.upstream_id) - 1);
	ck_assert(strncmp(u.upstream_id, id, sizeof(u.upstream_id) - 1) == 0);
	ck_assert_uint_eq(strlen(u.provider), sizeof(u.provider) - 1);
	ck_assert(strncmp(u.provider, prov, sizeof(u.provider) - 1) == 0);
	/* neighbours untouched */
	ck_assert_int_eq(u.prompt_tokens, 2);
	ck_assert_int_eq(u.latency_ms, 0);
	free(id);
	free(prov);
}
END_TEST

static Suite *
usage_suite(void)
{
	Suite *s = suite_create("usage");
	TCase *tc = tcase_create("usage");

	tcase_add_loop_test(tc, usage_table, 0, (int)(sizeof(usages) / sizeof(usages[0])));
	tcase_add_loop_test(tc, usage_not_objects, 0, (int)(sizeof(not_objects) / sizeof(not_objects[0])));
	tcase_add_test(tc, usage_scan_walk);
	tcase_add_test(tc, usage_init);
	tcase_add_test(tc, usage_fields_kept_across_chunks);
	tcase_add_test(tc, usage_overlong_strings_truncated);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(usage_suite());
}
