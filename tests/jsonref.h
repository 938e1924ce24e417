#ifndef MG_TESTS_JSONREF_H
#define MG_TESTS_JSONREF_H

/* jsonref.h -- The references the JSON readers of the request path are
 * checked against, by tests/unit/test_jscan.c and the fuzz targets: the
 * scanner's verdict on a whole text, json-c's types, and an answer's
 * usage as read from a json-c tree. */

#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "jscan.h"
#include "money.h"
#include "text.h"
#include "usage.h"

/* The scanner's verdict on a whole text, walking every value. */
static inline int
scan_ok(const char *text, size_t len, enum mg_jscan_type *top)
{
	struct mg_jscan s;
	struct mg_jscan_value v;

	mg_jscan_init(&s, text, len);
	mg_jscan_value(&s, &v);
	mg_jscan_skip(&s, &v);
	mg_jscan_finish(&s);
	*top = v.type;
	return mg_jscan_ok(&s);
}

static inline json_type
json_c_type(enum mg_jscan_type t)
{
	switch (t) {
	case MG_JSCAN_OBJECT: return json_type_object;
	case MG_JSCAN_ARRAY: return json_type_array;
	case MG_JSCAN_STRING: return json_type_string;
	case MG_JSCAN_TRUE: case MG_JSCAN_FALSE: return json_type_boolean;
	case MG_JSCAN_NULL: return json_type_null;
	default: return json_type_double;  /* numbers: int or double */
	}
}

/* The oracle: usage as read from a json-c tree. */
static inline void
tree_string(json_object *obj, const char *name, char *dst, size_t len)
{
	json_object *v;

	if (json_object_object_get_ex(obj, name, &v) && json_object_is_type(v, json_type_string)) {
		snprintf(dst, len, "%s", json_object_get_string(v));
		/* the reader keeps printable UTF-8 only (lib/text) */
		mg_text_scrub(dst);
	}
}

static inline void
tree_tokens(json_object *usage, const char *name, long long *dst)
{
	json_object *v;

	if (json_object_object_get_ex(usage, name, &v) && json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) >= 0)
		*dst = json_object_get_int64(v);
}

/* 1 when the cost is one to leave out of the comparison. */
static inline int
usage_from_tree(struct mg_usage *u, json_object *resp)
{
	json_object *usage, *cost;
	const char *text;

	tree_string(resp, "id", u->upstream_id, sizeof(u->upstream_id));
	tree_string(resp, "provider", u->provider, sizeof(u->provider));
	if (!json_object_object_get_ex(resp, "usage", &usage) ||
	    !json_object_is_type(usage, json_type_object))
		return 0;
	tree_tokens(usage, "prompt_tokens", &u->prompt_tokens);
	tree_tokens(usage, "completion_tokens", &u->completion_tokens);
	tree_tokens(usage, "total_tokens", &u->total_tokens);
	if (u->total_tokens < 0 && u->prompt_tokens >= 0 &&
	    __builtin_add_overflow(u->prompt_tokens,
	    u->completion_tokens > 0 ? u->completion_tokens : 0, &u->total_tokens))
		u->total_tokens = LLONG_MAX;
	/* json-c keeps a double's text as written, and an integer's it
	 * writes anew: "-0" as "0", past the range clamped, where the reader
	 * keeps the text as written (test_usage.c has those cases); an
	 * integer cost of 0 or past 2^62 is left out of the comparison */
	if (!json_object_object_get_ex(usage, "cost", &cost))
		return 0;
	if (json_object_is_type(cost, json_type_int) &&
	    (json_object_get_int64(cost) == 0 || json_object_get_int64(cost) > (1LL << 62)))
		return 1;
	if ((json_object_is_type(cost, json_type_double) || json_object_is_type(cost, json_type_int)) &&
	    (text = json_object_get_string(cost)) != NULL && mg_money_valid(text, MG_MONEY_NUMBER) &&
	    strlen(text) < sizeof(u->cost)) {
		snprintf(u->cost, sizeof(u->cost), "%s", text);
		u->cost_source = "upstream";
	}
	return 0;
}

#endif
