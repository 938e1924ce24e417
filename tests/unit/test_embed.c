/* test_embed.c -- Embeddings converted to base64. */
#include "config.h"

#include <check.h>
#include <json-c/json.h>

#include "embed.h"
#include "err.h"
#include "unit.h"

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
	json_object *r = mg_unit_parse("{\"object\":\"list\",\"model\":\"m\",\"data\":["
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
	json_object *r = mg_unit_parse("{\"object\":\"list\",\"data\":[]}");

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
	json_object *r = mg_unit_parse(bad_embeds[_i]);

	ck_assert_msg(mg_embed_to_base64(r) == MG_ERR_UPSTREAM, "accepted %s", bad_embeds[_i]);
	json_object_put(r);
}
END_TEST

static Suite *
embed_suite(void)
{
	Suite *s = suite_create("embed");
	TCase *tc = tcase_create("embed");

	tcase_add_test(tc, embed_base64);
	tcase_add_test(tc, embed_empty_data);
	tcase_add_loop_test(tc, embed_bad_shapes, 0, (int)(sizeof(bad_embeds) / sizeof(bad_embeds[0])));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(embed_suite());
}
