/* models.c -- Upstream model lists (OpenRouter's or an OpenAI-style one) read into
 * the OpenAI /v1/models shape.  Called by catalog and the gateway. */
#include "config.h"

#include <string.h>

#include "models.h"
#include "text.h"

json_object *
mg_models_new_list(void)
{
	json_object *list = json_object_new_object();

	if (list == NULL)
		return NULL;
	json_object_object_add(list, "object", json_object_new_string("list"));
	json_object_object_add(list, "data", json_object_new_array());
	return list;
}

json_object *
mg_models_find(json_object *list, const char *id)
{
	json_object *data;
	size_t i, n;

	if (!json_object_object_get_ex(list, "data", &data) ||
	    !json_object_is_type(data, json_type_array))
		return NULL;
	n = json_object_array_length(data);
	for (i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(data, i), *v;

		if (json_object_object_get_ex(m, "id", &v) &&
		    json_object_is_type(v, json_type_string) &&
		    strcmp(json_object_get_string(v), id) == 0)
			return m;
	}
	return NULL;
}

/* Brings one model object into the OpenAI shape (in place). */
static void
openai_shape(json_object *m, const char *id)
{
	json_object *v;

	json_object_object_add(m, "object", json_object_new_string("model"));
	if (!json_object_object_get_ex(m, "created", &v) || !json_object_is_type(v, json_type_int))
		json_object_object_add(m, "created", json_object_new_int64(0));
	if (!json_object_object_get_ex(m, "owned_by", &v) || !json_object_is_type(v, json_type_string)) {
		const char *slash = strchr(id, '/');
		json_object *owner = slash != NULL && slash != id
		    ? json_object_new_string_len(id, (int)(slash - id))
		    : json_object_new_string("system");

		json_object_object_add(m, "owned_by", owner);
	}
}

enum mg_err
mg_models_merge(json_object *list, json_object *upstream)
{
	json_object *src, *dst;
	size_t i, n;

	if (!json_object_object_get_ex(upstream, "data", &src) ||
	    !json_object_is_type(src, json_type_array))
		return MG_ERR_UPSTREAM;
	if (!json_object_object_get_ex(list, "data", &dst))
		return MG_ERR_INVALID;
	n = json_object_array_length(src);
	for (i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(src, i), *idv;
		const char *id;

		if (!json_object_is_type(m, json_type_object) ||
		    !json_object_object_get_ex(m, "id", &idv) ||
		    !json_object_is_type(idv, json_type_string))
			continue;
		id = json_object_get_string(idv);
		/* an id no request may name (lib/request) has no place in the
		 * catalog: its control bytes would reach the model list and
		 * the rows, its broken UTF-8 fail the whole sync in Postgres */
		if (id[0] == '\0' || !mg_text_printable(id, strlen(id)) || mg_models_find(list, id) != NULL)
			continue;
		openai_shape(m, id);
		if (json_object_array_add(dst, json_object_get(m)) != 0) {
			json_object_put(m);
			return MG_ERR_NOMEM;
		}
	}
	return MG_OK;
}

static int
in_array(json_object *arr, const char *id)
{
	size_t i, n = json_object_array_length(arr);

	for (i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);

		if (json_object_is_type(v, json_type_string) && strcmp(json_object_get_string(v), id) == 0)
			return 1;
	}
	return 0;
}

enum mg_err
mg_models_keep(json_object *list, json_object *allowed)
{
	json_object *data, *kept;
	size_t i, n;

	if (allowed == NULL || !json_object_is_type(allowed, json_type_array) ||
	    json_object_array_length(allowed) == 0)
		return MG_OK;
	if (!json_object_object_get_ex(list, "data", &data) ||
	    !json_object_is_type(data, json_type_array))
		return MG_OK;
	kept = json_object_new_array();
	if (kept == NULL)
		return MG_ERR_NOMEM;
	n = json_object_array_length(data);
	for (i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(data, i), *idv;

		if (json_object_object_get_ex(m, "id", &idv) && json_object_is_type(idv, json_type_string) &&
		    in_array(allowed, json_object_get_string(idv)) &&
		    json_object_array_add(kept, json_object_get(m)) != 0) {
			json_object_put(m);
			json_object_put(kept);
			return MG_ERR_NOMEM;
		}
	}
	json_object_object_add(list, "data", kept);
	return MG_OK;
}
