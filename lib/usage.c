/* usage.c -- Usage of an upstream answer: tokens, cost and generation id read from
 * a reply or a stream chunk, and request ids.  Called by the gateway. */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "jscan.h"
#include "money.h"
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

/* total_tokens from the parts when the upstream left it out (at most
 * LLONG_MAX: the parts come from outside) */
static void
complete_total(struct mg_usage *u)
{
	if (u->total_tokens < 0 && u->prompt_tokens >= 0 &&
	    __builtin_add_overflow(u->prompt_tokens,
	    u->completion_tokens > 0 ? u->completion_tokens : 0, &u->total_tokens))
		u->total_tokens = LLONG_MAX;
}

/* Keeps cost text (len bytes, json-c's text of the number) when it is an
 * amount (lib/money). */
static void
take_cost(struct mg_usage *u, const char *text, size_t len)
{
	char tmp[MG_COST_MAX];

	if (len >= sizeof(tmp))
		return;
	memcpy(tmp, text, len);
	tmp[len] = '\0';
	if (mg_money_valid(tmp, MG_MONEY_NUMBER)) {
		memcpy(u->cost, tmp, len + 1);
		u->cost_source = "upstream";
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
	complete_total(u);
	/* json-c keeps a number's source text, so the decimal stays exact */
	if (json_object_object_get_ex(usage, "cost", &cost) &&
	    (json_object_is_type(cost, json_type_double) || json_object_is_type(cost, json_type_int))) {
		const char *text = json_object_get_string(cost);

		if (text != NULL)
			take_cost(u, text, strlen(text));
	}
}

/* What mg_usage_from_text found (each member of interest at most once) */
struct found {
	struct mg_jscan_value id, provider, usage, prompt, completion, total, cost;
};

static void
scan_usage(struct mg_jscan *s, struct found *f)
{
	static const char *const names[] = { "prompt_tokens", "completion_tokens",
		"total_tokens", "cost", NULL };
	struct mg_jscan_value *slots[] = { &f->prompt, &f->completion, &f->total, &f->cost };
	int i;

	while ((i = mg_jscan_field(s, names, NULL)) >= 0) {
		if (i == 0) {
			mg_jscan_next(s);
			continue;
		}
		mg_jscan_take(s, slots[i - 1]);
		mg_jscan_skip(s, slots[i - 1]);
	}
}

/* copy_tokens for a scanned value: json-c's int type, kept when >= 0 */
static int
scanned_tokens(const struct mg_jscan_value *v, long long *dst)
{
	long long n;

	if (v->type != MG_JSCAN_NUMBER || !v->integer)
		return 0;
	if (mg_jscan_int(v, &n) < 0)
		return -1;      /* json-c clamps what overflows: leave it to it */
	if (n >= 0)
		*dst = n;
	return 0;
}

/* copy_string for a scanned value (no escapes: checked by the caller) */
static void
scanned_string(const struct mg_jscan_value *v, char *dst, size_t len)
{
	size_t n = v->len < len - 1 ? v->len : len - 1;

	if (v->type != MG_JSCAN_STRING)
		return;
	memcpy(dst, v->text, n);
	dst[n] = '\0';
}

enum mg_err
mg_usage_from_text(struct mg_usage *u, const char *text, size_t len)
{
	return mg_usage_scan(u, text, len, NULL);
}

enum mg_err
mg_usage_scan(struct mg_usage *u, const char *text, size_t len, struct mg_usage_walk *walk)
{
	static const char *const names[] = { "id", "provider", "usage", NULL };
	struct mg_jscan s;
	struct mg_jscan_value root, key;
	struct found f;
	struct mg_usage t;
	int i;

	memset(&f, 0, sizeof(f));
	mg_jscan_init(&s, text, len);
	mg_jscan_value(&s, &root);
	if (root.type != MG_JSCAN_OBJECT)
		return MG_ERR_JSON;
	while ((i = mg_jscan_field(&s, names, &key)) >= 0) {
		struct mg_jscan_value *slot = i == 1 ? &f.id : i == 2 ? &f.provider : &f.usage;

		if (i == 0) {
			if (walk != NULL)
				walk->member(walk->arg, &s, &key);
			else
				mg_jscan_next(&s);
			continue;
		}
		mg_jscan_take(&s, slot);
		if (i == 3 && f.usage.type == MG_JSCAN_OBJECT)
			scan_usage(&s, &f);
		else
			mg_jscan_skip(&s, slot);
	}
	mg_jscan_finish(&s);
	if (!mg_jscan_ok(&s) || f.id.escaped || f.provider.escaped)
		return MG_ERR_JSON;
	if (walk != NULL)
		walk->usage = f.usage.type != MG_JSCAN_NONE && f.usage.type != MG_JSCAN_NULL;

	/* applied to a copy first: u changes only when all of it is taken */
	t = *u;
	scanned_string(&f.id, t.upstream_id, sizeof(t.upstream_id));
	scanned_string(&f.provider, t.provider, sizeof(t.provider));
	if (f.usage.type == MG_JSCAN_OBJECT) {
		if (scanned_tokens(&f.prompt, &t.prompt_tokens) < 0 ||
		    scanned_tokens(&f.completion, &t.completion_tokens) < 0 ||
		    scanned_tokens(&f.total, &t.total_tokens) < 0)
			return MG_ERR_JSON;
		complete_total(&t);
		if (f.cost.type == MG_JSCAN_NUMBER) {
			long long n;

			/* json-c writes an integer anew: "-0" becomes "0", and
			 * past 18 digits the clamped value; leave those to it */
			if (f.cost.integer && (mg_jscan_int(&f.cost, &n) < 0 ||
			    (n == 0 && f.cost.text[0] == '-')))
				return MG_ERR_JSON;
			take_cost(&t, f.cost.text, f.cost.len);
		}
	}
	*u = t;
	return MG_OK;
}
