/* fuzz_catalog.c -- The upstream's model lists (catalog.c, models.c) as
 * `modelgate models sync` and /v1/models read them: the input is the
 * chat list, then after a NUL byte the embeddings list (or a project's
 * allowed models).  The rows made carry string ids and prices that are
 * null or exact amounts; the list made is in the OpenAI shape. */
#include "config.h"

#include <json-c/json.h>

#include "catalog.h"
#include "fuzz.h"
#include "models.h"
#include "money.h"

static void
check_rows(json_object *rows)
{
	size_t i, n;

	FUZZ_CHECK(json_object_is_type(rows, json_type_array));
	n = json_object_array_length(rows);
	for (i = 0; i < n; i++) {
		json_object *r = json_object_array_get_idx(rows, i), *v;
		static const char *const prices[] = { "prompt_price", "completion_price" };
		size_t k;

		FUZZ_CHECK(json_object_object_get_ex(r, "id", &v) &&
		    json_object_is_type(v, json_type_string));
		for (k = 0; k < 2; k++) {
			FUZZ_CHECK(json_object_object_get_ex(r, prices[k], &v));
			FUZZ_CHECK(v == NULL || mg_money_valid(json_object_get_string(v),
			    MG_MONEY_NUMBER));
		}
		FUZZ_CHECK(json_object_to_json_string(r) != NULL);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size), *second;
	json_object *chat, *other, *rows, *list, *m, *v;

	second = text + strlen(text);
	second = second < text + size ? second + 1 : second;
	chat = json_tokener_parse(text);
	other = json_tokener_parse(second);
	if (chat != NULL && mg_catalog_rows(chat, other, &rows) == MG_OK) {
		check_rows(rows);
		json_object_put(rows);
	}
	json_object_put(chat);
	chat = json_tokener_parse(text);
	list = mg_models_new_list();
	FUZZ_CHECK(list != NULL);
	if (chat != NULL && mg_models_merge(list, chat) == MG_OK) {
		FUZZ_CHECK(mg_models_keep(list, other) == MG_OK);
		FUZZ_CHECK(json_object_object_get_ex(list, "data", &v));
		if (json_object_array_length(v) > 0) {
			m = json_object_array_get_idx(v, 0);
			FUZZ_CHECK(json_object_object_get_ex(m, "id", &v));
			FUZZ_CHECK(mg_models_find(list, json_object_get_string(v)) == m);
			FUZZ_CHECK(json_object_object_get_ex(m, "owned_by", &v) &&
			    json_object_is_type(v, json_type_string));
		}
		FUZZ_CHECK(json_object_to_json_string(list) != NULL);
	}
	json_object_put(list);
	json_object_put(chat);
	json_object_put(other);
	free(text);
	return 0;
}
