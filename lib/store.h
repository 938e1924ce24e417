#ifndef MG_STORE_H
#define MG_STORE_H

#include <time.h>

#include "err.h"
#include "route.h"
#include "usage.h"

/* The responder's Postgres side: a small pool of persistent connections
 * with prepared statements.  A thread holds a connection only for the
 * duration of one call below.  All functions are thread-safe. */
struct mg_store;

/* The identity a key resolves to. */
struct mg_auth {
	long long key_id;
	long long project_id;
	char project[72];
	char key_prefix[16];
};

/* How admission of a request ended (see mg_admit in sql/). */
enum mg_admit_outcome {
	MG_ADMIT_OK = 0,
	MG_ADMIT_INVALID_KEY,         /* unknown or revoked key */
	MG_ADMIT_MODEL_NOT_ALLOWED,   /* not in the project's allowed models */
	MG_ADMIT_MODEL_NOT_FOUND,     /* not in a non-empty catalog */
	MG_ADMIT_SPEND_CAP,           /* the reservation would pass the cap */
	MG_ADMIT_REQUESTS,            /* requests-per-minute limit */
	MG_ADMIT_TOKENS,              /* tokens-per-minute limit */
	MG_ADMIT_TOKENS_TOO_MANY      /* needs more tokens than the TPM limit */
};

/* What admission needs to know about a request. */
struct mg_admit_req {
	const char *key_hash_hex;
	const char *request_id;
	const char *model;
	const char *endpoint;
	int stream;
	long long prompt_estimate;     /* tokens, estimated from above */
	long long max_output;          /* the client's max tokens, -1: none */
	int default_output;            /* reserved when max_output is -1 */
	const char *fallback_prompt;   /* USD per token, decimal text */
	const char *fallback_completion;
	const struct mg_conf *conf;    /* the upstreams cands name, or NULL */
	const struct mg_route_candidate *cands; /* the calls it may make: the */
	int n_cands;                   /* reservation covers the dearest */
	struct timespec since;         /* CLOCK_MONOTONIC when it asked to be
	                                * admitted; {0, 0}: when the store is called */
	const char *lease_holder;      /* a lease element (see mg_admit_batch):
	                                * the process, or NULL: a request */
	long long lease_requests;      /* what it would borrow: requests, */
	long long lease_tokens;        /* tokens and spend (decimal USD) */
	const char *lease_spend;
	int lease_refresh;             /* a lease element of no request: it
	                                * renews what the holder keeps of the
	                                * key and model, and lends what it asks */
	long long lease_changes;       /* the admission changes its holder knew
	                                * of when it was sent (mg_leases_admit) */
};

/* The decision.  Counts are -1 where the project has no such limit. */
struct mg_admission {
	enum mg_admit_outcome outcome;
	struct mg_auth auth;           /* all but INVALID_KEY */
	char reserved[MG_COST_MAX];    /* the request's maximum cost */
	char spend_cap[MG_COST_MAX];   /* "" if none */
	char spent[MG_COST_MAX];       /* this period's spend so far */
	long long rpm, rpm_remaining, rpm_reset_ms;
	long long tpm, tpm_remaining, tpm_reset_ms;
	long long retry_after_ms;      /* -1: waiting does not help */
	long long need_tokens;         /* prompt estimate + output reserved */
	char prompt_price[MG_COST_MAX];     /* the prices it is reserved at */
	char completion_price[MG_COST_MAX];
	long long context_length;      /* the model's, -1: unknown */
	/* a lease element's grant: the lease after it (id 0: none), the
	 * requests and tokens lent (-1: the project has no such limit) */
	long long lease_id, lease_seq, lease_requests, lease_tokens;
	char lease_spend[MG_COST_MAX];
	int lease_tight;               /* the request's own share only */
	/* admitted from a lease by the ledger: how (lease_id 0 otherwise) */
	struct mg_lease_ticket ticket;
};

/* Creates a pool of up to size connections (opened lazily).  Each call
 * gives up (MG_ERR_DB_DOWN) when connect_timeout seconds have passed since
 * it began (for an admission: since q->since): waiting for a free
 * connection, opening one, preparing its statements and waiting for the
 * answer all count.  NULL on allocation failure. */
struct mg_store *mg_store_new(const char *conninfo, int size, int connect_timeout);
void mg_store_free(struct mg_store *s);
/* Closes the idle connections that carried a large message either way (a
 * settlement batch of hundreds of rows, a model catalog, a large report's
 * answer): libpq keeps a connection's buffers at the size of the largest
 * message it carried, half a megabyte for a batch of 1024, until the
 * connection closes.  The next call opens one again.  For a quiet moment
 * after a busy one; counted by modelgate_db_connections_shed_total. */
void mg_store_shed(struct mg_store *s);

/* Resolves a key hash (64 hex chars).  MG_OK, MG_ERR_AUTH (unknown or
 * revoked), MG_ERR_DB_DOWN (no connection) or MG_ERR_DB. */
enum mg_err mg_store_auth(struct mg_store *s, const char *key_hash_hex, struct mg_auth *out)
	__attribute__((warn_unused_result));
/* Writes the usage row.  MG_OK, MG_ERR_DB_DOWN or MG_ERR_DB. */
enum mg_err mg_store_record_usage(struct mg_store *s, const struct mg_usage *u)
	__attribute__((warn_unused_result));
/* Admits a request in one round trip: key, model, rate limits and spend
 * reservation; when admitted its usage row exists, pending.  MG_OK with
 * out filled (whatever the outcome), MG_ERR_DB_DOWN or MG_ERR_DB. */
enum mg_err mg_store_admit(struct mg_store *s, const struct mg_admit_req *q,
    struct mg_admission *out) __attribute__((warn_unused_result));
/* Admits n requests in one round trip and one transaction (see
 * mg_admit_batch); every q[i] has the same default output and fallback
 * prices.  MG_OK with every out[i] filled, or an error for all. */
enum mg_err mg_store_admit_batch(struct mg_store *s, const struct mg_admit_req *const *q,
    int n, struct mg_admission *const *out) __attribute__((warn_unused_result));
/* Settles n admitted requests in one round trip and one transaction;
 * *settled says how many were still pending.  charged (NULL: not wanted)
 * is n amounts: what u[i] was charged, in 1e-9 USD rounded half up, 0
 * when this call did not settle it. */
enum mg_err mg_store_settle_batch(struct mg_store *s, const struct mg_usage *const *u,
    const int *billable, int n, int *settled, unsigned long long *charged)
	__attribute__((warn_unused_result));
/* Settles an admitted request (u->request_id) in one round trip: the usage
 * row, the reservation, the spend.  billable: the upstream did work, so
 * without a reported cost the tokens are charged at catalog prices.
 * *settled is 0 when the row had already been settled (by the reaper);
 * *charged (NULL: not wanted) what it was charged, as above. */
enum mg_err mg_store_settle(struct mg_store *s, const struct mg_usage *u, int billable,
    int *settled, unsigned long long *charged) __attribute__((warn_unused_result));
/* Settles reservations older than grace seconds at their reserved amount
 * (*n says how many), and charges whole the leases not renewed for
 * lease_timeout seconds (*n_leases); *charged is what they were charged
 * in all (1e-9 USD, rounded half up). */
enum mg_err mg_store_reap(struct mg_store *s, int grace, int lease_timeout, int *n,
    int *n_leases, unsigned long long *charged) __attribute__((warn_unused_result));

/* A lease as Postgres has it after a change. */
struct mg_lease_state {
	long long id, seq;
	char spend[MG_COST_MAX];       /* decimal USD */
};

/* Reads what a settlement batch charged, the text of its two arrays of
 * request ids and costs (USD) in whatever order Postgres answered, into
 * charged[i] (nano-USD) for the request u[i] of n; an id not in u[] is
 * skipped, and charged[i] of a request not answered is left as it was. */
void mg_store_read_charged(const char *ids, const char *costs, const struct mg_usage *const *u,
    int n, unsigned long long *charged);

/* Settles n requests admitted from leases (every u[i]->lease.lease_id >
 * 0) in one round trip (mg_settle_lease_batch): *settled, charged as
 * mg_store_settle_batch; leases (room for n) gets each live lease they
 * touched, *n_leases of them. */
enum mg_err mg_store_settle_lease_batch(struct mg_store *s, const struct mg_usage *const *u,
    const int *billable, int n, int *settled, unsigned long long *charged,
    struct mg_lease_state *leases, int *n_leases) __attribute__((warn_unused_result));

/* Renews the leases ids[0..n-1]; live[i] is 1 for those still live, 0
 * for those reaped. */
enum mg_err mg_store_lease_renew(struct mg_store *s, const long long *ids, int n, int *live)
	__attribute__((warn_unused_result));

/* The count of changes to what admission answers (projects, keys,
 * models; see sql/016_admission_changes.sql) into *n (-1 on failure). */
enum mg_err mg_store_admission_changes(struct mg_store *s, long long *n)
    __attribute__((warn_unused_result));

/* Releases a lease whose requests are all settled, giving back the
 * requests and tokens its process did not use (-1: none); *released is 0
 * when it was not live, or had changed since seq. */
enum mg_err mg_store_lease_release(struct mg_store *s, long long id, long long seq,
    long long requests, long long tokens, int *released) __attribute__((warn_unused_result));
/* *claimed = 1 when this caller should refresh the catalog now. */
enum mg_err mg_store_catalog_claim(struct mg_store *s, int interval, int *claimed)
	__attribute__((warn_unused_result));
/* Replaces the catalog of the upstreams synced with a JSON array, keeping
 * only those named in upstreams (Postgres array texts; see
 * mg_catalog_replace). */
enum mg_err mg_store_catalog_replace(struct mg_store *s, const char *models_json,
    const char *upstreams, const char *synced, int *n)
	__attribute__((warn_unused_result));
/* The project's /v1/models list from the catalog (*list NULL when the
 * catalog is empty) and its allowed models as a JSON array; both
 * malloc'd.  MG_ERR_AUTH when the project does not exist. */
enum mg_err mg_store_model_list(struct mg_store *s, long long project_id, char **list,
    char **allowed) __attribute__((warn_unused_result));
/* MG_OK when Postgres answers a trivial query. */
enum mg_err mg_store_ping(struct mg_store *s) __attribute__((warn_unused_result));
/* The last Postgres error text seen by this thread (for logs), or "". */
const char *mg_store_last_error(void);

/* Makes the usage partitions of this month and the next two where
 * missing (mg_usage_partitions); *made says how many. */
enum mg_err mg_store_usage_partitions(struct mg_store *s, int *made)
	__attribute__((warn_unused_result));

/* Folds the usage quarters behind the compaction frontier into the
 * coarser rollups (mg_rollup_compact); *folded is 1 when the frontier
 * moved. */
enum mg_err mg_store_rollup_compact(struct mg_store *s, int *folded)
	__attribute__((warn_unused_result));

/* A usage row whose generation is to be looked up (mg_recon_claim). */
struct mg_recon_row {
	char request_id[64];
	char created_at[64];           /* as Postgres wrote it: the row's key */
	char upstream_id[128];
	int tries;                     /* lookups that found nothing so far */
};
/* Leases up to max rows due for a lookup for lease seconds; *rows
 * (malloc'd, *n of them) is NULL when there is none. */
enum mg_err mg_store_recon_claim(struct mg_store *s, int max, int lease,
    struct mg_recon_row **rows, int *n) __attribute__((warn_unused_result));
/* The upstream billed billed (USD, decimal text) for the row's
 * generation: confirmed or adjusted (mg_recon_apply); the row's state
 * afterwards goes to state ("" when the row is gone), the adjustment made
 * to *adjustment (1e-9 USD rounded half away from zero, negative when the
 * charge went down; 0 when none was made). */
enum mg_err mg_store_recon_apply(struct mg_store *s, const struct mg_recon_row *w,
    const char *billed, char *state, size_t len, long long *adjustment)
	__attribute__((warn_unused_result));
/* The reconciled-through watermark (mg_recon_watermark) in Unix seconds,
 * rounded down: the time it was read when no row is waiting. */
enum mg_err mg_store_recon_watermark(struct mg_store *s, long long *unix_seconds)
	__attribute__((warn_unused_result));
/* The upstream did not know the generation yet (mg_recon_retry). */
enum mg_err mg_store_recon_retry(struct mg_store *s, const struct mg_recon_row *w, char *state,
    size_t len) __attribute__((warn_unused_result));
/* Keeps the generation ids gens[i] of the pending usage rows of the
 * requests ids[i] (mg_recon_note_ids); *kept says how many. */
enum mg_err mg_store_recon_note_ids(struct mg_store *s, const char *const *ids,
    const char *const *gens, int n, int *kept) __attribute__((warn_unused_result));
/* Leases the oldest UTC day due for its close, after seconds past its
 * end, for lease seconds (mg_recon_close_claim): its date (YYYY-MM-DD)
 * into day (len bytes), "" when none is due or another process has it. */
enum mg_err mg_store_recon_close_claim(struct mg_store *s, int after, int lease, char *day,
    size_t len) __attribute__((warn_unused_result));
/* Records the close of day (mg_recon_close_record): activity is a JSON
 * array of {"model", "requests", "usage"}, credits the account's all-time
 * usage or NULL.  The close as JSON in *json (the caller frees it). */
enum mg_err mg_store_recon_close_record(struct mg_store *s, const char *day,
    const char *activity, const char *credits, char **json)
    __attribute__((warn_unused_result));
/* The upstream has no per-generation API: every row waiting becomes
 * unsupported; *n says how many. */
enum mg_err mg_store_recon_unsupported(struct mg_store *s, long long *n)
	__attribute__((warn_unused_result));
/* Schedules the rows settlement queued for a lookup (mg_recon_dequeue);
 * *n says how many. */
enum mg_err mg_store_recon_dequeue(struct mg_store *s, long long *n)
	__attribute__((warn_unused_result));

/* Who a key lets read usage (mg_authenticate_reader): an admin key, or a
 * project key and its project. */
struct mg_reader {
	int admin;
	char project[72];              /* "" for an admin key */
	char key_prefix[16];
};
/* MG_ERR_AUTH for an unknown or revoked key. */
enum mg_err mg_store_auth_reader(struct mg_store *s, const char *key_hash_hex,
    struct mg_reader *out) __attribute__((warn_unused_result));

struct mg_report_call;
/* Runs a report's call (report.h); *json is its answer (malloc'd).
 * MG_ERR_INVALID for bad input, its message in mg_store_last_error(). */
enum mg_err mg_store_report(struct mg_store *s, const struct mg_report_call *c, char **json)
	__attribute__((warn_unused_result));

#endif
