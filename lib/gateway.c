/* gateway.c -- The request handler: routes a FastCGI request and runs a call through
 * parse, admit, relay and settle, answering every failure with an
 * OpenAI-style error.  Called by the responder threads. */
#include "config.h"

#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apikey.h"
#include "embed.h"
#include "fcgi.h"
#include "gateway.h"
#include "jscan.h"
#include "log.h"
#include "models.h"
#include "quota.h"
#include "request.h"
#include "router.h"
#include "sse.h"
#include "usage.h"

#define JSON_TYPE "application/json"
#define REQUEST_ID_HEADER "x-request-id: "
#define SSE_MAX_EVENT (4u << 20)
/* A worker's buffers keep up to this much between requests: enough for
 * a usual chat request and answer without a realloc, little enough that
 * an idle thread holds almost nothing. */
#define WORKER_KEEP (16u << 10)

/* What one request carries through the handler. */
struct exchange {
	FCGX_Request *fr;
	char request_id[MG_REQUEST_ID_LEN + 1];
	char headers[1024];         /* extra response header lines */
	struct timespec start;
	struct mg_auth auth;
	int authed;
	int admitted;               /* a pending usage row holds a reservation */
	int billable;               /* the upstream did work for this request */
};

enum mg_err
mg_worker_init(struct mg_worker *w, struct mg_gateway *gw)
{
	memset(w, 0, sizeof(*w));
	w->gw = gw;
	w->up = mg_upstream_new(gw->conf);
	if (w->up == NULL)
		return MG_ERR_NOMEM;
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
	mg_upstream_free(w->up);
	w->up = NULL;
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

static long
elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000L + (now.tv_nsec - start->tv_nsec) / 1000000L;
}

static void
new_request_id(char out[MG_REQUEST_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[12];
	size_t i;

	if (mg_random_bytes(raw, sizeof(raw)) != MG_OK) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		memcpy(raw, &ts, sizeof(raw) < sizeof(ts) ? sizeof(raw) : sizeof(ts));
	}
	memcpy(out, "req_", 4);
	for (i = 0; i < sizeof(raw); i++) {
		out[4 + 2 * i] = hex[raw[i] >> 4];
		out[5 + 2 * i] = hex[raw[i] & 15];
	}
	out[MG_REQUEST_ID_LEN] = '\0';
}

static void
send_json(struct exchange *x, int status, const char *body, size_t len)
{
	if (mg_fcgi_reply(x->fr, status, JSON_TYPE, x->headers, body, len) != MG_OK)
		mg_log(MG_LOG_INFO, x->request_id, "client went away before the response");
}

static void
send_error(struct mg_worker *w, struct exchange *x, const struct mg_apierror *e)
{
	mg_buf_reset(&w->out);
	if (mg_apierror_json(e, &w->out) != MG_OK) {
		static const char fallback[] =
		    "{\"error\":{\"message\":\"internal error\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";

		send_json(x, 500, fallback, sizeof(fallback) - 1);
		return;
	}
	send_json(x, e->status, w->out.data, w->out.len);
}

/* The text an upstream error body carries in error.message, or NULL. */
static const char *
upstream_message(json_object *root)
{
	json_object *err, *msg;

	if (root == NULL || !json_object_object_get_ex(root, "error", &err) ||
	    !json_object_is_type(err, json_type_object))
		return NULL;
	if (json_object_object_get_ex(err, "message", &msg) && json_object_is_type(msg, json_type_string))
		return json_object_get_string(msg);
	return NULL;
}

void
mg_gateway_upstream_error(long status, const char *upstream_body, struct mg_apierror *e)
{
	json_object *root = upstream_body != NULL ? json_tokener_parse(upstream_body) : NULL;
	const char *msg = upstream_message(root);

	if (status == 401) {
		mg_apierror_set(e, 502, "upstream_error", NULL, "upstream_auth_failed",
		    "The gateway could not authenticate with its upstream provider. "
		    "This is a gateway configuration problem; the operator can find the details in the log.");
	} else if (status == 402) {
		mg_apierror_set(e, 503, "upstream_error", NULL, "upstream_unavailable",
		    "The upstream provider is not available to this gateway right now. Try again later.");
	} else if (status == 429) {
		mg_apierror_set(e, 503, "upstream_error", NULL, "upstream_busy",
		    "The upstream provider is busy. Retry after a short wait.");
	} else if (status == 408) {
		mg_apierror_set(e, 504, "upstream_error", NULL, "upstream_timeout",
		    "The upstream provider timed out.");
	} else if (status >= 500 || status < 400) {
		mg_apierror_set(e, 502, "upstream_error", NULL, "upstream_error",
		    "The upstream provider failed (HTTP %ld).", status);
	} else {
		mg_apierror_set(e, (int)status, "invalid_request_error", NULL,
		    status == 404 ? "model_not_found" : status == 403 ? "permission_denied" : "upstream_rejected",
		    "%s", msg != NULL ? msg : "The upstream provider rejected the request.");
	}
	json_object_put(root);
}

static void
transport_error(enum mg_err rc, struct mg_apierror *e)
{
	switch (rc) {
	case MG_ERR_UPSTREAM_CONNECT:
		mg_apierror_set(e, 502, "upstream_error", NULL, "upstream_unreachable",
		    "The gateway could not connect to its upstream provider.");
		break;
	case MG_ERR_UPSTREAM_TIMEOUT:
		mg_apierror_set(e, 504, "upstream_error", NULL, "upstream_timeout",
		    "The upstream provider did not answer in time.");
		break;
	case MG_ERR_TOO_BIG:
		mg_apierror_set(e, 502, "upstream_error", NULL, "upstream_response_too_large",
		    "The upstream provider's answer was larger than this gateway accepts.");
		break;
	default:
		mg_apierror_set(e, 502, "upstream_error", NULL, "upstream_error",
		    "The upstream provider's answer was broken off or invalid.");
		break;
	}
}

/* Calls the upstream and turns any failure into e.  MG_OK when a 2xx
 * answer arrived (in w->reply). */
static enum mg_err
call_upstream(struct mg_worker *w, struct exchange *x, const char *path, const char *body,
    size_t len, struct mg_apierror *e)
{
	enum mg_err rc = mg_upstream_call(w->up, path, body, len, &w->reply);

	if (rc != MG_OK) {
		mg_log(MG_LOG_WARN, x->request_id, "upstream %s failed: %s (%s)", path,
		    mg_strerror(rc), mg_upstream_last_error(w->up));
		transport_error(rc, e);
		return rc;
	}
	if (w->reply.status < 200 || w->reply.status > 299) {
		/* provider account problems are logged, never shown to clients */
		mg_log(MG_LOG_WARN, x->request_id, "upstream %s answered %ld: %.300s", path,
		    w->reply.status, mg_buf_str(&w->reply.body));
		mg_gateway_upstream_error(w->reply.status, mg_buf_str(&w->reply.body), e);
		if (e->status == 503 && w->reply.retry_after[0] != '\0')
			snprintf(x->headers + strlen(x->headers), sizeof(x->headers) - strlen(x->headers),
			    "Retry-After: %.20s\r\n", w->reply.retry_after);
		return MG_ERR_UPSTREAM;
	}
	return MG_OK;
}

/* Parses the 2xx answer in w->reply; MG_OK when it is a JSON object
 * (*json, owned by the caller), else e filled. */
static enum mg_err
parse_reply(struct mg_worker *w, struct exchange *x, const char *path, json_object **json,
    struct mg_apierror *e)
{
	*json = json_tokener_parse(mg_buf_str(&w->reply.body));
	if (*json == NULL || !json_object_is_type(*json, json_type_object)) {
		json_object_put(*json);
		*json = NULL;
		mg_log(MG_LOG_WARN, x->request_id, "upstream %s answered non-JSON: %.200s", path,
		    mg_buf_str(&w->reply.body));
		mg_apierror_set(e, 502, "upstream_error", NULL, "upstream_invalid_response",
		    "The upstream provider's answer was not valid JSON.");
		return MG_ERR_UPSTREAM;
	}
	return MG_OK;
}

/* call_upstream and parse_reply. */
static enum mg_err
relay(struct mg_worker *w, struct exchange *x, const char *path, const char *body,
    size_t len, json_object **json, struct mg_apierror *e)
{
	enum mg_err rc = call_upstream(w, x, path, body, len, e);

	*json = NULL;
	return rc != MG_OK ? rc : parse_reply(w, x, path, json, e);
}

/* The client's key from the Authorization header: its hash and public
 * prefix.  Answers 401 and returns -1 when there is none or it is
 * malformed (no database needed for that). */
static int
client_key(struct mg_worker *w, struct exchange *x, char hash[MG_APIKEY_HASH_HEX_LEN + 1],
    char prefix[MG_APIKEY_PREFIX_LEN + 1])
{
	const char *header = mg_fcgi_param(x->fr, "HTTP_AUTHORIZATION");
	struct mg_apierror e;
	const char *key;
	size_t n = 0;

	key = mg_apikey_from_header(header, &n);
	if (key == NULL) {
		mg_apierror_set(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
		    "You didn't provide an API key. Send it in the Authorization header as "
		    "'Authorization: Bearer mg-…'.");
		send_error(w, x, &e);
		return -1;
	}
	if (!mg_apikey_valid(key, n)) {
		mg_apierror_set(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
		    "Incorrect API key provided. modelgate keys start with 'mg-'.");
		send_error(w, x, &e);
		return -1;
	}
	if (mg_apikey_hash_hex(key, n, hash) != MG_OK) {
		mg_log(MG_LOG_ERROR, x->request_id, "libcrypto could not hash a key");
		mg_apierror_set(&e, 500, "server_error", NULL, NULL,
		    "The gateway could not check the API key. Retry shortly.");
		send_error(w, x, &e);
		return -1;
	}
	mg_apikey_prefix(key, prefix);
	return 0;
}

/* Answers a key the database did not accept (MG_ERR_AUTH) or a database
 * failure. */
static void
auth_failed(struct mg_worker *w, struct exchange *x, enum mg_err rc, const char *prefix)
{
	struct mg_apierror e;

	if (rc == MG_ERR_AUTH) {
		mg_log(MG_LOG_INFO, x->request_id, "unknown or revoked key %s", prefix);
		mg_apierror_set(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
		    "Incorrect API key provided: the key is unknown or has been revoked.");
	} else {
		mg_log(MG_LOG_ERROR, x->request_id, "database unavailable: %s", mg_store_last_error());
		mg_apierror_set(&e, 503, "server_error", NULL, "database_unavailable",
		    "The gateway cannot reach its database right now. Retry shortly.");
	}
	send_error(w, x, &e);
}

/* Resolves the client's key to its project (no admission). */
static int
authenticate(struct mg_worker *w, struct exchange *x)
{
	char hash[MG_APIKEY_HASH_HEX_LEN + 1], prefix[MG_APIKEY_PREFIX_LEN + 1];
	enum mg_err rc;

	if (client_key(w, x, hash, prefix) < 0)
		return -1;
	rc = mg_store_auth(w->gw->store, hash, &x->auth);
	if (rc != MG_OK) {
		auth_failed(w, x, rc, prefix);
		return -1;
	}
	x->authed = 1;
	return 0;
}

/* Admits a parsed request: key, model, limits, reservation.  0 when
 * admitted; otherwise the answer (401, 403, 404, 429, 503) is sent. */
static int
admit(struct mg_worker *w, struct exchange *x, const struct mg_call *call, const char *hash,
    const char *prefix)
{
	const struct mg_conf *conf = w->gw->conf;
	struct mg_admit_req q;
	struct mg_admission a;
	struct mg_apierror e;
	enum mg_err rc;

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
	/* the wait for the database, in the queue or not, counts from here */
	clock_gettime(CLOCK_MONOTONIC, &q.since);
	rc = mg_ledger_admit(w->gw->ledger, &q, &a);
	if (rc != MG_OK || a.outcome == MG_ADMIT_INVALID_KEY) {
		auth_failed(w, x, rc == MG_OK ? MG_ERR_AUTH : rc, prefix);
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
		send_error(w, x, &e);
		return -1;
	}
	x->admitted = 1;
	mg_log(MG_LOG_DEBUG, x->request_id, "admitted: project=%s reserved=%s", a.auth.project,
	    a.reserved);
	return 0;
}

static void
record(struct mg_worker *w, struct exchange *x, struct mg_usage *u)
{
	enum mg_err rc;

	u->latency_ms = elapsed_ms(&x->start);
	if (x->admitted) {
		/* written by the ledger's thread: the client does not wait */
		mg_ledger_settle(w->gw->ledger, u, x->billable);
	} else {
		rc = mg_store_record_usage(w->gw->store, u);
		if (rc != MG_OK)
			mg_log(MG_LOG_ERROR, x->request_id, "usage row not written: %s: %s",
			    mg_strerror(rc), mg_store_last_error());
	}
	mg_log(MG_LOG_INFO, x->request_id,
	    "%s project=%s key=%s model=%s status=%d tokens=%lld/%lld cost=%s latency_ms=%ld",
	    u->endpoint, x->auth.project, x->auth.key_prefix, u->model[0] ? u->model : "-",
	    u->status, u->prompt_tokens, u->completion_tokens,
	    u->cost[0] ? u->cost : "-", u->latency_ms);
}

static void
fail_call(struct mg_worker *w, struct exchange *x, struct mg_usage *u, const struct mg_apierror *e)
{
	u->status = e->status;
	u->error_type = e->code != NULL ? e->code : e->type;
	send_error(w, x, e);
	record(w, x, u);
}

/* One streamed chat completion on its way from the upstream to the client. */
struct stream_state {
	struct mg_worker *w;
	struct exchange *x;
	struct mg_usage *u;
	int include_usage;      /* the client asked for the usage-only chunk */
	int started;            /* our response headers are out */
	int done;               /* the upstream sent [DONE] */
	int failed;             /* an error event went to the client */
	int client_gone;        /* a write to the client failed */
	int draining;           /* client gone: reading on for the usage only */
	int overflow;           /* an upstream event exceeded the cap */
	int unflushed;          /* written since the last flush */
	long content_chunks;    /* deltas with content, if usage never comes */
	long last_write;        /* monotonic seconds of the last write */
	long hup_checked;       /* monotonic second of the last server_hung_up */
	struct mg_sse sse;
};

static long
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec;
}

/* The client is gone: drain the upstream if allowed (returns 0 to go on
 * reading), else -1 to abort the transfer. */
static int
client_lost(struct stream_state *st)
{
	struct mg_gateway *gw = st->w->gw;

	if (st->client_gone)
		return st->draining ? 0 : -1;
	st->client_gone = 1;
	if (gw->conf->drain) {
		int n = __atomic_add_fetch(&gw->drains, 1, __ATOMIC_SEQ_CST);

		if (n <= gw->conf->max_drains) {
			st->draining = 1;
			mg_log(MG_LOG_INFO, st->x->request_id, "client went away; draining the upstream");
			return 0;
		}
		__atomic_sub_fetch(&gw->drains, 1, __ATOMIC_SEQ_CST);
	}
	return -1;
}

/* Writes without flushing; -1 when the transfer must stop because the
 * client is gone (0 while draining: nothing is written any more). */
static int
stream_put(struct stream_state *st, const char *p, size_t n)
{
	if (st->client_gone)
		return st->draining ? 0 : -1;
	if (FCGX_PutStr(p, (int)n, st->x->fr->out) < 0)
		return client_lost(st);
	st->unflushed = 1;
	return 0;
}

/* Sends what was written; as stream_put. */
static int
stream_flush(struct stream_state *st)
{
	if (st->client_gone)
		return st->draining ? 0 : -1;
	if (!st->unflushed)
		return 0;
	st->unflushed = 0;
	if (FCGX_FFlush(st->x->fr->out) < 0)
		return client_lost(st);
	st->last_write = now_seconds();
	return 0;
}

/* Writes and flushes; as stream_put. */
static int
stream_write(struct stream_state *st, const char *p, size_t n)
{
	int rc = stream_put(st, p, n);

	return rc < 0 ? rc : stream_flush(st);
}

/* 1 when the web server has closed the FastCGI connection (it does so
 * when the client goes away; some servers only after a write). */
static int
server_hung_up(FCGX_Request *fr)
{
	struct pollfd p = { fr->ipcFd, POLLRDHUP, 0 };

	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static int
stream_start(void *arg)
{
	struct stream_state *st = arg;
	char head[1536];
	int n = snprintf(head, sizeof(head),
	    "Status: 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
	    "X-Accel-Buffering: no\r\n%s\r\n", st->x->headers);

	st->started = 1;
	st->x->billable = 1;
	if (n < 0 || (size_t)n >= sizeof(head))
		n = snprintf(head, sizeof(head), "Status: 200 OK\r\nContent-Type: text/event-stream\r\n"
		    "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n\r\n");
	return stream_write(st, head, (size_t)n);
}

/* Sends one error event in the OpenAI shape; the stream then ends. */
static void
stream_error(struct stream_state *st, const struct mg_apierror *e)
{
	struct mg_buf *out = &st->w->out;

	st->failed = 1;
	st->u->status = e->status;
	st->u->error_type = e->code != NULL ? e->code : e->type;
	mg_buf_reset(out);
	if (mg_buf_adds(out, "data: ") != MG_OK || mg_apierror_json(e, out) != MG_OK ||
	    mg_buf_adds(out, "\n\n") != MG_OK)
		return;
	if (!st->client_gone)
		stream_write(st, out->data, out->len);
}

static void
count_content(struct stream_state *st, json_object *choices)
{
	size_t i, n = json_object_array_length(choices);

	for (i = 0; i < n; i++) {
		json_object *delta, *content;

		if (json_object_object_get_ex(json_object_array_get_idx(choices, i), "delta", &delta) &&
		    json_object_object_get_ex(delta, "content", &content) &&
		    json_object_is_type(content, json_type_string) &&
		    json_object_get_string_len(content) > 0 && st->content_chunks++ == 0)
			st->u->ttft_ms = elapsed_ms(&st->x->start);
	}
}

/* Passes one event on to the client; 1 when the stream must stop. */
static int
send_event(struct stream_state *st, const char *text, size_t len)
{
	struct mg_buf *out = &st->w->out;

	mg_buf_reset(out);
	if (mg_buf_adds(out, "data: ") != MG_OK || mg_buf_add(out, text, len) != MG_OK ||
	    mg_buf_adds(out, "\n\n") != MG_OK)
		return 1;
	/* flushed by stream_tick with the other events of the same read */
	return stream_put(st, out->data, out->len) < 0;
}

/* What stream_event looks at in a chunk, read in place. */
struct chunk {
	struct mg_jscan_value error, choices; /* the members, as read */
	long n_choices;         /* elements of choices, when an array */
	long contents;          /* of them with a delta.content that is a non-empty string */
};

/* The choices array of a chunk: each delta.content. */
static void
scan_choices(struct mg_jscan *s, struct chunk *c)
{
	static const char *const names[] = { "delta", NULL };
	struct mg_jscan_value choice, delta, content;
	int i;

	while (mg_jscan_element(s)) {
		c->n_choices++;
		mg_jscan_value(s, &choice);
		if (choice.type != MG_JSCAN_OBJECT) {
			mg_jscan_skip(s, &choice);
			continue;
		}
		delta.type = MG_JSCAN_NONE;
		while ((i = mg_jscan_field(s, names, NULL)) >= 0) {
			if (i == 0) {
				mg_jscan_next(s);
				continue;
			}
			mg_jscan_take(s, &delta);
			if (delta.type != MG_JSCAN_OBJECT) {
				mg_jscan_skip(s, &delta);
				continue;
			}
			mg_jscan_pick(s, "content", &content);
			if (content.type == MG_JSCAN_STRING && content.len > 0)
				c->contents++;
		}
	}
}

/* A member of a chunk besides its usage (mg_usage_scan's walk).  What
 * json-c is to judge fails the scanner: a member of interest named twice,
 * or an error that is not null (rare, and handled there). */
static void
chunk_member(void *arg, struct mg_jscan *s, const struct mg_jscan_value *name)
{
	struct chunk *c = arg;

	if (mg_jscan_is(name, "error")) {
		mg_jscan_take(s, &c->error);
		mg_jscan_skip(s, &c->error);
		if (c->error.type != MG_JSCAN_NULL)
			mg_jscan_fail(s);
	} else if (mg_jscan_is(name, "choices")) {
		mg_jscan_take(s, &c->choices);
		if (c->choices.type == MG_JSCAN_ARRAY)
			scan_choices(s, c);
		else
			mg_jscan_skip(s, &c->choices);
	} else {
		mg_jscan_next(s);
	}
}

static int
stream_event(void *arg, const struct mg_sse_event *ev)
{
	struct stream_state *st = arg;
	json_object *obj, *err, *choices, *usage;
	const char *data = ev->data;
	struct chunk c;
	struct mg_usage_walk walk = { chunk_member, &c, 0 };
	int rc;

	if (strcmp(data, "[DONE]") == 0) {
		st->done = 1;
		return 0;
	}
	/* the usual chunk, read in place and passed on as it came (a chunk
	 * of several data: lines goes the json-c way: it is rewritten) */
	memset(&c, 0, sizeof(c));
	if (memchr(data, '\n', ev->len) == NULL &&
	    mg_usage_scan(st->u, data, ev->len, &walk) == MG_OK) {
		if (c.choices.type == MG_JSCAN_ARRAY && c.n_choices == 0 && walk.usage &&
		    !st->include_usage)
			return 0;
		if (c.contents > 0 && st->content_chunks == 0)
			st->u->ttft_ms = elapsed_ms(&st->x->start);
		st->content_chunks += c.contents;
		return send_event(st, data, ev->len);
	}
	obj = json_tokener_parse(data);
	if (obj == NULL || !json_object_is_type(obj, json_type_object)) {
		mg_log(MG_LOG_WARN, st->x->request_id, "upstream sent a non-JSON event: %.200s", data);
		json_object_put(obj);
		return 0;
	}
	mg_usage_from_json(st->u, obj);
	if (json_object_object_get_ex(obj, "error", &err) && err != NULL) {
		struct mg_apierror e;
		json_object *msg;

		mg_log(MG_LOG_WARN, st->x->request_id, "upstream error in stream: %.300s", data);
		mg_apierror_set(&e, 502, "upstream_error", NULL, "upstream_error", "%s",
		    json_object_object_get_ex(err, "message", &msg) && json_object_is_type(msg, json_type_string)
		    ? json_object_get_string(msg) : "The upstream provider failed during the stream.");
		stream_error(st, &e);
		json_object_put(obj);
		return 1;
	}
	if (json_object_object_get_ex(obj, "choices", &choices) &&
	    json_object_is_type(choices, json_type_array)) {
		if (json_object_array_length(choices) == 0 &&
		    json_object_object_get_ex(obj, "usage", &usage) && usage != NULL &&
		    !st->include_usage) {
			/* the usage-only chunk the client did not ask for */
			json_object_put(obj);
			return 0;
		}
		count_content(st, choices);
	}
	if (strchr(data, '\n') == NULL) {
		rc = send_event(st, data, strlen(data));
	} else {
		const char *text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);

		rc = send_event(st, text, strlen(text));
	}
	json_object_put(obj);
	return rc;
}

static int
stream_data(void *arg, const char *p, size_t n)
{
	struct stream_state *st = arg;
	enum mg_err rc = mg_sse_feed(&st->sse, p, n, stream_event, st);

	if (rc == MG_ERR_TOO_BIG)
		st->overflow = 1;
	return rc != MG_OK;
}

static int
stream_tick(void *arg)
{
	struct stream_state *st = arg;
	static const char ping[] = ": ping\n\n";
	long now;

	if (!st->started || st->client_gone)
		return st->client_gone && !st->draining;
	/* libcurl calls this after each pass over what it has read (and
	 * at least once a second): the events of one pass arrived together
	 * and go to the client together, with one flush, before it reads
	 * again */
	if (stream_flush(st) < 0)
		return 1;
	/* libcurl calls this after every read: looking for a hangup (a
	 * system call) once a second is enough, as a write notices a client
	 * that is gone anyway */
	now = now_seconds();
	if (now != st->hup_checked) {
		st->hup_checked = now;
		if (server_hung_up(st->x->fr))
			return client_lost(st) < 0;
	}
	if (now - st->last_write < st->w->gw->conf->heartbeat_interval)
		return 0;
	return stream_write(st, ping, sizeof(ping) - 1) < 0;
}

/* The body sent upstream for a stream: the client's, asking for usage. */
static const char *
stream_body(struct mg_call *call, const char *body, size_t *len)
{
	json_object *root, *so;
	const char *text;

	if (call->include_usage)
		return body;
	root = mg_call_tree(call, body, *len);
	if (root == NULL)
		return body;
	if (!json_object_object_get_ex(root, "stream_options", &so) || so == NULL) {
		so = json_object_new_object();
		if (so == NULL)
			return body;
		json_object_object_add(root, "stream_options", so);
	}
	json_object_object_add(so, "include_usage", json_object_new_boolean(1));
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	*len = strlen(text);
	return text;
}

/* Relays a streamed chat completion event by event.  Failures before the
 * first byte are ordinary HTTP errors; after it, one error event. */
static void
handle_stream(struct mg_worker *w, struct exchange *x, struct mg_call *call, struct mg_usage *u)
{
	struct stream_state st;
	struct mg_upstream_sink sink = { stream_start, stream_data, stream_tick, &st };
	struct mg_apierror e;
	size_t len = w->body.len;
	const char *body = stream_body(call, w->body.data, &len);
	enum mg_err rc;

	memset(&st, 0, sizeof(st));
	st.w = w;
	st.x = x;
	st.u = u;
	st.include_usage = call->include_usage;
	st.last_write = now_seconds();
	mg_sse_init(&st.sse, SSE_MAX_EVENT);
	rc = mg_upstream_call_stream(w->up, "/chat/completions", body, len, &sink, &w->reply);
	mg_sse_free(&st.sse);
	if (!st.started) {
		if (rc != MG_OK) {
			mg_log(MG_LOG_WARN, x->request_id, "upstream stream failed: %s (%s)",
			    mg_strerror(rc), mg_upstream_last_error(w->up));
			transport_error(rc, &e);
		} else {
			mg_log(MG_LOG_WARN, x->request_id, "upstream stream answered %ld: %.300s",
			    w->reply.status, mg_buf_str(&w->reply.body));
			mg_gateway_upstream_error(w->reply.status, mg_buf_str(&w->reply.body), &e);
		}
		fail_call(w, x, u, &e);
		return;
	}
	if (st.client_gone) {
		u->status = 499;
		u->error_type = "client_closed";
		if (st.draining)
			__atomic_sub_fetch(&w->gw->drains, 1, __ATOMIC_SEQ_CST);
		mg_log(MG_LOG_INFO, x->request_id, "client went away mid-stream; upstream %s",
		    st.draining ? (rc == MG_OK ? "drained" : "drain failed") : "aborted");
	} else if (st.failed) {
		/* the upstream's error event has been passed on */
	} else if (st.overflow) {
		mg_apierror_set(&e, 502, "upstream_error", NULL, "upstream_response_too_large",
		    "An event from the upstream provider was larger than this gateway accepts.");
		stream_error(&st, &e);
	} else if (rc != MG_OK) {
		mg_log(MG_LOG_WARN, x->request_id, "upstream stream broke off: %s (%s)",
		    mg_strerror(rc), mg_upstream_last_error(w->up));
		transport_error(rc, &e);
		stream_error(&st, &e);
	} else if (!st.done) {
		mg_apierror_set(&e, 502, "upstream_error", NULL, "upstream_error",
		    "The upstream provider ended the stream before it was complete.");
		stream_error(&st, &e);
	} else {
		static const char done[] = "data: [DONE]\n\n";

		u->status = 200;
		if (FCGX_PutStr(done, sizeof(done) - 1, x->fr->out) < 0 || FCGX_FFlush(x->fr->out) < 0) {
			u->status = 499;
			u->error_type = "client_closed";
		}
	}
	if (u->completion_tokens < 0 && st.content_chunks > 0) {
		/* no usage from the upstream: count what was relayed */
		u->completion_tokens = st.content_chunks;
		if (u->prompt_tokens >= 0)
			u->total_tokens = u->prompt_tokens + u->completion_tokens;
	}
	record(w, x, u);
}

/* Produces the client's answer from a successful upstream JSON object. */
static enum mg_err
answer(struct mg_worker *w, struct exchange *x, const struct mg_call *call, json_object *json)
{
	enum mg_err rc;

	if (call->endpoint == MG_EP_EMBEDDINGS && call->want_base64) {
		rc = mg_embed_to_base64(json);
		if (rc != MG_OK)
			return rc;
		mg_buf_reset(&w->out);
		rc = mg_buf_adds(&w->out, json_object_to_json_string_ext(json,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		if (rc != MG_OK)
			return rc;
		send_json(x, 200, w->out.data, w->out.len);
		return MG_OK;
	}
	/* the upstream's bytes, as it sent them */
	send_json(x, 200, w->reply.body.data, w->reply.body.len);
	return MG_OK;
}

static void
handle_call(struct mg_worker *w, struct exchange *x, enum mg_endpoint ep)
{
	const char *path = ep == MG_EP_CHAT ? "/chat/completions" : "/embeddings";
	struct mg_apierror e;
	struct mg_usage u;
	struct mg_call call;
	json_object *json = NULL;
	char hash[MG_APIKEY_HASH_HEX_LEN + 1], prefix[MG_APIKEY_PREFIX_LEN + 1];
	enum mg_err rc;

	if (client_key(w, x, hash, prefix) < 0)
		return;
	mg_usage_init(&u);
	memcpy(u.request_id, x->request_id, sizeof(u.request_id));
	u.endpoint = mg_endpoint_name(ep);

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
		rc = mg_request_parse(ep, w->body.data, w->body.len, &call, &e);
	}
	if (rc != MG_OK) {
		/* not admitted, but recorded for the key's project */
		rc = mg_store_auth(w->gw->store, hash, &x->auth);
		if (rc != MG_OK) {
			auth_failed(w, x, rc, prefix);
			return;
		}
		x->authed = 1;
		u.project_id = x->auth.project_id;
		u.key_id = x->auth.key_id;
		fail_call(w, x, &u, &e);
		return;
	}
	if (admit(w, x, &call, hash, prefix) < 0) {
		mg_call_free(&call);
		return;
	}
	u.project_id = x->auth.project_id;
	u.key_id = x->auth.key_id;
	memcpy(u.model, call.model, strlen(call.model) + 1);
	u.stream = call.stream;
	if (call.stream) {
		handle_stream(w, x, &call, &u);
		goto out;
	}
	rc = call_upstream(w, x, path, w->body.data, w->body.len, &e);
	if (rc != MG_OK) {
		fail_call(w, x, &u, &e);
		goto out;
	}
	if (!(ep == MG_EP_EMBEDDINGS && call.want_base64) &&
	    mg_usage_from_text(&u, mg_buf_str(&w->reply.body), w->reply.body.len) == MG_OK) {
		/* a JSON object, read in place: the upstream's bytes go back */
		x->billable = 1;
		send_json(x, 200, w->reply.body.data, w->reply.body.len);
		u.status = 200;
		record(w, x, &u);
		goto out;
	}
	rc = parse_reply(w, x, path, &json, &e);
	if (rc != MG_OK) {
		fail_call(w, x, &u, &e);
		goto out;
	}
	x->billable = 1;
	mg_usage_from_json(&u, json);
	rc = answer(w, x, &call, json);
	if (rc != MG_OK) {
		mg_apierror_set(&e, 502, "upstream_error", NULL, "upstream_invalid_response",
		    "The upstream provider's embeddings could not be converted: %s.", mg_strerror(rc));
		fail_call(w, x, &u, &e);
		goto out;
	}
	u.status = 200;
	record(w, x, &u);
out:
	json_object_put(json);
	mg_call_free(&call);
}

/* The upstream's model list (chat models, and embedding models where the
 * upstream lists them apart) in the OpenAI shape; NULL with e filled. */
static json_object *
fetch_models(struct mg_worker *w, struct exchange *x, struct mg_apierror *e)
{
	json_object *list = NULL, *json = NULL;
	struct mg_apierror ignored;

	if (relay(w, x, "/models", NULL, 0, &json, e) != MG_OK)
		return NULL;
	list = mg_models_new_list();
	if (list == NULL || mg_models_merge(list, json) != MG_OK) {
		mg_apierror_set(e, 502, "upstream_error", NULL, "upstream_invalid_response",
		    "The upstream provider's model list has no data array.");
		json_object_put(list);
		json_object_put(json);
		return NULL;
	}
	json_object_put(json);
	/* OpenRouter lists embedding models at their own path; others 404 */
	if (relay(w, x, "/embeddings/models", NULL, 0, &json, &ignored) == MG_OK) {
		if (mg_models_merge(list, json) != MG_OK)
			mg_log(MG_LOG_DEBUG, x->request_id, "no embedding model list upstream");
		json_object_put(json);
	}
	return list;
}

/* The project's model list: from the catalog, or from the upstream while
 * the catalog is empty; limited to the project's allowed models.  NULL
 * with e filled on failure. */
static json_object *
project_models(struct mg_worker *w, struct exchange *x, struct mg_apierror *e)
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
		list = fetch_models(w, x, e);
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
handle_models(struct mg_worker *w, struct exchange *x, const char *id)
{
	struct mg_apierror e;
	json_object *list = project_models(w, x, &e), *shown;
	const char *text;

	if (list == NULL) {
		send_error(w, x, &e);
		return;
	}
	shown = list;
	if (id != NULL) {
		shown = mg_models_find(list, id);
		if (shown == NULL) {
			mg_apierror_set(&e, 404, "invalid_request_error", "model", "model_not_found",
			    "The model '%.200s' does not exist or is not available through this gateway.", id);
			send_error(w, x, &e);
			json_object_put(list);
			return;
		}
	}
	text = json_object_to_json_string_ext(shown, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	send_json(x, 200, text, strlen(text));
	json_object_put(list);
}

static void
handle_health(struct mg_worker *w, struct exchange *x)
{
	static const char ok[] = "{\"status\":\"ok\",\"database\":\"ok\"}";
	static const char down[] = "{\"status\":\"degraded\",\"database\":\"unavailable\"}";

	if (mg_store_ping(w->gw->store) == MG_OK)
		send_json(x, 200, ok, sizeof(ok) - 1);
	else
		send_json(x, 503, down, sizeof(down) - 1);
}

void
mg_gateway_handle(struct mg_worker *w, FCGX_Request *r)
{
	struct exchange x;
	struct mg_route_match m;
	struct mg_apierror e;
	const char *method = mg_fcgi_param(r, "REQUEST_METHOD");
	const char *uri = mg_fcgi_param(r, "REQUEST_URI");

	memset(&x, 0, sizeof(x));
	x.fr = r;
	clock_gettime(CLOCK_MONOTONIC, &x.start);
	new_request_id(x.request_id);
	memcpy(x.headers, REQUEST_ID_HEADER, sizeof(REQUEST_ID_HEADER) - 1);
	memcpy(x.headers + sizeof(REQUEST_ID_HEADER) - 1, x.request_id, MG_REQUEST_ID_LEN);
	memcpy(x.headers + sizeof(REQUEST_ID_HEADER) - 1 + MG_REQUEST_ID_LEN, "\r\n", 3);

	if (uri == NULL)
		uri = mg_fcgi_param(r, "SCRIPT_NAME");
	mg_router_match(method, uri, &m);
	mg_log(MG_LOG_DEBUG, x.request_id, "%s %.300s", method ? method : "-", uri ? uri : "-");
	if (m.route == MG_ROUTE_NONE) {
		mg_apierror_set(&e, 404, "invalid_request_error", NULL, "not_found",
		    "Unknown request URL: %s %.200s. See the API reference for the routes this gateway serves.",
		    method ? method : "-", uri ? uri : "-");
		send_error(w, &x, &e);
		return;
	}
	if (!m.method_ok) {
		snprintf(x.headers + strlen(x.headers), sizeof(x.headers) - strlen(x.headers),
		    "Allow: %s\r\n", m.allow);
		mg_apierror_set(&e, 405, "invalid_request_error", NULL, "method_not_allowed",
		    "%s is not allowed on this URL; use %s.", method ? method : "-", m.allow);
		send_error(w, &x, &e);
		return;
	}
	if (m.route == MG_ROUTE_HEALTH) {
		handle_health(w, &x);
		return;
	}
	if ((m.route == MG_ROUTE_MODELS || m.route == MG_ROUTE_MODEL) && authenticate(w, &x) < 0)
		return;
	switch (m.route) {
	case MG_ROUTE_CHAT:
		handle_call(w, &x, MG_EP_CHAT);
		break;
	case MG_ROUTE_EMBEDDINGS:
		handle_call(w, &x, MG_EP_EMBEDDINGS);
		break;
	case MG_ROUTE_MODELS:
		handle_models(w, &x, NULL);
		break;
	case MG_ROUTE_MODEL:
		handle_models(w, &x, m.model_id);
		break;
	default:
		break;
	}
}
