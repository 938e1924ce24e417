/* gateway.c -- The request handler: routes a FastCGI request and runs a
 * call through its steps, parse → admit → relay → settle, answering every
 * failure with an OpenAI-style error.  The steps' own modules: auth.c (the
 * key), quota.c and ledger.c (admission), stream.c and upstream.c (the
 * relay), exchange.c (the answer and the usage row).  Called by the
 * responder threads. */
#include "config.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "catalog.h"
#include "clock.h"
#include "embed.h"
#include "exchange.h"
#include "fcgi.h"
#include "gateway.h"
#include "log.h"
#include "models.h"
#include "quota.h"
#include "request.h"
#include "router.h"
#include "stream.h"
#include "usage.h"
#include "dashboard.h"
#include "mcpapi.h"
#include "metrics.h"
#include "metricsapi.h"
#include "text.h"
#include "usageapi.h"

/* A worker's buffers keep up to this much between requests: enough for
 * a usual chat request and answer without a realloc, little enough that
 * an idle thread holds almost nothing. */
#define WORKER_KEEP (16u << 10)

static void handle_call(struct mg_worker *w, struct mg_exchange *x, enum mg_endpoint ep);
static void handle_models(struct mg_worker *w, struct mg_exchange *x, const char *id);
static void handle_health(struct mg_worker *w, struct mg_exchange *x);

/* Routes the request and serves it; the endpoint it counts under. */
static enum mg_metrics_ep
dispatch(struct mg_worker *w, struct mg_exchange *x, FCGX_Request *r)
{
	struct mg_route_match m;
	struct mg_apierror e;
	const char *method = mg_fcgi_param(r, "REQUEST_METHOD");
	const char *uri = mg_fcgi_param(r, "REQUEST_URI");

	if (uri == NULL)
		uri = mg_fcgi_param(r, "SCRIPT_NAME");
	mg_router_match(method, uri, &m);
	mg_log(MG_LOG_DEBUG, x->request_id, "%s %.300s", method ? method : "-", uri ? uri : "-");
	if (m.route == MG_ROUTE_NONE) {
		mg_apierror_set(&e, 404, "invalid_request_error", NULL, "not_found",
		    "Unknown request URL: %s %.200s. See the API reference for the routes this gateway serves.",
		    method ? method : "-", uri ? uri : "-");
		mg_exchange_send_error(w, x, &e);
		return MG_MEP_OTHER;
	}
	if (!m.method_ok) {
		mg_exchange_header(x, "Allow", "%s", m.allow);
		mg_apierror_set(&e, 405, "invalid_request_error", NULL, "method_not_allowed",
		    "%s is not allowed on this URL; use %s.", method ? method : "-", m.allow);
		mg_exchange_send_error(w, x, &e);
		return MG_MEP_OTHER;
	}
	switch (m.route) {
	case MG_ROUTE_HEALTH:
		handle_health(w, x);
		return MG_MEP_HEALTH;
	case MG_ROUTE_CHAT:
		handle_call(w, x, MG_EP_CHAT);
		return MG_MEP_CHAT;
	case MG_ROUTE_EMBEDDINGS:
		handle_call(w, x, MG_EP_EMBEDDINGS);
		return MG_MEP_EMBEDDINGS;
	case MG_ROUTE_MODELS:
		if (mg_auth_project(w, x) == 0)
			handle_models(w, x, NULL);
		return MG_MEP_MODELS;
	case MG_ROUTE_MODEL:
		if (mg_auth_project(w, x) == 0)
			handle_models(w, x, m.model_id);
		return MG_MEP_MODELS;
	case MG_ROUTE_USAGE:
		mg_usageapi_handle(w, x, MG_REPORT_USAGE);
		return MG_MEP_USAGE;
	case MG_ROUTE_USAGE_REQUESTS:
		mg_usageapi_handle(w, x, MG_REPORT_REQUESTS);
		return MG_MEP_USAGE;
	case MG_ROUTE_QUOTA:
		mg_usageapi_handle(w, x, MG_REPORT_QUOTA);
		return MG_MEP_USAGE;
	case MG_ROUTE_RECONCILIATION:
		mg_usageapi_handle(w, x, MG_REPORT_RECONCILE);
		return MG_MEP_USAGE;
	case MG_ROUTE_MCP:
		mg_mcpapi_handle(w, x);
		return MG_MEP_MCP;
	case MG_ROUTE_USAGE_MODELS:
		mg_usageapi_handle(w, x, MG_REPORT_MODELS);
		return MG_MEP_USAGE;
	case MG_ROUTE_USAGE_PROJECTS:
		mg_usageapi_handle(w, x, MG_REPORT_PROJECTS);
		return MG_MEP_USAGE;
	case MG_ROUTE_DASHBOARD:
		mg_dashboard_handle(w, x, m.model_id);
		return MG_MEP_DASHBOARD;
	case MG_ROUTE_METRICS:
		mg_metricsapi_handle(w, x);
		return MG_MEP_METRICS;
	default:
		return MG_MEP_OTHER;
	}
}

void
mg_gateway_handle(struct mg_worker *w, FCGX_Request *r)
{
	struct mg_exchange x;
	enum mg_metrics_ep ep;
	unsigned long long total;

	mg_exchange_begin(&x, r);
	mg_metrics_gauge(MG_G_IN_FLIGHT, 1);
	ep = dispatch(w, &x, r);
	total = mg_clock_us_since(&x.start);
	/* a stream cut before its end still answered 200 */
	mg_metrics_request(ep, x.status != 0 ? x.status : 500, x.stream);
	if (ep == MG_MEP_CHAT || ep == MG_MEP_EMBEDDINGS) {
		int chat = ep == MG_MEP_CHAT;

		mg_metrics_observe(chat ? MG_H_REQUEST_CHAT : MG_H_REQUEST_EMBEDDINGS, total);
		if (x.upstream_us > 0) {
			mg_metrics_observe(chat ? MG_H_UPSTREAM_CHAT : MG_H_UPSTREAM_EMBEDDINGS,
			    x.upstream_us);
			mg_metrics_observe(chat ? MG_H_OVERHEAD_CHAT : MG_H_OVERHEAD_EMBEDDINGS,
			    total > x.upstream_us ? total - x.upstream_us : 0);
		}
	}
	mg_metrics_gauge(MG_G_IN_FLIGHT, -1);
}

/* --- chat completions and embeddings ------------------------------------ */

static int parse(struct mg_worker *w, struct mg_exchange *x, enum mg_endpoint ep,
    struct mg_call *call, struct mg_plan *plan, struct mg_usage *u, const char *hash,
    const char *prefix);
static int admit(struct mg_worker *w, struct mg_exchange *x, const struct mg_call *call,
    const struct mg_plan *plan, const char *hash, const char *prefix);
static void relay(struct mg_worker *w, struct mg_exchange *x, struct mg_call *call,
    const struct mg_plan *plan, struct mg_usage *u);

/* One call: the key, then parse → admit → relay (which settles). */
static void
handle_call(struct mg_worker *w, struct mg_exchange *x, enum mg_endpoint ep)
{
	char hash[MG_APIKEY_HASH_HEX_LEN + 1], prefix[MG_APIKEY_PREFIX_LEN + 1];
	struct mg_call call;
	struct mg_plan plan;
	struct mg_usage u;

	if (mg_auth_key(w, x, hash, prefix) < 0)
		return;
	mg_usage_init(&u);
	memcpy(u.request_id, x->request_id, sizeof(u.request_id));
	u.endpoint = mg_endpoint_name(ep);
	if (parse(w, x, ep, &call, &plan, &u, hash, prefix) < 0)
		return;
	if (admit(w, x, &call, &plan, hash, prefix) < 0) {
		mg_call_free(&call);
		return;
	}
	u.project_id = x->auth.project_id;
	u.key_id = x->auth.key_id;
	memcpy(u.model, call.model, strlen(call.model) + 1);
	u.stream = call.stream;
	x->stream = call.stream;
	if (call.stream)
		mg_stream_relay(w, x, &call, &plan, &u);
	else
		relay(w, x, &call, &plan, &u);
	mg_call_free(&call);
}

/* Reads and checks the body.  0 with call filled (the caller frees it);
 * -1 when the answer is sent: a bad body is not admitted, but recorded
 * for the key's project. */
static int
parse(struct mg_worker *w, struct mg_exchange *x, enum mg_endpoint ep, struct mg_call *call,
    struct mg_plan *plan, struct mg_usage *u, const char *hash, const char *prefix)
{
	struct mg_apierror e;
	enum mg_err rc;
	const char *models[1 + MG_CALL_MODELS_MAX];
	int i;

	mg_buf_reset(&w->body);
	rc = mg_fcgi_read_body(x->fr, &w->body);
	if (rc == MG_ERR_TOO_BIG) {
		mg_apierror_set(&e, 413, "invalid_request_error", NULL, "request_too_large",
		    "The request body is larger than this gateway accepts (%d bytes).",
		    w->gw->conf->max_body);
	} else if (rc != MG_OK) {
		mg_apierror_set(&e, 400, "invalid_request_error", NULL, "client_closed",
		    "The request body could not be read to its end.");
	} else {
		rc = mg_request_parse(ep, w->body.data, w->body.len, call, &e);
	}
	if (rc == MG_OK) {
		models[0] = call->model;
		for (i = 0; i < call->n_alt; i++)
			models[1 + i] = call->alt[i];
		plan->n = mg_route_plan(w->gw->conf, models, 1 + call->n_alt, plan->c,
		    w->gw->conf->route_max_attempts);
		if (plan->n > 0)
			return 0;
		mg_apierror_set(&e, 404, "invalid_request_error", "model", "model_not_found",
		    "The model '%.200s' does not exist or is not available through this gateway.",
		    call->model);
		memcpy(u->model, call->model, strlen(call->model) + 1);
		mg_call_free(call);
	}
	if (mg_auth_resolve(w, x, hash, prefix) < 0)
		return -1;
	u->project_id = x->auth.project_id;
	u->key_id = x->auth.key_id;
	mg_exchange_fail(w, x, u, &e);
	return -1;
}

/* The refusals counter of an admission outcome other than OK. */
static enum mg_metric
refusal_metric(enum mg_admit_outcome o)
{
	switch (o) {
	case MG_ADMIT_MODEL_NOT_ALLOWED:
		return MG_M_REFUSED_MODEL_NOT_ALLOWED;
	case MG_ADMIT_MODEL_NOT_FOUND:
		return MG_M_REFUSED_MODEL_NOT_FOUND;
	case MG_ADMIT_SPEND_CAP:
		return MG_M_REFUSED_SPEND_CAP;
	case MG_ADMIT_REQUESTS:
		return MG_M_REFUSED_REQUESTS;
	case MG_ADMIT_TOKENS:
		return MG_M_REFUSED_TOKENS;
	case MG_ADMIT_TOKENS_TOO_MANY:
		return MG_M_REFUSED_TOKENS_TOO_MANY;
	default:
		return MG_M_REFUSED_INVALID_KEY;
	}
}

/* Admits a parsed request: key, model, limits, reservation.  0 when
 * admitted; otherwise the answer (401, 403, 404, 429, 503) is sent. */
static int
admit(struct mg_worker *w, struct mg_exchange *x, const struct mg_call *call,
    const struct mg_plan *plan, const char *hash, const char *prefix)
{
	const struct mg_conf *conf = w->gw->conf;
	struct mg_admit_req q;
	struct mg_admission a;
	struct mg_apierror e;
	enum mg_err rc;

	memset(&q, 0, sizeof(q));
	q.key_hash_hex = hash;
	q.request_id = x->request_id;
	q.model = call->model;
	q.endpoint = mg_endpoint_name(call->endpoint);
	q.stream = call->stream;
	q.prompt_estimate = mg_quota_prompt_estimate(w->body.len);
	q.max_output = call->endpoint == MG_EP_CHAT ? call->max_output : 0;
	q.default_output = call->endpoint == MG_EP_CHAT ? conf->default_max_tokens : 0;
	q.fallback_prompt = conf->fallback_prompt_price;
	q.fallback_completion = conf->fallback_completion_price;
	q.conf = conf;
	q.cands = plan->c;
	q.n_cands = plan->n;
	/* the wait for the database, in the queue or not, counts from here */
	mg_clock_now(CLOCK_MONOTONIC, &q.since);
	rc = mg_ledger_admit(w->gw->ledger, &q, &a);
	if (rc == MG_OK && a.outcome != MG_ADMIT_OK)
		mg_metrics_count(refusal_metric(a.outcome), 1);
	if (rc != MG_OK || a.outcome == MG_ADMIT_INVALID_KEY) {
		mg_auth_refused(w, x, rc == MG_OK ? mg_auth_which_refusal(w, hash) : rc, prefix);
		return -1;
	}
	x->auth = a.auth;
	x->authed = 1;
	if (a.outcome != MG_ADMIT_MODEL_NOT_ALLOWED && a.outcome != MG_ADMIT_MODEL_NOT_FOUND &&
	    mg_quota_headers(&a, x->headers, sizeof(x->headers)) < 0)
		mg_log(MG_LOG_WARN, x->request_id, "rate-limit headers left out: no room");
	if (a.outcome != MG_ADMIT_OK) {
		mg_quota_refusal(&a, call->model, &e, x->headers, sizeof(x->headers));
		mg_log(MG_LOG_INFO, x->request_id, "refused: project=%s key=%s model=%.200s %s",
		    a.auth.project, a.auth.key_prefix, call->model, e.code != NULL ? e.code : e.type);
		mg_exchange_send_error(w, x, &e);
		return -1;
	}
	x->admitted = 1;
	x->ticket = a.ticket;
	mg_log(MG_LOG_DEBUG, x->request_id, "admitted: project=%s reserved=%s", a.auth.project,
	    a.reserved);
	return 0;
}

/* --- the calls of a request ----------------------------------------------- */

/* 1 when a candidate after t's next one is not cooling down. */
static int
later_available(const struct mg_tries *t, long long now)
{
	long long wait;
	int i;

	for (i = t->next; i < t->plan->n; i++)
		if (mg_route_available(t->plan->c[i].upstream, now, &wait))
			return 1;
	return 0;
}

int
mg_tries_next(struct mg_worker *w, struct mg_call *call, struct mg_tries *t)
{
	const struct mg_conf *conf = w->gw->conf;
	long long now = mg_route_now_ms(), wait, left, backoff;
	const struct mg_updef *d;

	if (t->deadline_ms == 0)
		t->deadline_ms = now + (long long)mg_conf_max_timeout(conf) * 1000;
	while (t->next < t->plan->n) {
		t->cand = &t->plan->c[t->next++];
		/* a cooling upstream is skipped for another; with no other left
		 * and nothing called yet, it is called all the same: one
		 * upstream's cooldown (a model's 429s at the only upstream)
		 * never turns every request away unasked */
		if (!mg_route_available(t->cand->upstream, now, &wait)) {
			if (t->cooling_ms == 0 || wait < t->cooling_ms)
				t->cooling_ms = wait;
			if (t->made > 0 || later_available(t, now))
				continue;
		}
		if (t->made > 0) {
			backoff = (long long)conf->route_backoff_ms << (t->made > 20 ? 20 : t->made - 1);
			if (backoff > conf->route_backoff_max_ms)
				backoff = conf->route_backoff_max_ms;
			if (now + backoff >= t->deadline_ms)
				return 0;
			if (backoff > 0) {
				struct timespec ts = { (time_t)(backoff / 1000), (long)(backoff % 1000) * 1000000 };

				nanosleep(&ts, NULL);
				now = mg_route_now_ms();
			}
		}
		left = t->deadline_ms - now;
		if (left <= 0)
			return 0;
		d = &conf->ups[t->cand->upstream];
		t->up = w->ups[t->cand->upstream];
		mg_upstream_set_timeout_ms(t->up, (long)(left < (long long)d->timeout * 1000 ? left :
		    (long long)d->timeout * 1000));
		t->len = w->body.len;
		t->body = mg_call_body(call, w->body.data, &t->len, t->cand->sent);
		if (t->body == NULL)
			return 0;
		t->made++;
		t->started_ms = now;
		w->cur = t->up;
		return 1;
	}
	return 0;
}

int
mg_tries_done(struct mg_worker *w, struct mg_exchange *x, struct mg_usage *u,
    struct mg_tries *t, enum mg_err rc, long status, int started)
{
	const struct mg_conf *conf = w->gw->conf;
	const struct mg_updef *d = &conf->ups[t->cand->upstream];
	enum mg_route_outcome o = MG_ROUTE_OK;
	long long now = mg_route_now_ms();
	struct mg_usage_attempt *a;

	if (rc == MG_ERR_UPSTREAM_CONNECT)
		o = MG_ROUTE_CONNECT;
	else if (rc == MG_ERR_UPSTREAM_TIMEOUT)
		o = MG_ROUTE_TIMEOUT;
	else if (rc == MG_ERR_UPSTREAM)
		o = MG_ROUTE_BROKEN;
	else if (rc == MG_OK && !started && (status == 429 || status >= 500))
		o = MG_ROUTE_STATUS;
	mg_route_report(t->cand->upstream, o, now, conf->health_failures, conf->health_cooldown);
	u->upstream = d->name;
	u->n_cands = mg_route_plan_single(t->plan->c, t->plan->n) ? 1 : t->plan->n;
	u->no_recon = strcmp(d->base_url, conf->up_base_url) != 0;
	u->served_config_prices = d->prices == MG_PRICES_CONFIG;
	mg_text_copy(u->served_prompt_price, sizeof(u->served_prompt_price), d->prompt_price);
	mg_text_copy(u->served_completion_price, sizeof(u->served_completion_price),
	    d->completion_price);
	mg_text_copy(u->served_model, sizeof(u->served_model), t->cand->model);
	if (u->n_attempts < MG_USAGE_ATTEMPTS_MAX) {
		a = &u->attempts[u->n_attempts++];
		a->upstream = d->name;
		mg_text_copy(a->model, sizeof(a->model), t->cand->model);
		a->status = (int)status;
		a->error = o == MG_ROUTE_OK ? NULL : mg_route_outcome_name(o);
		a->latency_ms = (long)(now - t->started_ms);
	}
	if (o == MG_ROUTE_OK || started)
		return 0;
	mg_log(MG_LOG_WARN, x->request_id, "upstream %s failed (%s, status %ld)%s", d->name,
	    mg_route_outcome_name(o), status, t->next < t->plan->n ? "; trying the next" : "");
	return 1;
}

void
mg_tries_unavailable(struct mg_exchange *x, const struct mg_tries *t, struct mg_apierror *e)
{
	mg_apierror_set(e, 503, "server_error", NULL, "upstream_unavailable",
	    "The upstream providers for this model are unavailable right now. Retry shortly.");
	if (t->cooling_ms > 0)
		mg_exchange_header(x, "Retry-After", "%lld", (t->cooling_ms + 999) / 1000);
}

/* Calls the plan's upstreams in turn until one answers, and turns the
 * last failure into e.  MG_OK when a 2xx answer arrived (in w->reply). */
static enum mg_err
call_upstream(struct mg_worker *w, struct mg_exchange *x, struct mg_call *call,
    const struct mg_plan *plan, struct mg_usage *u, const char *path, struct mg_apierror *e)
{
	struct mg_tries t;
	struct timespec since;
	enum mg_err rc = MG_OK;
	int again = 1;

	memset(&t, 0, sizeof(t));
	t.plan = plan;
	while (again && mg_tries_next(w, call, &t)) {
		mg_clock_now(CLOCK_MONOTONIC, &since);
		rc = mg_upstream_call(t.up, path, t.body, t.len, &w->reply);
		x->upstream_us += mg_clock_us_since(&since);
		again = mg_tries_done(w, x, u, &t, rc, rc == MG_OK ? w->reply.status : 0, 0);
	}
	if (x->upstream_us == 0)
		x->upstream_us = 1;
	if (t.made == 0) {
		mg_tries_unavailable(x, &t, e);
		return MG_ERR_UPSTREAM;
	}
	if (rc != MG_OK) {
		mg_log(MG_LOG_WARN, x->request_id, "upstream %s failed: %s (%s)", path,
		    mg_strerror(rc), mg_upstream_last_error(t.up));
		mg_apierror_transport(rc, e);
		return rc;
	}
	if (w->reply.status < 200 || w->reply.status > 299) {
		/* provider account problems are logged, never shown to clients */
		mg_log(MG_LOG_WARN, x->request_id, "upstream %s answered %ld: %.300s", path,
		    w->reply.status, mg_buf_str(&w->reply.body));
		mg_apierror_upstream(w->reply.status, mg_buf_str(&w->reply.body), e);
		if (e->status == 503 && w->reply.retry_after[0] != '\0')
			mg_exchange_header(x, "Retry-After", "%.20s", w->reply.retry_after);
		return MG_ERR_UPSTREAM;
	}
	return MG_OK;
}

/* The client's answer when it asked for base64 embeddings and the
 * upstream's (in w->reply) has them as floats: the tree rewritten. */
static enum mg_err
answer_base64(struct mg_worker *w, struct mg_exchange *x)
{
	json_object *json = json_tokener_parse(mg_buf_str(&w->reply.body));
	enum mg_err rc;

	if (json == NULL)
		return MG_ERR_JSON;
	rc = mg_embed_to_base64(json);
	if (rc == MG_OK) {
		mg_buf_reset(&w->out);
		rc = mg_buf_adds(&w->out, json_object_to_json_string_ext(json,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	json_object_put(json);
	if (rc == MG_OK)
		mg_exchange_send_json(x, 200, w->out.data, w->out.len);
	return rc;
}

/* Relays a call that is not streamed and settles it. */
static void
relay(struct mg_worker *w, struct mg_exchange *x, struct mg_call *call,
    const struct mg_plan *plan, struct mg_usage *u)
{
	const char *path = call->endpoint == MG_EP_CHAT ? "/chat/completions" : "/embeddings";
	struct mg_apierror e;
	enum mg_err rc;

	if (call_upstream(w, x, call, plan, u, path, &e) != MG_OK) {
		mg_exchange_fail(w, x, u, &e);
		return;
	}
	if (mg_usage_from_text(u, mg_buf_str(&w->reply.body), w->reply.body.len) != MG_OK) {
		mg_log(MG_LOG_WARN, x->request_id, "upstream %s answered non-JSON: %.200s", path,
		    mg_buf_str(&w->reply.body));
		mg_apierror_set(&e, 502, "upstream_error", NULL, "upstream_invalid_response",
		    "The upstream provider's answer was not valid JSON.");
		mg_exchange_fail(w, x, u, &e);
		return;
	}
	x->billable = 1;
	if (!(call->endpoint == MG_EP_EMBEDDINGS && call->want_base64)) {
		/* the upstream's bytes go back as they came */
		mg_exchange_send_json(x, 200, w->reply.body.data, w->reply.body.len);
		u->status = 200;
		mg_exchange_record(w, x, u);
		return;
	}
	rc = answer_base64(w, x);
	if (rc != MG_OK) {
		mg_apierror_set(&e, 502, "upstream_error", NULL, "upstream_invalid_response",
		    "The upstream provider's embeddings could not be converted: %s.", mg_strerror(rc));
		mg_exchange_fail(w, x, u, &e);
		return;
	}
	u->status = 200;
	mg_exchange_record(w, x, u);
}

/* --- /v1/models and /health ---------------------------------------------- */

/* The upstream's model list while the catalog is empty; NULL with e
 * filled on failure. */
static json_object *
upstream_models(struct mg_worker *w, struct mg_exchange *x, struct mg_apierror *e)
{
	char err[MG_ERR_DETAIL_LEN];
	json_object *list;
	long refused;
	enum mg_err rc = mg_catalog_models(w->up, &w->reply, &list, &refused, err, sizeof(err));

	if (rc == MG_OK)
		return list;
	mg_log(MG_LOG_WARN, x->request_id, "model list from the upstream: %s%s%.300s", err,
	    refused != 0 ? ": " : "", refused != 0 ? mg_buf_str(&w->reply.body) : "");
	if (refused != 0) {
		mg_apierror_upstream(refused, mg_buf_str(&w->reply.body), e);
		if (e->status == 503 && w->reply.retry_after[0] != '\0')
			mg_exchange_header(x, "Retry-After", "%.20s", w->reply.retry_after);
	} else if (rc == MG_ERR_JSON) {
		mg_apierror_set(e, 502, "upstream_error", NULL, "upstream_invalid_response",
		    "The upstream provider's model list was not valid.");
	} else if (rc == MG_ERR_NOMEM) {
		mg_apierror_set(e, 500, "server_error", NULL, NULL, "out of memory");
	} else {
		mg_apierror_transport(rc, e);
	}
	return NULL;
}

/* The project's model list: from the catalog, or from the upstream while
 * the catalog is empty; limited to the project's allowed models.  NULL
 * with e filled on failure. */
static json_object *
project_models(struct mg_worker *w, struct mg_exchange *x, struct mg_apierror *e)
{
	char *text = NULL, *allowed_text = NULL;
	json_object *list = NULL, *allowed;
	enum mg_err rc;

	rc = mg_store_model_list(w->gw->store, x->auth.project_id, &text, &allowed_text);
	if (rc != MG_OK) {
		mg_log(MG_LOG_ERROR, x->request_id, "model list: %s: %s", mg_strerror(rc),
		    mg_store_last_error());
		mg_apierror_set(e, 503, "server_error", NULL, "database_unavailable",
		    "The gateway cannot reach its database right now. Retry shortly.");
		return NULL;
	}
	if (text != NULL) {
		list = json_tokener_parse(text);
		if (list == NULL)
			mg_apierror_set(e, 500, "server_error", NULL, NULL,
			    "The model catalog could not be read.");
	} else {
		list = upstream_models(w, x, e);
		allowed = allowed_text != NULL ? json_tokener_parse(allowed_text) : NULL;
		if (list != NULL && mg_models_keep(list, allowed) != MG_OK) {
			json_object_put(list);
			list = NULL;
			mg_apierror_set(e, 500, "server_error", NULL, NULL, "out of memory");
		}
		json_object_put(allowed);
	}
	free(text);
	free(allowed_text);
	return list;
}

static void
handle_models(struct mg_worker *w, struct mg_exchange *x, const char *id)
{
	struct mg_apierror e;
	json_object *list = project_models(w, x, &e), *shown;
	const char *text;

	if (list == NULL) {
		mg_exchange_send_error(w, x, &e);
		return;
	}
	shown = list;
	if (id != NULL) {
		shown = mg_models_find(list, id);
		if (shown == NULL) {
			mg_apierror_set(&e, 404, "invalid_request_error", "model", "model_not_found",
			    "The model '%.200s' does not exist or is not available through this gateway.", id);
			mg_exchange_send_error(w, x, &e);
			json_object_put(list);
			return;
		}
	}
	text = json_object_to_json_string_ext(shown, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	mg_exchange_send_json(x, 200, text, strlen(text));
	json_object_put(list);
}

static void
handle_health(struct mg_worker *w, struct mg_exchange *x)
{
	static const char ok[] = "{\"status\":\"ok\",\"database\":\"ok\",";
	static const char down[] = "{\"status\":\"degraded\",\"database\":\"unavailable\",";
	int up = mg_store_ping(w->gw->store) == MG_OK;

	/* the upstreams' state in this process; it does not change the
	 * status: a cooling upstream has its fallbacks */
	mg_buf_reset(&w->out);
	if (mg_buf_adds(&w->out, up ? ok : down) != MG_OK ||
	    mg_route_health_json(w->gw->conf, &w->out) != MG_OK ||
	    mg_buf_adds(&w->out, "}") != MG_OK) {
		mg_exchange_send_json(x, 500, "{}", 2);
		return;
	}
	mg_exchange_send_json(x, up ? 200 : 503, w->out.data, w->out.len);
}

/* --- the request threads' state ------------------------------------------ */

enum mg_err
mg_worker_init(struct mg_worker *w, struct mg_gateway *gw)
{
	int i;

	memset(w, 0, sizeof(*w));
	w->gw = gw;
	for (i = 0; i < gw->conf->n_ups; i++) {
		w->ups[i] = mg_upstream_new_def(gw->conf, &gw->conf->ups[i]);
		if (w->ups[i] == NULL) {
			mg_worker_free(w);
			return MG_ERR_NOMEM;
		}
	}
	w->up = w->ups[0];
	w->cur = w->up;
	mg_buf_init(&w->body, (size_t)gw->conf->max_body);
	mg_buf_init(&w->out, (size_t)gw->conf->up_max_response * 2 + 65536);
	mg_upstream_reply_init(&w->reply, (size_t)gw->conf->up_max_response);
	return MG_OK;
}

void
mg_worker_free(struct mg_worker *w)
{
	if (w == NULL)
		return;
	int i;

	for (i = 0; i < MG_UPSTREAMS_MAX; i++) {
		mg_upstream_free(w->ups[i]);
		w->ups[i] = NULL;
	}
	w->up = NULL;
	w->cur = NULL;
	mg_buf_free(&w->body);
	mg_buf_free(&w->out);
	mg_upstream_reply_free(&w->reply);
}

void
mg_worker_shrink(struct mg_worker *w)
{
	mg_buf_shrink(&w->body, WORKER_KEEP);
	mg_buf_shrink(&w->out, WORKER_KEEP);
	mg_buf_shrink(&w->reply.body, WORKER_KEEP);
}
