#include "config.h"

#include <stdio.h>
#include <string.h>

#include "usage.h"

void
mg_usage_init(struct mg_usage *u)
{
	memset(u, 0, sizeof(*u));
	u->prompt_tokens = -1;
	u->completion_tokens = -1;
	u->total_tokens = -1;
	u->ttft_ms = -1;
}

int
mg_decimal_valid(const char *s)
{
	const char *p = s;
	int digits = 0;

	if (strlen(s) >= MG_COST_MAX)
		return 0;
	if (*p == '-' || *p == '+')
		p++;
	while (*p >= '0' && *p <= '9') {
		p++;
		digits++;
	}
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			p++;
			digits++;
		}
	}
	if (digits == 0)
		return 0;
	if (*p == 'e' || *p == 'E') {
		int exp_digits = 0;

		p++;
		if (*p == '-' || *p == '+')
			p++;
		while (*p >= '0' && *p <= '9') {
			p++;
			exp_digits++;
		}
		if (exp_digits == 0 || exp_digits > 3)
			return 0;
	}
	return *p == '\0';
}

static void
copy_string(json_object *obj, const char *name, char *dst, size_t len)
{
	json_object *v;

	if (json_object_object_get_ex(obj, name, &v) && json_object_is_type(v, json_type_string))
		snprintf(dst, len, "%s", json_object_get_string(v));
}

static void
copy_tokens(json_object *usage, const char *name, long long *dst)
{
	json_object *v;

	if (json_object_object_get_ex(usage, name, &v) && json_object_is_type(v, json_type_int)) {
		long long n = json_object_get_int64(v);

		if (n >= 0)
			*dst = n;
	}
}

void
mg_usage_from_json(struct mg_usage *u, json_object *resp)
{
	json_object *usage, *cost;

	if (!json_object_is_type(resp, json_type_object))
		return;
	copy_string(resp, "id", u->upstream_id, sizeof(u->upstream_id));
	copy_string(resp, "provider", u->provider, sizeof(u->provider));
	if (!json_object_object_get_ex(resp, "usage", &usage) ||
	    !json_object_is_type(usage, json_type_object))
		return;
	copy_tokens(usage, "prompt_tokens", &u->prompt_tokens);
	copy_tokens(usage, "completion_tokens", &u->completion_tokens);
	copy_tokens(usage, "total_tokens", &u->total_tokens);
	if (u->total_tokens < 0 && u->prompt_tokens >= 0)
		u->total_tokens = u->prompt_tokens +
		    (u->completion_tokens > 0 ? u->completion_tokens : 0);
	/* json-c keeps a number's source text, so the decimal stays exact */
	if (json_object_object_get_ex(usage, "cost", &cost) &&
	    (json_object_is_type(cost, json_type_double) || json_object_is_type(cost, json_type_int))) {
		const char *text = json_object_get_string(cost);

		if (text != NULL && mg_decimal_valid(text) && text[0] != '-') {
			snprintf(u->cost, sizeof(u->cost), "%s", text);
			u->cost_source = "upstream";
		}
	}
}
