/* stream.c -- The relay of a streamed chat completion: the upstream's SSE
 * events passed on as they come, one flush per read, heartbeats while it
 * is quiet, a client that goes away drained or aborted, and the stream's
 * end (done, broken off, an error event) recorded.  Called by gateway.c. */
#include "config.h"

#include <poll.h>
#include <string.h>

#include "chunk.h"
#include "clock.h"
#include "fcgi.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "sse.h"
#include "stream.h"

#define SSE_MAX_EVENT (4u << 20)

/* One streamed chat completion on its way from the upstream to the client. */
struct stream_state {
	struct mg_worker *w;
	struct mg_exchange *x;
	struct mg_usage *u;
	int include_usage;      /* the client asked for the usage-only chunk */
	int started;            /* our response headers are out */
	int done;               /* the upstream sent [DONE] */
	int failed;             /* an error event went to the client */
	int client_gone;        /* a write to the client failed */
	int draining;           /* client gone: reading on for the usage only */
	int overflow;           /* an upstream event exceeded the cap */
	int noted;              /* the generation id went to the ledger */
	int unflushed;          /* written since the last flush */
	long content_chunks;    /* deltas with content, if usage never comes */
	long last_write;        /* monotonic seconds of the last write */
	long hup_checked;       /* monotonic second of the last server_hung_up */
	struct mg_sse sse;
};

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
	st->last_write = mg_clock_seconds();
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

/* The upstream answered 200: our headers go out. */
static int
stream_start(void *arg)
{
	static const char plain[] = "Content-Type: text/event-stream\r\n"
	    "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n";
	struct stream_state *st = arg;
	char head[1536];
	size_t n = strlen(st->x->headers);

	st->started = 1;
	st->x->billable = 1;
	st->x->status = 200;
	mg_metrics_gauge(MG_G_STREAMS_OPEN, 1);
	/* the exchange's lines are each checked, and fit in head with room */
	_Static_assert(sizeof(head) >= 16 + sizeof(plain) + sizeof(st->x->headers) + 2,
	    "the stream's header fits");
	memcpy(head, "Status: 200 OK\r\n", 16);
	memcpy(head + 16, plain, sizeof(plain) - 1);
	memcpy(head + 16 + sizeof(plain) - 1, st->x->headers, n);
	memcpy(head + 16 + sizeof(plain) - 1 + n, "\r\n", 2);
	return stream_write(st, head, 16 + sizeof(plain) - 1 + n + 2);
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

/* One event from the upstream; 1 when the stream must stop. */
static int
stream_event(void *arg, const struct mg_sse_event *ev)
{
	struct stream_state *st = arg;
	struct mg_apierror e;
	struct mg_chunk c;
	int rc = 0;

	mg_chunk_read(&c, st->u, ev->data, ev->len);
	switch (c.kind) {
	case MG_CHUNK_DONE:
		st->done = 1;
		break;
	case MG_CHUNK_INVALID:
		mg_log(MG_LOG_WARN, st->x->request_id, "upstream sent a non-JSON event: %.200s",
		    ev->data);
		break;
	case MG_CHUNK_ERROR:
		mg_log(MG_LOG_WARN, st->x->request_id, "upstream error in stream: %.300s", ev->data);
		mg_apierror_set(&e, 502, "upstream_error", NULL, "upstream_error", "%s",
		    c.message[0] != '\0' ? c.message : "The upstream provider failed during the stream.");
		stream_error(st, &e);
		rc = 1;
		break;
	case MG_CHUNK_USAGE_ONLY:
		if (!st->include_usage)
			break;  /* the usage-only chunk the client did not ask for */
		/* FALLTHROUGH */
	case MG_CHUNK_DATA:
		if (c.contents > 0 && st->content_chunks == 0) {
			st->u->ttft_ms = mg_clock_ms_since(&st->x->start);
			mg_metrics_observe(MG_H_TTFT, mg_clock_us_since(&st->x->start));
		}
		st->content_chunks += c.contents;
		rc = send_event(st, c.text, c.len);
		break;
	}
	mg_chunk_free(&c);
	if (!st->noted && st->u->upstream_id[0] != '\0') {
		/* kept with the pending row (after the event went out): if this
		 * process dies mid-stream, the reaper's charge can be checked */
		st->noted = 1;
		mg_ledger_note_id(st->w->gw->ledger, st->u->request_id, st->u->upstream_id);
	}
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
	now = mg_clock_seconds();
	if (now != st->hup_checked) {
		st->hup_checked = now;
		if (server_hung_up(st->x->fr))
			return client_lost(st) < 0;
	}
	if (now - st->last_write < st->w->gw->conf->heartbeat_interval)
		return 0;
	return stream_write(st, ping, sizeof(ping) - 1) < 0;
}

/* How the stream ended once it had started: u's status, and the error
 * event the client still needs. */
static void
stream_end(struct stream_state *st, enum mg_err rc)
{
	struct mg_worker *w = st->w;
	struct mg_exchange *x = st->x;
	struct mg_usage *u = st->u;
	struct mg_apierror e;

	if (st->client_gone) {
		u->status = 499;
		u->error_type = "client_closed";
		u->check = 1;   /* what a cut stream cost: the upstream's bill says */
		if (st->draining)
			__atomic_sub_fetch(&w->gw->drains, 1, __ATOMIC_SEQ_CST);
		mg_log(MG_LOG_INFO, x->request_id, "client went away mid-stream; upstream %s",
		    st->draining ? (rc == MG_OK ? "drained" : "drain failed") : "aborted");
	} else if (st->failed) {
		/* the upstream's error event has been passed on */
	} else if (st->overflow) {
		mg_apierror_set(&e, 502, "upstream_error", NULL, "upstream_response_too_large",
		    "An event from the upstream provider was larger than this gateway accepts.");
		stream_error(st, &e);
	} else if (rc != MG_OK) {
		u->check = 1;
		mg_log(MG_LOG_WARN, x->request_id, "upstream stream broke off: %s (%s)",
		    mg_strerror(rc), mg_upstream_last_error(w->cur));
		mg_apierror_transport(rc, &e);
		stream_error(st, &e);
	} else if (!st->done) {
		mg_apierror_set(&e, 502, "upstream_error", NULL, "upstream_error",
		    "The upstream provider ended the stream before it was complete.");
		stream_error(st, &e);
	} else {
		static const char done[] = "data: [DONE]\n\n";

		u->status = 200;
		if (FCGX_PutStr(done, sizeof(done) - 1, x->fr->out) < 0 || mg_fcgi_end(x->fr) != MG_OK) {
			u->status = 499;
			u->error_type = "client_closed";
		}
	}
}

void
mg_stream_relay(struct mg_worker *w, struct mg_exchange *x, struct mg_call *call,
    const struct mg_plan *plan, struct mg_usage *u)
{
	struct stream_state st;
	struct mg_upstream_sink sink = { stream_start, stream_data, stream_tick, &st };
	struct mg_apierror e;
	struct mg_tries t;
	struct timespec since;
	enum mg_err rc = MG_OK;
	int again = 1;

	memset(&st, 0, sizeof(st));
	st.w = w;
	st.x = x;
	st.u = u;
	st.include_usage = call->include_usage;
	st.last_write = mg_clock_seconds();
	memset(&t, 0, sizeof(t));
	t.plan = plan;
	/* each candidate in turn until one's answer starts: never another
	 * once bytes reached the client */
	while (again && !st.started && mg_tries_next(w, call, &t)) {
		mg_sse_init(&st.sse, SSE_MAX_EVENT);
		mg_clock_now(CLOCK_MONOTONIC, &since);
		rc = mg_upstream_call_stream(t.up, "/chat/completions", t.body, t.len, &sink,
		    &w->reply);
		x->upstream_us += mg_clock_us_since(&since);
		mg_sse_free(&st.sse);
		again = mg_tries_done(w, x, u, &t, rc, rc == MG_OK || st.started ? w->reply.status : 0,
		    st.started);
	}
	if (x->upstream_us == 0)
		x->upstream_us = 1;
	if (!st.started) {
		if (t.made == 0) {
			mg_tries_unavailable(x, &t, &e);
		} else if (rc != MG_OK) {
			mg_log(MG_LOG_WARN, x->request_id, "upstream stream failed: %s (%s)",
			    mg_strerror(rc), mg_upstream_last_error(t.up));
			mg_apierror_transport(rc, &e);
		} else {
			mg_log(MG_LOG_WARN, x->request_id, "upstream stream answered %ld: %.300s",
			    w->reply.status, mg_buf_str(&w->reply.body));
			mg_apierror_upstream(w->reply.status, mg_buf_str(&w->reply.body), &e);
		}
		mg_exchange_fail(w, x, u, &e);
		return;
	}
	stream_end(&st, rc);
	mg_metrics_gauge(MG_G_STREAMS_OPEN, -1);
	if (u->completion_tokens < 0 && st.content_chunks > 0) {
		/* no usage from the upstream: count what was relayed */
		u->completion_tokens = st.content_chunks;
		if (u->prompt_tokens >= 0)
			u->total_tokens = u->prompt_tokens + u->completion_tokens;
	}
	mg_exchange_record(w, x, u);
}
