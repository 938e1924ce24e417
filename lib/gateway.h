#ifndef MG_GATEWAY_H
#define MG_GATEWAY_H

#include <fcgiapp.h>

#include "apierror.h"
#include "buf.h"
#include "conf.h"
#include "ledger.h"
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
	struct mg_upstream *up;      /* this thread's reused curl handle */
	struct mg_buf body;          /* request body, capped at max_body */
	struct mg_buf out;           /* response body we build */
	struct mg_upstream_reply reply;
};

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
