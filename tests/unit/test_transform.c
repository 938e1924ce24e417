#include "config.h"

#include <check.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apierror.h"
#include "buf.h"
#include "embed.h"
#include "err.h"
#include "gateway.h"
#include "models.h"
#include "usage.h"

static json_object *
parse(const char *text)
{
	json_object *o = json_tokener_parse(text);

	ck_assert_msg(o != NULL, "test JSON does not parse: %s", text);
	return o;
}

/* A malloc'd string of n copies of c. */
static char *
repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* --- usage ------------------------------------------------------------- */

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
	{ "not an object",
	  "[{\"id\":\"gen-1\",\"usage\":{\"prompt_tokens\":1}}]", -1, -1, -1, "", "", "" },
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
	json_object *o = parse(usages[_i].json);

	mg_usage_init(&u);
	mg_usage_from_json(&u, o);
	check_usage(&u, _i);
	/* read in place: the same, where it is taken on (objects only) */
	mg_usage_init(&u);
	if (mg_usage_from_text(&u, usages[_i].json, strlen(usages[_i].json)) == MG_OK) {
		ck_assert(json_object_is_type(o, json_type_object));
		check_usage(&u, _i);
	} else {
		ck_assert_int_eq(u.prompt_tokens, -1);
	}
	json_object_put(o);
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
	mg_usage_from_json(&u, NULL);
	ck_assert_int_eq(u.prompt_tokens, -1);
}
END_TEST

/* Chunks of a stream: later chunks without a field leave it alone. */
START_TEST(usage_fields_kept_across_chunks)
{
	struct mg_usage u;
	json_object *a = parse("{\"id\":\"gen-9\",\"provider\":\"Groq\",\"choices\":[]}");
	json_object *b = parse("{\"id\":\"gen-9\",\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,"
	    "\"total_tokens\":10,\"cost\":0.00042}}");
	json_object *c = parse("{\"choices\":[{\"delta\":{}}]}");

	mg_usage_init(&u);
	mg_usage_from_json(&u, a);
	mg_usage_from_json(&u, b);
	mg_usage_from_json(&u, c);
	ck_assert_str_eq(u.upstream_id, "gen-9");
	ck_assert_str_eq(u.provider, "Groq");
	ck_assert_int_eq(u.prompt_tokens, 7);
	ck_assert_int_eq(u.completion_tokens, 3);
	ck_assert_int_eq(u.total_tokens, 10);
	ck_assert_str_eq(u.cost, "0.00042");
	ck_assert_str_eq(u.cost_source, "upstream");
	json_object_put(a);
	json_object_put(b);
	json_object_put(c);
}
END_TEST

START_TEST(usage_overlong_strings_truncated)
{
	struct mg_usage u;
	char *id = repeat('i', 300), *prov = repeat('p', 200), text[1024];
	json_object *o;

	snprintf(text, sizeof(text), "{\"id\":\"%s\",\"provider\":\"%s\",\"usage\":{\"prompt_tokens\":2}}", id, prov);
	o = parse(text);
	mg_usage_init(&u);
	mg_usage_from_json(&u, o);
	ck_assert_uint_eq(strlen(u.upstream_id), sizeof(u.upstream_id) - 1);
	ck_assert(strncmp(u.upstream_id, id, sizeof(u.upstream_id) - 1) == 0);
	ck_assert_uint_eq(strlen(u.provider), sizeof(u.provider) - 1);
	ck_assert(strncmp(u.provider, prov, sizeof(u.provider) - 1) == 0);
	/* neighbours untouched */
	ck_assert_int_eq(u.prompt_tokens, 2);
	ck_assert_int_eq(u.latency_ms, 0);
	json_object_put(o);
	free(id);
	free(prov);
}
END_TEST

/* --- models ------------------------------------------------------------ */

static const char openrouter_list[] =
	"{\"data\":["
	"{\"id\":\"openai/gpt-4o-mini\",\"canonical_slug\":\"openai/gpt-4o-mini-2024-07-18\","
	"\"name\":\"OpenAI: GPT-4o-mini\",\"created\":1721260800,\"context_length\":128000,"
	"\"pricing\":{\"prompt\":\"0.00000015\",\"completion\":\"0.0000006\"}},"
	"{\"id\":\"anthropic/claude-3.5-sonnet\",\"name\":\"Anthropic: Claude 3.5 Sonnet\",\"created\":1718841600},"
	"{\"id\":\"no-author-model\"},"
	"{\"name\":\"no id\"},"
	"\"not an object\""
	"]}";

static const char openai_list[] =
	"{\"object\":\"list\",\"data\":["
	"{\"id\":\"gpt-4o\",\"object\":\"model\",\"created\":1715367049,\"owned_by\":\"system\"},"
	"{\"id\":\"ft:gpt-4o-mini:acme::abc\",\"object\":\"model\",\"created\":1723000000,\"owned_by\":\"user-acme\"}"
	"]}";

static json_object *
model_field(json_object *m, const char *name)
{
	json_object *v = NULL;

	ck_assert_msg(json_object_object_get_ex(m, name, &v), "model has no '%s': %s", name,
	    json_object_to_json_string(m));
	return v;
}

static size_t
list_len(json_object *list)
{
	json_object *data;

	ck_assert(json_object_object_get_ex(list, "data", &data));
	ck_assert(json_object_is_type(data, json_type_array));
	return json_object_array_length(data);
}

START_TEST(models_new_list)
{
	json_object *list = mg_models_new_list(), *v;

	ck_assert_ptr_nonnull(list);
	ck_assert(json_object_object_get_ex(list, "object", &v));
	ck_assert_str_eq(json_object_get_string(v), "list");
	ck_assert_uint_eq(list_len(list), 0);
	ck_assert_ptr_null(mg_models_find(list, "anything"));
	json_object_put(list);
}
END_TEST

START_TEST(models_merge_openrouter)
{
	json_object *list = mg_models_new_list(), *up = parse(openrouter_list), *m;

	ck_assert_int_eq(mg_models_merge(list, up), MG_OK);
	/* the entry without an id and the non-object are skipped */
	ck_assert_uint_eq(list_len(list), 3);

	m = mg_models_find(list, "openai/gpt-4o-mini");
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(json_object_get_string(model_field(m, "object")), "model");
	ck_assert_str_eq(json_object_get_string(model_field(m, "owned_by")), "openai");
	ck_assert(json_object_is_type(model_field(m, "created"), json_type_int));
	ck_assert_int_eq(json_object_get_int64(model_field(m, "created")), 1721260800);
	/* other fields stay */
	ck_assert_str_eq(json_object_get_string(model_field(m, "name")), "OpenAI: GPT-4o-mini");
	ck_assert_int_eq(json_object_get_int64(model_field(m, "context_length")), 128000);
	ck_assert(json_object_is_type(model_field(m, "pricing"), json_type_object));

	m = mg_models_find(list, "anthropic/claude-3.5-sonnet");
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(json_object_get_string(model_field(m, "owned_by")), "anthropic");
	ck_assert_int_eq(json_object_get_int64(model_field(m, "created")), 1718841600);

	/* no author part: still an owned_by string and a created integer */
	m = mg_models_find(list, "no-author-model");
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(json_object_get_string(model_field(m, "object")), "model");
	ck_assert(json_object_is_type(model_field(m, "owned_by"), json_type_string));
	ck_assert_uint_gt(strlen(json_object_get_string(model_field(m, "owned_by"))), 0);
	ck_assert(json_object_is_type(model_field(m, "created"), json_type_int));

	json_object_put(up);
	/* the list holds its own references */
	m = mg_models_find(list, "openai/gpt-4o-mini");
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(json_object_get_string(model_field(m, "id")), "openai/gpt-4o-mini");
	json_object_put(list);
}
END_TEST

START_TEST(models_merge_openai_keeps_owned_by)
{
	json_object *list = mg_models_new_list(), *up = parse(openai_list), *m;

	ck_assert_int_eq(mg_models_merge(list, up), MG_OK);
	ck_assert_uint_eq(list_len(list), 2);
	m = mg_models_find(list, "gpt-4o");
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(json_object_get_string(model_field(m, "owned_by")), "system");
	ck_assert_int_eq(json_object_get_int64(model_field(m, "created")), 1715367049);
	ck_assert_str_eq(json_object_get_string(model_field(m, "object")), "model");
	m = mg_models_find(list, "ft:gpt-4o-mini:acme::abc");
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(json_object_get_string(model_field(m, "owned_by")), "user-acme");
	json_object_put(up);
	json_object_put(list);
}
END_TEST

START_TEST(models_merge_skips_duplicates)
{
	json_object *list = mg_models_new_list();
	json_object *a = parse("{\"data\":[{\"id\":\"openai/gpt-4o\",\"created\":1},{\"id\":\"x/y\",\"created\":2}]}");
	json_object *b = parse("{\"data\":[{\"id\":\"openai/gpt-4o\",\"created\":99,\"owned_by\":\"other\"},"
	    "{\"id\":\"z/w\",\"created\":3},{\"id\":\"z/w\",\"created\":4}]}");
	json_object *m;

	ck_assert_int_eq(mg_models_merge(list, a), MG_OK);
	ck_assert_uint_eq(list_len(list), 2);
	ck_assert_int_eq(mg_models_merge(list, b), MG_OK);
	ck_assert_uint_eq(list_len(list), 3);
	/* the first one wins */
	m = mg_models_find(list, "openai/gpt-4o");
	ck_assert_int_eq(json_object_get_int64(model_field(m, "created")), 1);
	ck_assert_str_eq(json_object_get_string(model_field(m, "owned_by")), "openai");
	m = mg_models_find(list, "z/w");
	ck_assert_int_eq(json_object_get_int64(model_field(m, "created")), 3);
	/* merging the same list again adds nothing */
	ck_assert_int_eq(mg_models_merge(list, a), MG_OK);
	ck_assert_uint_eq(list_len(list), 3);
	json_object_put(a);
	json_object_put(b);
	json_object_put(list);
}
END_TEST

static const char *const not_lists[] = {
	"{\"error\":{\"code\":401,\"message\":\"No auth credentials found\"}}",
	"{\"data\":{\"id\":\"x\"}}",
	"{\"data\":null}",
	"{\"data\":\"x\"}",
	"{}",
	"[{\"id\":\"x\"}]",
	"\"data\"",
};

START_TEST(models_merge_not_a_list)
{
	json_object *list = mg_models_new_list(), *up = json_tokener_parse(not_lists[_i]);

	ck_assert_ptr_nonnull(up);
	ck_assert_int_eq(mg_models_merge(list, up), MG_ERR_UPSTREAM);
	ck_assert_uint_eq(list_len(list), 0);
	json_object_put(up);
	ck_assert_int_eq(mg_models_merge(list, NULL), MG_ERR_UPSTREAM);
	json_object_put(list);
}
END_TEST

START_TEST(models_find)
{
	json_object *list = parse("{\"object\":\"list\",\"data\":[{\"id\":\"a/b\",\"n\":1},{\"id\":5},"
	    "{\"id\":\"c\",\"n\":2},\"x\"]}"), *m, *bad;

	m = mg_models_find(list, "a/b");
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(json_object_get_int(model_field(m, "n")), 1);
	m = mg_models_find(list, "c");
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(json_object_get_int(model_field(m, "n")), 2);
	ck_assert_ptr_null(mg_models_find(list, "a"));
	ck_assert_ptr_null(mg_models_find(list, "a/b/"));
	ck_assert_ptr_null(mg_models_find(list, "A/B"));
	ck_assert_ptr_null(mg_models_find(list, "5"));
	ck_assert_ptr_null(mg_models_find(list, ""));
	bad = parse("{\"data\":{}}");
	ck_assert_ptr_null(mg_models_find(bad, "a/b"));
	ck_assert_ptr_null(mg_models_find(NULL, "a/b"));
	json_object_put(bad);
	json_object_put(list);
}
END_TEST

/* --- embeddings -------------------------------------------------------- */

static const char *
embedding_at(json_object *resp, size_t i)
{
	json_object *data, *item, *e;

	ck_assert(json_object_object_get_ex(resp, "data", &data));
	item = json_object_array_get_idx(data, i);
	ck_assert(json_object_object_get_ex(item, "embedding", &e));
	ck_assert_msg(json_object_is_type(e, json_type_string), "embedding %zu is not a string", i);
	return json_object_get_string(e);
}

START_TEST(embed_base64)
{
	json_object *r = parse("{\"object\":\"list\",\"model\":\"m\",\"data\":["
	    "{\"object\":\"embedding\",\"index\":0,\"embedding\":[1.0,-2.0]},"
	    "{\"object\":\"embedding\",\"index\":1,\"embedding\":[1,-2]},"
	    "{\"object\":\"embedding\",\"index\":2,\"embedding\":\"already-a-string\"},"
	    "{\"object\":\"embedding\",\"index\":3,\"embedding\":[0.5]},"
	    "{\"object\":\"embedding\",\"index\":4,\"embedding\":[]}],"
	    "\"usage\":{\"prompt_tokens\":2,\"total_tokens\":2}}"), *v;

	ck_assert_int_eq(mg_embed_to_base64(r), MG_OK);
	ck_assert_str_eq(embedding_at(r, 0), "AACAPwAAAMA=");
	ck_assert_str_eq(embedding_at(r, 1), "AACAPwAAAMA=");
	ck_assert_str_eq(embedding_at(r, 2), "already-a-string");
	/* 0.5f = 0x3f000000 */
	ck_assert_str_eq(embedding_at(r, 3), "AAAAPw==");
	ck_assert_str_eq(embedding_at(r, 4), "");
	/* the rest of the response stays */
	ck_assert(json_object_object_get_ex(r, "usage", &v));
	ck_assert(json_object_object_get_ex(r, "model", &v));
	ck_assert_str_eq(json_object_get_string(v), "m");
	json_object_put(r);
}
END_TEST

START_TEST(embed_empty_data)
{
	json_object *r = parse("{\"object\":\"list\",\"data\":[]}");

	ck_assert_int_eq(mg_embed_to_base64(r), MG_OK);
	json_object_put(r);
}
END_TEST

static const char *const bad_embeds[] = {
	"{\"object\":\"list\"}",
	"{\"data\":{}}",
	"{\"data\":null}",
	"{\"data\":[1]}",
	"{\"data\":[{\"index\":0}]}",
	"{\"data\":[{\"embedding\":{\"x\":1}}]}",
	"{\"data\":[{\"embedding\":7}]}",
	"{\"data\":[{\"embedding\":null}]}",
	"{\"data\":[{\"embedding\":[1.0,\"x\"]}]}",
	"{\"data\":[{\"embedding\":[1.0,null]}]}",
	"{\"data\":[{\"embedding\":[[1.0]]}]}",
	"{\"data\":[{\"embedding\":[1.0]},{\"embedding\":[true]}]}",
	"[{\"embedding\":[1.0]}]",
};

START_TEST(embed_bad_shapes)
{
	json_object *r = parse(bad_embeds[_i]);

	ck_assert_msg(mg_embed_to_base64(r) == MG_ERR_UPSTREAM, "accepted %s", bad_embeds[_i]);
	json_object_put(r);
}
END_TEST

/* --- API errors -------------------------------------------------------- */

/* Parses the JSON in b and returns its "error" object (root in *root). */
static json_object *
error_object(const struct mg_buf *b, json_object **root)
{
	json_object *err;

	*root = json_tokener_parse(mg_buf_str(b));
	ck_assert_msg(*root != NULL, "not JSON: %s", mg_buf_str(b));
	ck_assert_int_eq(json_object_object_length(*root), 1);
	ck_assert(json_object_object_get_ex(*root, "error", &err));
	ck_assert(json_object_is_type(err, json_type_object));
	ck_assert_int_eq(json_object_object_length(err), 4);
	return err;
}

START_TEST(apierror_json_fields)
{
	struct mg_apierror e;
	struct mg_buf b;
	json_object *root, *err, *v;

	mg_buf_init(&b, 4096);
	mg_apierror_set(&e, 404, "invalid_request_error", "model", "model_not_found",
	    "The model '%s' does not exist", "a/b");
	ck_assert_int_eq(e.status, 404);
	ck_assert_int_eq(mg_apierror_json(&e, &b), MG_OK);
	err = error_object(&b, &root);
	ck_assert(json_object_object_get_ex(err, "message", &v));
	ck_assert_str_eq(json_object_get_string(v), "The model 'a/b' does not exist");
	ck_assert(json_object_object_get_ex(err, "type", &v));
	ck_assert_str_eq(json_object_get_string(v), "invalid_request_error");
	ck_assert(json_object_object_get_ex(err, "param", &v));
	ck_assert_str_eq(json_object_get_string(v), "model");
	ck_assert(json_object_object_get_ex(err, "code", &v));
	ck_assert_str_eq(json_object_get_string(v), "model_not_found");
	/* '/' is not escaped */
	ck_assert_ptr_nonnull(strstr(mg_buf_str(&b), "a/b"));
	json_object_put(root);
	mg_buf_free(&b);
}
END_TEST

START_TEST(apierror_json_nulls_and_escapes)
{
	static const char msg[] = "He said \"hi\"\nthen\ttab \\ back \x01 end";
	struct mg_apierror e;
	struct mg_buf b;
	json_object *root, *err, *v;

	mg_buf_init(&b, 4096);
	ck_assert_int_eq(mg_buf_adds(&b, "data: "), MG_OK);
	mg_apierror_set(&e, 500, "server_error", NULL, NULL, "%s", msg);
	ck_assert_int_eq(mg_apierror_json(&e, &b), MG_OK);
	/* appended, not replaced */
	ck_assert(strncmp(mg_buf_str(&b), "data: {", 7) == 0);
	/* no raw control characters in the output */
	ck_assert_ptr_null(strchr(mg_buf_str(&b), '\n'));
	ck_assert_ptr_null(strchr(mg_buf_str(&b), '\t'));
	ck_assert_ptr_null(strchr(mg_buf_str(&b), '\x01'));
	ck_assert_ptr_nonnull(strstr(mg_buf_str(&b), "\\\"hi\\\""));
	ck_assert_ptr_nonnull(strstr(mg_buf_str(&b), "\\n"));

	mg_buf_reset(&b);
	ck_assert_int_eq(mg_apierror_json(&e, &b), MG_OK);
	err = error_object(&b, &root);
	ck_assert(json_object_object_get_ex(err, "message", &v));
	ck_assert_str_eq(json_object_get_string(v), msg);
	ck_assert(json_object_object_get_ex(err, "param", &v));
	ck_assert_ptr_null(v);
	ck_assert(json_object_object_get_ex(err, "code", &v));
	ck_assert_ptr_null(v);
	ck_assert(json_object_object_get_ex(err, "type", &v));
	ck_assert_str_eq(json_object_get_string(v), "server_error");
	ck_assert_ptr_nonnull(strstr(mg_buf_str(&b), "\"param\":null"));
	ck_assert_ptr_nonnull(strstr(mg_buf_str(&b), "\"code\":null"));
	json_object_put(root);
	mg_buf_free(&b);
}
END_TEST

START_TEST(apierror_message_truncated)
{
	struct mg_apierror e;
	char *longmsg = repeat('m', 2000);

	mg_apierror_set(&e, 400, "invalid_request_error", NULL, NULL, "%s", longmsg);
	ck_assert_uint_eq(strlen(e.message), sizeof(e.message) - 1);
	free(longmsg);
}
END_TEST

START_TEST(apierror_json_too_big)
{
	struct mg_apierror e;
	struct mg_buf b;

	mg_buf_init(&b, 16);
	mg_apierror_set(&e, 400, "invalid_request_error", NULL, NULL, "a message that does not fit");
	ck_assert_int_eq(mg_apierror_json(&e, &b), MG_ERR_TOO_BIG);
	ck_assert_uint_eq(b.len, 0);
	mg_buf_free(&b);
}
END_TEST

static const struct {
	int status;
	const char *reason;
} reasons[] = {
	{ 200, "OK" }, { 400, "Bad Request" }, { 401, "Unauthorized" },
	{ 402, "Payment Required" }, { 403, "Forbidden" }, { 404, "Not Found" },
	{ 405, "Method Not Allowed" }, { 408, "Request Timeout" }, { 409, "Conflict" },
	{ 411, "Length Required" }, { 413, "Payload Too Large" },
	{ 415, "Unsupported Media Type" }, { 422, "Unprocessable Entity" },
	{ 429, "Too Many Requests" }, { 500, "Internal Server Error" },
	{ 502, "Bad Gateway" }, { 503, "Service Unavailable" }, { 504, "Gateway Timeout" },
	{ 0, "Unknown" }, { -1, "Unknown" }, { 299, "Unknown" }, { 999, "Unknown" },
};

START_TEST(http_reason_table)
{
	ck_assert_str_eq(mg_http_reason(reasons[_i].status), reasons[_i].reason);
}
END_TEST

/* --- upstream error mapping ------------------------------------------- */

static const struct {
	long status;
	const char *body;
	int want_status;
	const char *code;      /* NULL: not checked */
	const char *message;   /* the message must equal this, or NULL */
	const char *hidden;    /* text the message must not contain, or NULL */
} upstream_errors[] = {
	{ 401, "{\"error\":{\"code\":401,\"message\":\"No auth credentials found for sk-or-v1-abc\"}}",
	  502, "upstream_auth_failed", NULL, "credentials" },
	{ 401, "{\"error\":{\"message\":\"User not found.\",\"code\":401}}",
	  502, "upstream_auth_failed", NULL, "User not found" },
	{ 402, "{\"error\":{\"code\":402,\"message\":\"Insufficient credits. Add more using https://openrouter.ai/credits\"}}",
	  503, NULL, NULL, "credits" },
	{ 429, "{\"error\":{\"code\":429,\"message\":\"Rate limit exceeded\"}}", 503, NULL, NULL, NULL },
	{ 408, "{\"error\":{\"code\":408,\"message\":\"Timed out\"}}", 504, NULL, NULL, NULL },
	{ 500, "{\"error\":{\"code\":500,\"message\":\"Internal Server Error\"}}", 502, NULL, NULL, NULL },
	{ 502, "{\"error\":{\"code\":502,\"message\":\"Provider returned error\"}}", 502, NULL, NULL, NULL },
	{ 503, "<html>Service Unavailable</html>", 502, NULL, NULL, NULL },
	{ 400, "{\"error\":{\"code\":400,\"message\":\"Invalid model specified\"}}",
	  400, NULL, "Invalid model specified", NULL },
	{ 404, "{\"error\":{\"code\":404,\"message\":\"Model not found\"}}", 404, "model_not_found", "Model not found", NULL },
	{ 404, "", 404, "model_not_found", NULL, NULL },
	{ 403, "{\"error\":{\"code\":403,\"message\":\"Input was flagged by moderation\"}}",
	  403, NULL, "Input was flagged by moderation", NULL },
	{ 400, "<html><body>Bad Request</body></html>", 400, NULL, NULL, "<html>" },
	{ 400, "{\"error\":{\"code\":400,\"message\":{\"nested\":true}}}", 400, NULL, NULL, "nested" },
	{ 400, "{\"error\":\"flat string\"}", 400, NULL, NULL, "flat string" },
	{ 400, NULL, 400, NULL, NULL, NULL },
	{ 302, "", 502, NULL, NULL, NULL },
};

START_TEST(upstream_error_table)
{
	struct mg_apierror e;
	long st = upstream_errors[_i].status;

	memset(&e, 0, sizeof(e));
	mg_apierror_upstream(st, upstream_errors[_i].body, &e);
	ck_assert_msg(e.status == upstream_errors[_i].want_status, "upstream %ld: status %d, want %d",
	    st, e.status, upstream_errors[_i].want_status);
	ck_assert_ptr_nonnull(e.type);
	ck_assert_ptr_null(e.param);
	ck_assert_msg(e.message[0] != '\0', "upstream %ld: empty message", st);
	if (upstream_errors[_i].code != NULL)
		ck_assert_msg(e.code != NULL && strcmp(e.code, upstream_errors[_i].code) == 0,
		    "upstream %ld: code '%s', want '%s'", st, e.code ? e.code : "(null)", upstream_errors[_i].code);
	if (upstream_errors[_i].message != NULL)
		ck_assert_str_eq(e.message, upstream_errors[_i].message);
	if (upstream_errors[_i].hidden != NULL)
		ck_assert_msg(strstr(e.message, upstream_errors[_i].hidden) == NULL,
		    "upstream %ld: message '%s' shows '%s'", st, e.message, upstream_errors[_i].hidden);
	/* client errors passed on are the client's fault */
	if (e.status >= 400 && e.status < 500)
		ck_assert_str_eq(e.type, "invalid_request_error");
}
END_TEST

/* A non-JSON body gets the same generic text as an empty one. */
START_TEST(upstream_error_generic_message)
{
	struct mg_apierror a, b;

	mg_apierror_upstream(400, "not json at all", &a);
	mg_apierror_upstream(400, "", &b);
	ck_assert_str_eq(a.message, b.message);
	ck_assert_ptr_null(strstr(a.message, "not json"));
}
END_TEST

/* --- mg_buf ------------------------------------------------------------ */

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
	char *fill = repeat('x', tc->len), *data;
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

/* --- mg_strerror ------------------------------------------------------- */

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
transform_suite(void)
{
	Suite *s = suite_create("transform");
	TCase *tc;

	tc = tcase_create("usage");
	tcase_add_loop_test(tc, usage_table, 0, (int)(sizeof(usages) / sizeof(usages[0])));
	tcase_add_test(tc, usage_scan_walk);
	tcase_add_test(tc, usage_init);
	tcase_add_test(tc, usage_fields_kept_across_chunks);
	tcase_add_test(tc, usage_overlong_strings_truncated);
	suite_add_tcase(s, tc);

	tc = tcase_create("models");
	tcase_add_test(tc, models_new_list);
	tcase_add_test(tc, models_merge_openrouter);
	tcase_add_test(tc, models_merge_openai_keeps_owned_by);
	tcase_add_test(tc, models_merge_skips_duplicates);
	tcase_add_loop_test(tc, models_merge_not_a_list, 0, (int)(sizeof(not_lists) / sizeof(not_lists[0])));
	tcase_add_test(tc, models_find);
	suite_add_tcase(s, tc);

	tc = tcase_create("embed");
	tcase_add_test(tc, embed_base64);
	tcase_add_test(tc, embed_empty_data);
	tcase_add_loop_test(tc, embed_bad_shapes, 0, (int)(sizeof(bad_embeds) / sizeof(bad_embeds[0])));
	suite_add_tcase(s, tc);

	tc = tcase_create("apierror");
	tcase_add_test(tc, apierror_json_fields);
	tcase_add_test(tc, apierror_json_nulls_and_escapes);
	tcase_add_test(tc, apierror_message_truncated);
	tcase_add_test(tc, apierror_json_too_big);
	tcase_add_loop_test(tc, http_reason_table, 0, (int)(sizeof(reasons) / sizeof(reasons[0])));
	tcase_add_loop_test(tc, upstream_error_table, 0, (int)(sizeof(upstream_errors) / sizeof(upstream_errors[0])));
	tcase_add_test(tc, upstream_error_generic_message);
	suite_add_tcase(s, tc);

	tc = tcase_create("buf");
	tcase_add_test(tc, buf_empty);
	tcase_add_test(tc, buf_cap_enforced);
	tcase_add_test(tc, buf_cap_zero);
	tcase_add_test(tc, buf_addf);
	tcase_add_test(tc, buf_reset_keeps_memory);
	tcase_add_loop_test(tc, buf_shrink_table, 0, (int)(sizeof(shrinks) / sizeof(shrinks[0])));
	tcase_add_test(tc, buf_grows_and_binary);
	tcase_add_test(tc, buf_max_size_max);
	tcase_add_test(tc, strerror_every_code);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(transform_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
