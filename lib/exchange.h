#ifndef MG_EXCHANGE_H
#define MG_EXCHANGE_H

#include <fcgiapp.h>
#include <time.h>

#include "apierror.h"
#include "gateway.h"
#include "store.h"
#include "usage.h"

/* One request on its way through the gateway: its id, the extra header
 * lines of its answer, whose it is once known, and how it ends.  Owned by
 * the request thread that serves it (gateway.c, auth.c and stream.c take
 * turns with it); lives on that thread's stack. */
struct mg_exchange {
	FCGX_Request *fr;
	char request_id[MG_REQUEST_ID_LEN + 1];
	char headers[1024];         /* extra response header lines */
	struct timespec start;      /* CLOCK_MONOTONIC, when it arrived */
	struct mg_auth auth;        /* whose it is, once authed */
	int authed;
	int admitted;               /* a pending usage row or a lease holds its
	                             * reservation */
	struct mg_lease_ticket ticket; /* admitted from a lease: how */
	int billable;               /* the upstream did work for this request */
	int status;                 /* the HTTP status answered, 0 before */
	int stream;                 /* the answer is (or was to be) a stream */
	unsigned long long upstream_us; /* the upstream call, 0: none */
};

/* Starts an exchange for fr: the clock, a new request id and its
 * x-request-id header line. */
void mg_exchange_begin(struct mg_exchange *x, FCGX_Request *fr);

/* Adds a header line to the answer (see mg_fcgi_header_addf); a line that
 * does not fit or is not one line is left out and logged. */
void mg_exchange_header(struct mg_exchange *x, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Sends the whole answer: status, JSON body, the exchange's header lines. */
void mg_exchange_send_json(struct mg_exchange *x, int status, const char *body, size_t len);

/* Sends e as an OpenAI error object (built in w->out). */
void mg_exchange_send_error(struct mg_worker *w, struct mg_exchange *x,
    const struct mg_apierror *e);

/* Settles the request: its usage row (through the ledger when admitted,
 * at once otherwise), with latency from x->start, and its log line. */
void mg_exchange_record(struct mg_worker *w, struct mg_exchange *x, struct mg_usage *u);

/* Ends the request with e: u's status and error type, the answer sent,
 * the row recorded. */
void mg_exchange_fail(struct mg_worker *w, struct mg_exchange *x, struct mg_usage *u,
    const struct mg_apierror *e);

#endif
