#ifndef MG_RECONCILE_H
#define MG_RECONCILE_H

#include <stddef.h>

#include "buf.h"
#include "err.h"
#include "store.h"
#include "upstream.h"

/* What one pass of per-generation checks did. */
struct mg_recon_pass {
	int looked;        /* lookups made */
	int confirmed;     /* the upstream billed what the row was charged */
	int adjusted;      /* it billed something else: an adjustment */
	int retried;       /* not known to the upstream yet: looked up later */
	int missing;       /* not known after the last retry: missing_upstream */
	int failed;        /* no usable answer (network, 5xx, 429): leased again later */
	long long unsupported; /* rows marked unsupported */
	unsigned long long raised;  /* the adjustments that raised a charge, 1e-9 USD */
	unsigned long long lowered; /* those that lowered one, by how much, 1e-9 USD */
};

/* What a GET /generation answer says (mg_recon_read). */
enum mg_recon_answer {
	MG_RECON_BILLED,   /* the generation and what it cost: cost holds it */
	MG_RECON_NOT_YET,  /* the upstream does not know the id (yet) */
	MG_RECON_NO_API,   /* the upstream has no per-generation API */
	MG_RECON_FAILED    /* anything else: try again later */
};

/* Reads an answer to GET /generation?id=: status and len bytes of body.
 * For MG_RECON_BILLED, data.total_cost as the exact decimal text the
 * upstream wrote (USD) goes into cost (size bytes). */
enum mg_recon_answer mg_recon_read(long status, const char *body, size_t len, char *cost,
    size_t size);

/* The path of the lookup of generation id, URL-encoded, into out (size
 * bytes); -1 when it does not fit. */
int mg_recon_path(const char *id, char *out, size_t size);

/* One pass: leases up to max rows due for a lookup, looks each up on the
 * upstream (one at a time, never on a request thread) and records the
 * answer.  *no_api is set, and every waiting row marked unsupported, when
 * the upstream turns out to have no per-generation API; while it is set
 * a pass only marks the waiting rows.  MG_OK unless Postgres failed. */
enum mg_err mg_reconcile_pass(struct mg_store *s, struct mg_upstream *up, size_t max_response,
    int max, int *no_api, struct mg_recon_pass *out) __attribute__((warn_unused_result));

/* Reads the data of an answer to GET /activity (len bytes of body): its
 * items of UTC day day (YYYY-MM-DD; items of another date are left out)
 * into out as a JSON array of {"model", "requests", "usage"}, the usage
 * as the exact decimal text the upstream wrote, for
 * mg_store_recon_close_record.  0, or -1 when it is not such an answer. */
int mg_recon_activity_read(const char *body, size_t len, const char *day, struct mg_buf *out)
	__attribute__((warn_unused_result));

/* Reads data.total_usage of an answer to GET /credits into usage (size
 * bytes) as exact decimal text: 0, or -1. */
int mg_recon_credits_read(const char *body, size_t len, char *usage, size_t size)
	__attribute__((warn_unused_result));

/* Closes UTC day day (YYYY-MM-DD): asks the upstream with the management
 * key (mgmt) for its activity of the day (only that of the provider key
 * whose SHA-256 is key_hash, when it is not NULL) and the account's
 * credits, and records the close (mg_recon_close_record).  The close as
 * JSON in *json (the caller frees it); on failure a reason in err. */
enum mg_err mg_recon_close(struct mg_store *s, struct mg_upstream *mgmt, const char *key_hash,
    size_t max_response, const char *day, char **json, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
