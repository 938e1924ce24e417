/* test_models.c -- Model lists in the OpenAI shape: merging upstream lists,
 * finding and keeping models. */
#include "config.h"

#include <check.h>
#include <json-c/json.h>
#include <string.h>

#include "err.h"
#include "models.h"
#include "unit.h"

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
	json_object *list = mg_models_new_list(), *up = mg_unit_parse(openrouter_list), *m;

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
	json_object *list = mg_models_new_list(), *up = mg_unit_parse(openai_list), *m;

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
	json_object *a = mg_unit_parse("{\"data\":[{\"id\":\"openai/gpt-4o\",\"created\":1},{\"id\":\"x/y\",\"created\":2}]}");
	json_object *b = mg_unit_parse("{\"data\":[{\"id\":\"openai/gpt-4o\",\"created\":99,\"owned_by\":\"other\"},"
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

/* Regression test, once wrong in lib/models.c mg_models_merge(): ids
 * with control bytes or broken UTF-8 went into the catalog (and its
 * sync into Postgres, which refuses broken UTF-8). */
START_TEST(models_merge_skips_unprintable_ids)
{
	json_object *list = mg_models_new_list();
	json_object *a = mg_unit_parse("{\"data\":[{\"id\":\"a\\r\\nb\"},{\"id\":\"\\u001b[2J\"},"
	    "{\"id\":\"x\xff\"},{\"id\":\"\"},{\"id\":\"ok/caf\xc3\xa9\"}]}");

	ck_assert_int_eq(mg_models_merge(list, a), MG_OK);
	ck_assert_uint_eq(list_len(list), 1);
	ck_assert_ptr_nonnull(mg_models_find(list, "ok/caf\xc3\xa9"));
	json_object_put(a);
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
	json_object *list = mg_unit_parse("{\"object\":\"list\",\"data\":[{\"id\":\"a/b\",\"n\":1},{\"id\":5},"
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
	bad = mg_unit_parse("{\"data\":{}}");
	ck_assert_ptr_null(mg_models_find(bad, "a/b"));
	ck_assert_ptr_null(mg_models_find(NULL, "a/b"));
	json_object_put(bad);
	json_object_put(list);
}
END_TEST

static Suite *
models_suite(void)
{
	Suite *s = suite_create("models");
	TCase *tc = tcase_create("models");

	tcase_add_test(tc, models_new_list);
	tcase_add_test(tc, models_merge_openrouter);
	tcase_add_test(tc, models_merge_openai_keeps_owned_by);
	tcase_add_test(tc, models_merge_skips_duplicates);
	tcase_add_test(tc, models_merge_skips_unprintable_ids);
	tcase_add_loop_test(tc, models_merge_not_a_list, 0, (int)(sizeof(not_lists) / sizeof(not_lists[0])));
	tcase_add_test(tc, models_find);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(models_suite());
}
