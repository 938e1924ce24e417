#ifndef MG_STREAM_H
#define MG_STREAM_H

#include "exchange.h"
#include "gateway.h"
#include "request.h"
#include "usage.h"

/* The relay of a streamed chat completion, event by event, from the
 * upstream to the client: the SSE state machine, heartbeats, a client
 * that goes away (drained or aborted), and the usage the stream carried.
 * Called by gateway.c for an admitted request. */

/* Relays call (body in w->body) to the candidates of plan in turn and
 * records u.  A failure before the first byte moves on to the next
 * candidate, and ends as an ordinary HTTP error when none is left; after
 * it, one error event ends the stream. */
void mg_stream_relay(struct mg_worker *w, struct mg_exchange *x, struct mg_call *call,
    const struct mg_plan *plan, struct mg_usage *u);

#endif
