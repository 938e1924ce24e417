/* reconcile.c -- Per-generation checks: the rows whose cost is to be checked
 * are leased from Postgres, looked up with GET {base}/generation?id= and
 * confirmed, adjusted or retried there (sql/functions/reconcile.sql).
 * Called by the responders' upkeep thread, never on a request. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "jscan.h"
#include "log.h"
#include "money.h"
#include "reconcile.h"

/* A leased row comes back to the others after this long (seconds) if
 * this process dies or its lookup fails. */
#define LEASE_SECONDS 60

int
mg_recon_path(const char *id, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	static const char prefix[] = "/generation?id=";
	size_t n = sizeof(prefix) - 1;
	const unsigned char *p;

	if (size <= n)
		return -1;
	memcpy(out, prefix, n);
	for (p = (const unsigned char *)id; *p != '\0'; p++) {
		int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~';

		if (n + (plain ? 1 : 3) >= size)
			return -1;
		if (plain) {
			out[n++] = (char)*p;
		} else {
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	out[n] = '\0';
	return 0;
}

/* 1 when body is a JSON object with an "error" member: the upstream's
 * own answer that it does not know the id, not a page of a server that
 * has no such route. */
static int
is_error_object(const char *body, size_t len)
{
	struct mg_jscan s;
	struct mg_jscan_value v, err;

	mg_jscan_init(&s, body, len);
	mg_jscan_value(&s, &v);
	if (v.type != MG_JSCAN_OBJECT)
		return 0;
	mg_jscan_pick(&s, "error", &err);
	mg_jscan_finish(&s);
	return mg_jscan_ok(&s) && err.type == MG_JSCAN_OBJECT;
}

enum mg_recon_answer
mg_recon_read(long status, const char *body, size_t len, char *cost, size_t size)
{
	struct mg_jscan s;
	struct mg_jscan_value v, data, total;

	if (size > 0)
		cost[0] = '\0';
	if (status == 404)
		return is_error_object(body, len) ? MG_RECON_NOT_YET : MG_RECON_NO_API;
	if (status == 405 || status == 501)
		return MG_RECON_NO_API;
	if (status != 200)
		return MG_RECON_FAILED;
	mg_jscan_init(&s, body, len);
	mg_jscan_value(&s, &v);
	if (v.type != MG_JSCAN_OBJECT)
		return MG_RECON_FAILED;
	mg_jscan_pick(&s, "data", &data);
	if (data.type != MG_JSCAN_OBJECT)
		return MG_RECON_FAILED;
	/* back into data: picked whole, read again from its start */
	mg_jscan_init(&s, data.text, (size_t)(body + len - data.text));
	mg_jscan_value(&s, &v);
	mg_jscan_pick(&s, "total_cost", &total);
	if (!mg_jscan_ok(&s) || total.type != MG_JSCAN_NUMBER || total.len >= size ||
	    total.len >= MG_MONEY_MAX)
		return MG_RECON_FAILED;
	memcpy(cost, total.text, total.len);
	cost[total.len] = '\0';
	if (!mg_money_valid(cost, MG_MONEY_NUMBER)) {
		cost[0] = '\0';
		return MG_RECON_FAILED;
	}
	return MG_RECON_BILLED;
}

/* Looks row w up and records what the upstream said.  MG_OK unless
 * Postgres failed. */
static enum mg_err
check_row(struct mg_store *s, struct mg_upstream *up, size_t max_response,
    const struct mg_recon_row *w, int *no_api, struct mg_recon_pass *out)
{
	struct mg_upstream_reply reply;
	char path[512], cost[MG_MONEY_MAX], state[32];
	enum mg_recon_answer a = MG_RECON_FAILED;
	enum mg_err rc = MG_OK;
	long long adjustment = 0;

	if (mg_recon_path(w->upstream_id, path, sizeof(path)) != 0) {
		out->failed++;
		return MG_OK;
	}
	mg_upstream_reply_init(&reply, max_response);
	out->looked++;
	if (mg_upstream_call(up, path, NULL, 0, &reply) == MG_OK)
		a = mg_recon_read(reply.status, mg_buf_str(&reply.body), reply.body.len,
		    cost, sizeof(cost));
	switch (a) {
	case MG_RECON_BILLED:
		rc = mg_store_recon_apply(s, w, cost, state, sizeof(state), &adjustment);
		if (adjustment > 0)
			out->raised += (unsigned long long)adjustment;
		else if (adjustment < 0)
			out->lowered += (unsigned long long)-adjustment;
		if (rc == MG_OK && strcmp(state, "adjusted") == 0) {
			out->adjusted++;
			mg_log(MG_LOG_INFO, w->request_id, "reconciled: the upstream billed %s USD; "
			    "adjusted", cost);
		} else if (rc == MG_OK) {
			out->confirmed++;
		}
		break;
	case MG_RECON_NOT_YET:
		rc = mg_store_recon_retry(s, w, state, sizeof(state));
		if (rc == MG_OK && strcmp(state, "missing_upstream") == 0) {
			out->missing++;
			mg_log(MG_LOG_WARN, w->request_id, "reconciliation: the upstream does not "
			    "know the generation after %d lookups", w->tries + 1);
		} else if (rc == MG_OK) {
			out->retried++;
		}
		break;
	case MG_RECON_NO_API:
		*no_api = 1;
		mg_log(MG_LOG_WARN, NULL, "reconciliation: the upstream has no per-generation "
		    "API (GET /generation answered %ld); usage rows are marked unsupported",
		    reply.status);
		break;
	case MG_RECON_FAILED:
		out->failed++;
		break;
	}
	mg_upstream_reply_free(&reply);
	return rc;
}

enum mg_err
mg_reconcile_pass(struct mg_store *s, struct mg_upstream *up, size_t max_response, int max,
    int *no_api, struct mg_recon_pass *out)
{
	struct mg_recon_row *rows = NULL;
	enum mg_err rc = MG_OK;
	int i, n = 0;

	memset(out, 0, sizeof(*out));
	if (!*no_api) {
		rc = mg_store_recon_claim(s, max, LEASE_SECONDS, &rows, &n);
		for (i = 0; rc == MG_OK && i < n && !*no_api; i++)
			rc = check_row(s, up, max_response, &rows[i], no_api, out);
		free(rows);
	}
	if (rc == MG_OK && *no_api)
		rc = mg_store_recon_unsupported(s, &out->unsupported);
	return rc;
}

/* The text of a number, or of a string holding one, that v holds, into
 * out (size bytes): 0, or -1 when v is neither or it is not an amount. */
static int
amount_text(const struct mg_jscan_value *v, char *out, size_t size)
{
	if ((v->type != MG_JSCAN_NUMBER && v->type != MG_JSCAN_STRING) || v->escaped ||
	    v->len >= size || v->len >= MG_MONEY_MAX)
		return -1;
	memcpy(out, v->text, v->len);
	out[v->len] = '\0';
	return mg_money_valid(out, MG_MONEY_NUMBER) ? 0 : -1;
}

/* Appends n bytes of a JSON string's text as the upstream escaped it
 * (the scanner checked it) with its raw control characters escaped:
 * the scanner takes them, as json-c does, but Postgres's json does
 * not.  0, or -1 when out grows past its cap. */
static int
add_json_text(struct mg_buf *out, const char *p, size_t n)
{
	size_t i, from = 0;

	for (i = 0; i < n; i++) {
		if ((unsigned char)p[i] >= 0x20)
			continue;
		if (mg_buf_add(out, p + from, i - from) != MG_OK ||
		    mg_buf_addf(out, "\\u%04x", (unsigned)(unsigned char)p[i]) != MG_OK)
			return -1;
		from = i + 1;
	}
	return mg_buf_add(out, p + from, n - from) == MG_OK ? 0 : -1;
}

/* Reads one item of an activity answer (the scanner just read its '{')
 * and appends it to out as {"model", "requests", "usage"}; items of
 * another day than day are left out.  0, or -1 when it is not one. */
static int
activity_item(struct mg_jscan *s, const char *day, struct mg_buf *out, int *first)
{
	static const char *const names[] = { "model", "requests", "usage", "date", NULL };
	struct mg_jscan_value key, v, model = { 0 }, usage = { 0 };
	char amount[MG_MONEY_MAX], reqs[MG_MONEY_MAX] = "0";
	const char *count;
	int f, other_day = 0;

	while ((f = mg_jscan_field(s, names, &key)) != -1 && mg_jscan_ok(s)) {
		mg_jscan_value(s, &v);
		if (f == 1)
			model = v;
		else if (f == 2 && amount_text(&v, reqs, sizeof(reqs)) != 0)
			return -1;
		else if (f == 3)
			usage = v;
		else if (f == 4 && v.type == MG_JSCAN_STRING && (v.len < 10 ||
		    strncmp(v.text, day, 10) != 0))
			other_day = 1;
		mg_jscan_skip(s, &v);
	}
	if (!mg_jscan_ok(s) || model.type != MG_JSCAN_STRING ||
	    amount_text(&usage, amount, sizeof(amount)) != 0 || strpbrk(reqs, ".eE") != NULL)
		return -1;
	if (other_day)
		return 0;
	/* a count written "03" (in a string) is 3: JSON takes no leading zero */
	count = reqs + strspn(reqs, "0");
	if (*count == '\0')
		count--;
	if (mg_buf_addf(out, "%s{\"model\":\"", *first ? "" : ",") != MG_OK ||
	    add_json_text(out, model.text, model.len) != 0 ||
	    mg_buf_addf(out, "\",\"requests\":%s,\"usage\":\"%s\"}", count, amount) != MG_OK)
		return -1;
	*first = 0;
	return 0;
}

int
mg_recon_activity_read(const char *body, size_t len, const char *day, struct mg_buf *out)
{
	struct mg_jscan s;
	struct mg_jscan_value v, key;
	static const char *const names[] = { "data", NULL };
	int f, first = 1, seen = 0;

	mg_buf_reset(out);
	if (mg_buf_adds(out, "[") != MG_OK)
		return -1;
	mg_jscan_init(&s, body, len);
	mg_jscan_value(&s, &v);
	if (v.type != MG_JSCAN_OBJECT)
		return -1;
	while ((f = mg_jscan_field(&s, names, &key)) != -1 && mg_jscan_ok(&s)) {
		mg_jscan_value(&s, &v);
		if (f != 1) {
			mg_jscan_skip(&s, &v);
			continue;
		}
		if (v.type != MG_JSCAN_ARRAY)
			return -1;
		seen = 1;
		while (mg_jscan_element(&s)) {
			mg_jscan_value(&s, &v);
			if (v.type != MG_JSCAN_OBJECT || activity_item(&s, day, out, &first) != 0)
				return -1;
		}
	}
	mg_jscan_finish(&s);
	if (!mg_jscan_ok(&s) || !seen || mg_buf_adds(out, "]") != MG_OK)
		return -1;
	return 0;
}

int
mg_recon_credits_read(const char *body, size_t len, char *usage, size_t size)
{
	struct mg_jscan s;
	struct mg_jscan_value v, data, total;

	mg_jscan_init(&s, body, len);
	mg_jscan_value(&s, &v);
	if (v.type != MG_JSCAN_OBJECT)
		return -1;
	mg_jscan_pick(&s, "data", &data);
	if (!mg_jscan_ok(&s) || data.type != MG_JSCAN_OBJECT)
		return -1;
	mg_jscan_init(&s, data.text, (size_t)(body + len - data.text));
	mg_jscan_value(&s, &v);
	mg_jscan_pick(&s, "total_usage", &total);
	if (!mg_jscan_ok(&s))
		return -1;
	return amount_text(&total, usage, size);
}

/* GET path on up into reply; the status, or -1 when no answer came. */
static long
get(struct mg_upstream *up, const char *path, struct mg_upstream_reply *reply)
{
	if (mg_upstream_call(up, path, NULL, 0, reply) != MG_OK)
		return -1;
	return reply->status;
}

enum mg_err
mg_recon_close(struct mg_store *s, struct mg_upstream *mgmt, const char *key_hash,
    size_t max_response, const char *day, char **json, char *err, size_t errlen)
{
	struct mg_upstream_reply reply;
	struct mg_buf activity;
	char path[160], credits[MG_MONEY_MAX];
	int have_credits = 0;
	long status;
	enum mg_err rc = MG_ERR_UPSTREAM;

	*json = NULL;
	if (key_hash != NULL && key_hash[0] != '\0')
		snprintf(path, sizeof(path), "/activity?date=%.10s&api_key_hash=%.64s", day,
		    key_hash);
	else
		snprintf(path, sizeof(path), "/activity?date=%.10s", day);
	mg_buf_init(&activity, max_response);
	mg_upstream_reply_init(&reply, max_response);
	status = get(mgmt, path, &reply);
	if (status == 200 && mg_recon_activity_read(mg_buf_str(&reply.body), reply.body.len, day,
	    &activity) == 0) {
		rc = MG_OK;
	} else if (status < 0) {
		mg_err_detail(err, errlen, "GET /activity failed: %s", mg_upstream_last_error(mgmt));
	} else if (status == 401 || status == 403) {
		mg_err_detail(err, errlen, "GET /activity answered %ld: the upstream takes a "
		    "management key for it (upstream.management_key_file)", status);
	} else if (status == 200) {
		mg_err_detail(err, errlen, "GET /activity answered something that is not an "
		    "activity list");
	} else {
		mg_err_detail(err, errlen, "GET /activity answered %ld", status);
	}
	if (rc == MG_OK) {
		/* the account's side is a bonus: the close stands without it */
		mg_upstream_reply_free(&reply);
		mg_upstream_reply_init(&reply, max_response);
		status = get(mgmt, "/credits", &reply);
		have_credits = status == 200 && mg_recon_credits_read(mg_buf_str(&reply.body),
		    reply.body.len, credits, sizeof(credits)) == 0;
		if (!have_credits)
			mg_log(MG_LOG_WARN, NULL, "daily close of %.10s: no account total (GET /credits "
			    "answered %ld)", day, status);
		rc = mg_store_recon_close_record(s, day, mg_buf_str(&activity),
		    have_credits ? credits : NULL, json);
		if (rc != MG_OK)
			mg_err_detail(err, errlen, "%s", mg_store_last_error());
	}
	mg_upstream_reply_free(&reply);
	mg_buf_free(&activity);
	return rc;
}
