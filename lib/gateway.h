#ifndef MG_GATEWAY_H
#define MG_GATEWAY_H

#include <fcgiapp.h>

#include "apierror.h"
#include "buf.h"
#include "conf.h"
#include "ledger.h"
#include "request.h"
#include "route.h"
#include "store.h"
#include "upstream.h"

/* The request handler: route, then parse → admit → relay → settle (see
 * lib/README.md).  One struct mg_gateway per process, one struct mg_worker per
 * request thread. */
struct mg_gateway {
	const struct mg_conf *conf;
	struct mg_store *store;
	struct mg_ledger *ledger;    /* batched admissions, queued settlements */
	int drains;                  /* streams being drained now (atomic) */
};

struct mg_worker {
	struct mg_gateway *gw;
	struct mg_upstream *up;      /* the first upstream's handle (ups[0]) */
	struct mg_upstream *ups[MG_UPSTREAMS_MAX]; /* this thread's reused curl
	                              * handles, one per upstream */
	struct mg_upstream *cur;     /* the handle of the call being made */
	struct mg_buf body;          /* request body, capped at max_body */
	struct mg_buf out;           /* response body we build */
	struct mg_upstream_reply reply;
};

struct mg_exchange;
struct mg_usage;

/* The upstream calls a request may make, in order (mg_route_plan). */
struct mg_plan {
	struct mg_route_candidate c[MG_ROUTE_ATTEMPTS_MAX];
	int n;
};

/* A request's calls, one after the other: mg_tries_next picks the next
 * candidate, mg_tries_done counts how it ended. */
struct mg_tries {
	const struct mg_plan *plan;
	int next;                    /* the next candidate's index */
	int made;                    /* calls made */
	long long deadline_ms;       /* when every call must have ended */
	long long cooling_ms;        /* the shortest cooldown skipped, 0: none */
	const struct mg_route_candidate *cand; /* the call being made */
	struct mg_upstream *up;
	const char *body;            /* what it sends */
	size_t len;
	long long started_ms;
};

/* Readies the next call of t (after the backoff, skipping upstreams that
 * cool down): 1 with t->cand, t->up, t->body set; 0 when none is left or
 * no time is.  The first call starts the request's deadline. */
int mg_tries_next(struct mg_worker *w, struct mg_call *call, struct mg_tries *t);
/* Counts the call of t that ended with rc and status (started: a stream
 * reached the client) in u's attempts and the upstream's health.  1 when
 * the next candidate is to be tried: it failed before the first byte
 * (no connection, a timeout, a broken answer, 429, 5xx). */
int mg_tries_done(struct mg_worker *w, struct mg_exchange *x, struct mg_usage *u,
    struct mg_tries *t, enum mg_err rc, long status, int started);
/* The answer when no call was made: every candidate cools down. */
void mg_tries_unavailable(struct mg_exchange *x, const struct mg_tries *t,
    struct mg_apierror *e);

/* MG_ERR_NOMEM when the curl handle cannot be made. */
enum mg_err mg_worker_init(struct mg_worker *w, struct mg_gateway *gw)
	__attribute__((warn_unused_result));
void mg_worker_free(struct mg_worker *w);
/* Frees the buffers the last request made grow beyond a few KiB (the
 * small ones are kept for the next request).  Call between requests. */
void mg_worker_shrink(struct mg_worker *w);

/* Serves one accepted request completely (the caller finishes it).  Every
 * outcome is a response; every authenticated chat or embeddings request
 * is recorded once in usage_events. */
void mg_gateway_handle(struct mg_worker *w, FCGX_Request *r);

#endif
