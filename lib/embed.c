/* embed.c -- Embeddings answers: float arrays turned into base64 of little-endian
 * float32 when the client asked for encoding_format "base64".  Called by
 * the gateway. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "embed.h"

static enum mg_err
encode_one(json_object *item)
{
	json_object *vec, *str;
	size_t i, n;
	unsigned char *raw;
	char *text;

	if (!json_object_object_get_ex(item, "embedding", &vec))
		return MG_ERR_UPSTREAM;
	if (json_object_is_type(vec, json_type_string))
		return MG_OK;
	if (!json_object_is_type(vec, json_type_array))
		return MG_ERR_UPSTREAM;
	n = json_object_array_length(vec);
	raw = malloc(n * 4 + 1);
	text = malloc(mg_base64_len(n * 4, 0) + 1);
	if (raw == NULL || text == NULL) {
		free(raw);
		free(text);
		return MG_ERR_NOMEM;
	}
	for (i = 0; i < n; i++) {
		json_object *x = json_object_array_get_idx(vec, i);
		float f;
		uint32_t bits;

		if (!json_object_is_type(x, json_type_double) && !json_object_is_type(x, json_type_int)) {
			free(raw);
			free(text);
			return MG_ERR_UPSTREAM;
		}
		f = (float)json_object_get_double(x);
		memcpy(&bits, &f, 4);
		raw[4 * i] = (unsigned char)bits;
		raw[4 * i + 1] = (unsigned char)(bits >> 8);
		raw[4 * i + 2] = (unsigned char)(bits >> 16);
		raw[4 * i + 3] = (unsigned char)(bits >> 24);
	}
	mg_base64_encode(raw, n * 4, text, 0);
	free(raw);
	str = json_object_new_string(text);
	free(text);
	if (str == NULL)
		return MG_ERR_NOMEM;
	json_object_object_add(item, "embedding", str);
	return MG_OK;
}

enum mg_err
mg_embed_to_base64(json_object *resp)
{
	json_object *data;
	size_t i, n;

	if (!json_object_object_get_ex(resp, "data", &data) ||
	    !json_object_is_type(data, json_type_array))
		return MG_ERR_UPSTREAM;
	n = json_object_array_length(data);
	for (i = 0; i < n; i++) {
		json_object *item = json_object_array_get_idx(data, i);
		enum mg_err e;

		if (!json_object_is_type(item, json_type_object))
			return MG_ERR_UPSTREAM;
		e = encode_one(item);
		if (e != MG_OK)
			return e;
	}
	return MG_OK;
}
