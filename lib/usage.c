/* usage.c -- Usage of an upstream answer: tokens, cost and generation id read from
 * a reply or a stream chunk, and request ids.  Called by the gateway. */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "jscan.h"
#include "money.h"
#include "text.h"
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

/* Keeps cost text (len bytes, the number as the upstream wrote it) when
 * it is an amount (lib/money). */
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

/* What mg_usage_scan found: the last value of each member of interest. */
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

	/* usage named again: only the last one counts */
	f->prompt.type = f->completion.type = f->total.type = f->cost.type = MG_JSCAN_NONE;
	while ((i = mg_jscan_field(s, names, NULL)) >= 0) {
		if (i == 0) {
			mg_jscan_next(s);
			continue;
		}
		mg_jscan_value(s, slots[i - 1]);
		mg_jscan_skip(s, slots[i - 1]);
	}
}

/* Token counts: an integer >= 0 (past the range, LLONG_MAX, as json-c
 * clamps); anything else leaves *dst alone. */
static void
scanned_tokens(const struct mg_jscan_value *v, long long *dst)
{
	long long n;

	if (v->type != MG_JSCAN_NUMBER || !v->integer)
		return;
	if (mg_jscan_int(v, &n) < 0)
		n = v->text[0] == '-' ? -1 : LLONG_MAX;
	if (n >= 0)
		*dst = n;
}

/* A string member decoded into dst (cut to fit, as snprintf would), each
 * byte that is not printable UTF-8 made '?': the upstream's text goes
 * into rows, log lines and URLs, and Postgres refuses broken UTF-8. */
static void
scanned_string(const struct mg_jscan_value *v, char *dst, size_t len)
{
	if (v->type != MG_JSCAN_STRING)
		return;
	if (mg_jscan_string(v, dst, len, NULL) < 0)
		dst[0] = '\0';
	mg_text_scrub(dst);
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
		mg_jscan_value(&s, slot);
		if (i == 3 && f.usage.type == MG_JSCAN_OBJECT)
			scan_usage(&s, &f);
		else
			mg_jscan_skip(&s, slot);
	}
	mg_jscan_finish(&s);
	if (!mg_jscan_ok(&s))
		return MG_ERR_JSON;
	if (walk != NULL)
		walk->usage = f.usage.type != MG_JSCAN_NONE && f.usage.type != MG_JSCAN_NULL;
	scanned_string(&f.id, u->upstream_id, sizeof(u->upstream_id));
	scanned_string(&f.provider, u->provider, sizeof(u->provider));
	if (f.usage.type == MG_JSCAN_OBJECT) {
		scanned_tokens(&f.prompt, &u->prompt_tokens);
		scanned_tokens(&f.completion, &u->completion_tokens);
		scanned_tokens(&f.total, &u->total_tokens);
		complete_total(u);
		if (f.cost.type == MG_JSCAN_NUMBER)
			take_cost(u, f.cost.text, f.cost.len);
	}
	return MG_OK;
}
