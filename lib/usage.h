#ifndef MG_USAGE_H
#define MG_USAGE_H

#include <stddef.h>

#include "err.h"
#include "jscan.h"
#include "router.h"

#define MG_REQUEST_ID_LEN 28  /* "req_" + 24 hex */
#define MG_COST_MAX 48

/* The most upstream calls a usage row records. */
#define MG_USAGE_ATTEMPTS_MAX 6

/* One upstream call of a request. */
struct mg_usage_attempt {
	const char *upstream;         /* its name (the configuration's) */
	char model[MG_MODEL_ID_MAX];  /* the model, as the client names it */
	int status;                   /* the HTTP status it answered, 0: none */
	const char *error;            /* static: "connect", "timeout", "status",
	                               * "broken" or NULL */
	long latency_ms;
};

/* How a request was admitted from a lease (quota.admission = "lease"):
 * what its usage row needs that admission in Postgres stores in the
 * pending row.  lease_id 0: it was admitted in Postgres. */
struct mg_lease_ticket {
	long long lease_id;
	long long reserved_pico;       /* its reservation, in 1e-12 USD */
	long long reserved_tokens;     /* prompt estimate + output reserved */
	long long prompt_estimate;
	long long admitted_us;         /* CLOCK_REALTIME, in microseconds */
	int tight;                     /* lent its own share only: its settlement
	                                * gives back its whole reservation */
	char reserved[MG_COST_MAX];    /* its reservation, decimal USD */
	char prompt_price[MG_COST_MAX];     /* the prices it was admitted */
	char completion_price[MG_COST_MAX]; /* at, decimal USD per token */
};

/* One usage row: what a request cost and how it ended. */
struct mg_usage {
	char request_id[MG_REQUEST_ID_LEN + 1];
	long long project_id;
	long long key_id;
	char model[MG_MODEL_ID_MAX];  /* as the client asked for it */
	const char *endpoint;         /* "chat.completions" | "embeddings" */
	int stream;
	int status;                   /* HTTP status returned to the client */
	const char *error_type;       /* static text, NULL on success */
	long long prompt_tokens;      /* -1: unknown */
	long long completion_tokens;  /* -1: unknown */
	long long total_tokens;       /* -1: unknown */
	char cost[MG_COST_MAX];       /* exact decimal USD, "" if unknown */
	const char *cost_source;      /* "upstream" or NULL */
	char upstream_id[128];        /* the upstream's response id (gen-…) */
	char provider[64];            /* OpenRouter's "provider", if any */
	long latency_ms;
	long long ttft_ms;            /* streams: first event relayed, -1 */
	const char *upstream;         /* the upstream that served it (or was
	                               * called last), NULL: none */
	int n_attempts;
	struct mg_usage_attempt attempts[MG_USAGE_ATTEMPTS_MAX];
	int n_cands;                  /* the calls its plan could make, 1 when
	                               * they are one upstream and model (its
	                               * retries): charged at the admission's
	                               * prices */
	int no_recon;                 /* its upstream is not the one generations
	                               * are looked up at */
	char served_prompt_price[MG_COST_MAX];     /* the prices of the upstream */
	char served_completion_price[MG_COST_MAX]; /* that served, "" unknown */
	int served_config_prices;     /* 1: those prices win over the catalog's */
	char served_model[MG_MODEL_ID_MAX]; /* the model that served, "" none */
	int check;                    /* look the generation's bill up even if the
	                               * answer carried a cost (a cut stream,
	                               * reconcile.verify = "all") */
	struct mg_lease_ticket lease; /* admitted from a lease: how */
};

void mg_usage_init(struct mg_usage *u);
/* Takes id, provider and usage{prompt, completion, total tokens, cost}
 * from len bytes of an upstream answer (a completion, an embeddings list
 * or a stream chunk), read in place: the one reader of an answer's usage.
 * Members absent from it leave u as it was; a member named twice counts
 * with its last value.  MG_ERR_JSON, u unchanged, when the text is not a
 * JSON object. */
enum mg_err mg_usage_from_text(struct mg_usage *u, const char *text, size_t len)
	__attribute__((warn_unused_result));

/* The caller's share of mg_usage_scan's walk through an object. */
struct mg_usage_walk {
	/* called at the value of each member other than id, provider and
	 * usage, which it must read whole (or make the scanner fail) */
	void (*member)(void *arg, struct mg_jscan *s, const struct mg_jscan_value *name);
	void *arg;
	int usage;        /* set: a usage member that is not null was there */
};
/* mg_usage_from_text, reading the rest of the object through walk (may
 * be NULL) in the same pass. */
enum mg_err mg_usage_scan(struct mg_usage *u, const char *text, size_t len,
    struct mg_usage_walk *walk) __attribute__((warn_unused_result));

#endif
