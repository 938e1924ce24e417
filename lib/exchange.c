/* exchange.c -- One request on its way through the gateway: its id and
 * header lines, its answer (a JSON body or an OpenAI error object) and its
 * usage row.  Called by gateway.c, auth.c and stream.c. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "apikey.h"
#include "clock.h"
#include "exchange.h"
#include "fcgi.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "text.h"

#define JSON_TYPE "application/json"

/* A request id: "req_", the Unix time in milliseconds as 12 hex digits,
 * then 12 random ones.  Ids sort by when they were taken, so the unique
 * index on usage rows' ids grows at its right edge.  With ids all random,
 * each row settled read and dirtied a leaf page of its own: with 16.8
 * million rows in a month's partition (its index 1.3 GB, Postgres's
 * buffers 128 MB), a settlement of 15 rows spent 8 ms reading them. */
static void
new_request_id(char out[MG_REQUEST_ID_LEN + 1])
{
	static unsigned counter;
	unsigned char raw[12];
	struct timespec ts;
	unsigned long long ms;
	size_t i;

	mg_clock_now(CLOCK_REALTIME, &ts);
	ms = (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
	for (i = 0; i < 6; i++)
		raw[i] = (unsigned char)(ms >> (8 * (5 - i)));
	if (mg_random_id_bytes(raw + 6, 6) != MG_OK) {
		/* no randomness: the time's nanoseconds and a count, which
		 * the unique index still holds apart within a process */
		unsigned n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);

		raw[6] = (unsigned char)(ts.tv_nsec >> 16);
		raw[7] = (unsigned char)(ts.tv_nsec >> 8);
		raw[8] = (unsigned char)ts.tv_nsec;
		raw[9] = (unsigned char)(n >> 16);
		raw[10] = (unsigned char)(n >> 8);
		raw[11] = (unsigned char)n;
	}
	memcpy(out, "req_", 4);
	out[4 + mg_text_hex(out + 4, raw, sizeof(raw))] = '\0';
}

/* Adds the line "name: value" to x's headers; logs that it is left out
 * when value is not whole (0), not one line or does not fit. */
static void
header_add(struct mg_exchange *x, const char *name, const char *value, int whole)
{
	if (!whole || mg_fcgi_header_add(x->headers, sizeof(x->headers), name, value) != MG_OK)
		mg_log(MG_LOG_WARN, x->request_id, "header %s left out: too long or not one line",
		    name);
}

void
mg_exchange_begin(struct mg_exchange *x, FCGX_Request *fr)
{
	memset(x, 0, sizeof(*x));
	x->fr = fr;
	mg_clock_now(CLOCK_MONOTONIC, &x->start);
	new_request_id(x->request_id);
	header_add(x, "x-request-id", x->request_id, 1);
}

void
mg_exchange_header(struct mg_exchange *x, const char *name, const char *fmt, ...)
{
	char value[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	header_add(x, name, value, n >= 0 && (size_t)n < sizeof(value));
}

void
mg_exchange_send_json(struct mg_exchange *x, int status, const char *body, size_t len)
{
	x->status = status;
	if (mg_fcgi_reply(x->fr, status, JSON_TYPE, x->headers, body, len) != MG_OK)
		mg_log(MG_LOG_INFO, x->request_id, "client went away before the response");
}

void
mg_exchange_send_error(struct mg_worker *w, struct mg_exchange *x, const struct mg_apierror *e)
{
	mg_buf_reset(&w->out);
	if (mg_apierror_json(e, &w->out) != MG_OK) {
		static const char fallback[] =
		    "{\"error\":{\"message\":\"internal error\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";

		mg_exchange_send_json(x, 500, fallback, sizeof(fallback) - 1);
		return;
	}
	mg_exchange_send_json(x, e->status, w->out.data, w->out.len);
}

void
mg_exchange_record(struct mg_worker *w, struct mg_exchange *x, struct mg_usage *u)
{
	enum mg_err rc;

	u->latency_ms = mg_clock_ms_since(&x->start);
	if (w->gw->conf->recon_verify_all)
		u->check = 1;
	if (x->admitted) {
		mg_metrics_usage(u->model, x->auth.project, u->prompt_tokens,
		    u->completion_tokens);
		/* written by the ledger's thread: the client does not wait */
		u->lease = x->ticket;
		mg_ledger_settle(w->gw->ledger, u, x->auth.project, x->billable);
	} else {
		rc = mg_store_record_usage(w->gw->store, u);
		if (rc != MG_OK)
			mg_log(MG_LOG_ERROR, x->request_id, "usage row not written: %s: %s",
			    mg_strerror(rc), mg_store_last_error());
	}
	/* the answer goes now, before the log line: a write to the log
	 * file can wait on the disk, the client need not; a request that
	 * was not admitted has its row written by now, as before */
	if (mg_fcgi_end(x->fr) != MG_OK)
		mg_log(MG_LOG_DEBUG, x->request_id, "client went away at the end of the response");
	mg_log(MG_LOG_INFO, x->request_id,
	    "%s project=%s key=%s model=%s status=%d tokens=%lld/%lld cost=%s latency_ms=%ld",
	    u->endpoint, x->auth.project, x->auth.key_prefix, u->model[0] ? u->model : "-",
	    u->status, u->prompt_tokens, u->completion_tokens,
	    u->cost[0] ? u->cost : "-", u->latency_ms);
}

void
mg_exchange_fail(struct mg_worker *w, struct mg_exchange *x, struct mg_usage *u,
    const struct mg_apierror *e)
{
	u->status = e->status;
	u->error_type = e->code != NULL ? e->code : e->type;
	mg_exchange_send_error(w, x, e);
	mg_exchange_record(w, x, u);
}
