#ifndef MG_METRICS_H
#define MG_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"

/* The responders' counters for GET /metrics: a scoreboard file that every
 * responder process of a host maps (MAP_SHARED), one slot per process,
 * updated with relaxed C11 atomics (no lock on the request path).  A
 * scrape sums every slot.  The slot of a process that died is folded into
 * the retired slot (slot 0) when it is found, so that no sum goes back.
 *
 * The process's own slot is kept in this module (mg_metrics_attach): the
 * recording functions below are no-ops in a process without one (the
 * command line), and are thread-safe. */

/* The plain counters (one series each, or one per label value of a
 * family: see the table in metrics.c). */
enum mg_metric {
	MG_M_TOKENS_PROMPT = 0,        /* prompt tokens the upstream counted */
	MG_M_TOKENS_COMPLETION,        /* completion tokens */
	MG_M_COST_NANOUSD,             /* what settlement and the reaper charged, 1e-9 USD */
	MG_M_REFUSED_INVALID_KEY,      /* refusals, by admission outcome */
	MG_M_REFUSED_MODEL_NOT_ALLOWED,
	MG_M_REFUSED_MODEL_NOT_FOUND,
	MG_M_REFUSED_SPEND_CAP,
	MG_M_REFUSED_REQUESTS,
	MG_M_REFUSED_TOKENS,
	MG_M_REFUSED_TOKENS_TOO_MANY,
	MG_M_DB_UNAVAILABLE,           /* Postgres calls: no connection or answer */
	MG_M_DB_ERROR,                 /* Postgres calls that failed */
	MG_M_DB_POOL_WAITS,            /* calls that waited for a free connection */
	MG_M_DB_POOL_WAIT_US,          /* the time they waited, microseconds */
	MG_M_DB_SHED,                  /* idle connections closed for their large buffers */
	MG_M_SETTLE_QUEUED,            /* settlements queued for the settler thread */
	MG_M_SETTLE_LOST,              /* settlements not written (left to the reaper) */
	MG_M_LEASE_ADMITS,             /* admissions decided here, from a lease */
	MG_M_LEASE_REFRESHES,          /* refills sent (lease elements of no request) */
	MG_M_LEASE_CHECKS,             /* checks of the admission change count */
	MG_M_RECON_CONFIRMED,          /* generation lookups, by result */
	MG_M_RECON_ADJUSTED,
	MG_M_RECON_RETRIED,
	MG_M_RECON_MISSING,
	MG_M_RECON_FAILED,
	MG_M_RECON_DRIFT_UP_NANOUSD,   /* adjustments that raised a charge, 1e-9 USD */
	MG_M_RECON_DRIFT_DOWN_NANOUSD, /* adjustments that lowered one (their size) */
	MG_M__COUNT
};

/* The gauges: summed over the live processes. */
enum mg_gauge {
	MG_G_IN_FLIGHT = 0,            /* requests being served */
	MG_G_STREAMS_OPEN,             /* streams whose answer has started */
	MG_G_SETTLE_QUEUE,             /* settlements waiting in the queue */
	MG_G__COUNT
};

/* The histograms. */
enum mg_hist {
	MG_H_REQUEST_CHAT = 0,         /* whole request, microseconds */
	MG_H_REQUEST_EMBEDDINGS,
	MG_H_UPSTREAM_CHAT,            /* the upstream call, microseconds */
	MG_H_UPSTREAM_EMBEDDINGS,
	MG_H_OVERHEAD_CHAT,            /* request minus upstream, microseconds */
	MG_H_OVERHEAD_EMBEDDINGS,
	MG_H_TTFT,                     /* to the first content event, microseconds */
	MG_H_ADMIT_BATCH,              /* requests per admission batch */
	MG_H_DB_ADMIT,                 /* Postgres calls, microseconds */
	MG_H_DB_SETTLE,
	MG_H_DB_OTHER,
	MG_H__COUNT
};

/* Endpoints, for modelgate_requests_total. */
enum mg_metrics_ep {
	MG_MEP_CHAT = 0,               /* /v1/chat/completions */
	MG_MEP_EMBEDDINGS,             /* /v1/embeddings */
	MG_MEP_MODELS,                 /* /v1/models, /v1/models/{id} */
	MG_MEP_USAGE,                  /* /v1/usage…, /v1/quota */
	MG_MEP_MCP,                    /* /mcp */
	MG_MEP_DASHBOARD,              /* /dashboard/ */
	MG_MEP_HEALTH,                 /* /healthz */
	MG_MEP_METRICS,                /* /metrics */
	MG_MEP_OTHER,                  /* unknown routes, wrong methods */
	MG_MEP__COUNT
};

/* Slots of a scoreboard: slot 0 is the retired accumulator. */
#define MG_METRICS_SLOTS 256
/* Distinct models (and projects) labelled; the rest count as "other". */
#define MG_METRICS_LABELS 32
/* The longest label value kept (bytes); longer ones are cut. */
#define MG_METRICS_LABEL_MAX 200

struct mg_scoreboard;

/* Maps the scoreboard file path (created, or re-created when its layout
 * is not this build's), mode 0600.  NULL with a reason in err. */
struct mg_scoreboard *mg_scoreboard_open(const char *path, char *err, size_t errlen);
/* Unmaps (the slots stay as they are).  Accepts NULL. */
void mg_scoreboard_close(struct mg_scoreboard *sb);

/* Claims a slot for process pid started at start (its start time in
 * clock ticks since boot, as /proc/PID/stat says): a free one, else the
 * slot of a process that is gone (folded first).  The slot's index, or 0
 * when none is left (the caller then counts into the retired slot). */
int mg_scoreboard_claim(struct mg_scoreboard *sb, pid_t pid, unsigned long long start);
/* Folds slot i into the retired slot and frees it (its gauges dropped). */
void mg_scoreboard_retire(struct mg_scoreboard *sb, int i);
/* Folds the slots of processes that are gone; alive(pid, start) says
 * whether one runs (NULL: look in /proc).  The number folded. */
int mg_scoreboard_reap(struct mg_scoreboard *sb,
    int (*alive)(pid_t pid, unsigned long long start));

/* Adds to slot i (any slot: for tests and the functions below). */
void mg_scoreboard_add(struct mg_scoreboard *sb, int i, enum mg_metric m, uint64_t n);
void mg_scoreboard_upstream(struct mg_scoreboard *sb, int i, int up, int col);
void mg_scoreboard_gauge(struct mg_scoreboard *sb, int i, enum mg_gauge g, int64_t delta);
void mg_scoreboard_observe(struct mg_scoreboard *sb, int i, enum mg_hist h, uint64_t v);
void mg_scoreboard_request(struct mg_scoreboard *sb, int i, enum mg_metrics_ep ep,
    int status, int stream);
/* A call's usage for the model and project labels (either NULL: not
 * labelled). */
void mg_scoreboard_usage(struct mg_scoreboard *sb, int i, const char *model,
    const char *project, uint64_t prompt, uint64_t completion);
/* What a call was charged, in 1e-9 USD: the total, and its model and
 * project labels (either NULL: not labelled). */
void mg_scoreboard_charge(struct mg_scoreboard *sb, int i, const char *model,
    const char *project, uint64_t cost);
/* The reconciled-through watermark (Unix seconds) as last read. */
void mg_scoreboard_watermark(struct mg_scoreboard *sb, int64_t unix_seconds);

/* What a scrape shows. */
/* The upstreams counted (conf.h's MG_UPSTREAMS_MAX), and per upstream
 * its call outcomes and, last, its cooldowns. */
#define MG_METRICS_UPSTREAMS 16
#define MG_METRICS_UPSTREAM_COLS 8
#define MG_METRICS_UPSTREAM_COOLDOWN (MG_METRICS_UPSTREAM_COLS - 1)

struct mg_metrics_view {
	const char *version;           /* modelgate_build_info's */
	int per_model;                 /* show the model labels */
	int per_project;               /* show the project labels */
	int n_upstreams;               /* the configured upstreams, in the */
	const char *upstreams[MG_METRICS_UPSTREAMS]; /* order counted by */
	const char *const *outcomes;   /* mg_metrics_upstream; the names of */
	int n_outcomes;                /* its outcomes (< MG_METRICS_UPSTREAM_COLS) */
};
/* Writes the Prometheus text exposition (format 0.0.4) of the sums of
 * every slot into out.  MG_ERR_TOO_BIG past out's cap. */
enum mg_err mg_scoreboard_write(struct mg_scoreboard *sb, const struct mg_metrics_view *v,
    struct mg_buf *out) __attribute__((warn_unused_result));

/* Appends s as a label value (between the quotes): \\, \" and \n
 * escaped, other control characters and bytes that are not UTF-8 as
 * U+FFFD.  MG_ERR_TOO_BIG past out's cap. */
enum mg_err mg_metrics_label_escape(struct mg_buf *out, const char *s)
	__attribute__((warn_unused_result));

/* --- who may read them ------------------------------------------------ */

/* The most networks metrics.allow may list. */
#define MG_METRICS_ALLOW_MAX 32

/* A network of metrics.allow. */
struct mg_netmask {
	int family;                    /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int bits;                      /* prefix length */
};

/* Parses list (addresses and CIDR networks, IPv4 or IPv6, separated by
 * commas or spaces; "" for none) into nets (max of them), *n how many.
 * -1 with the entry at fault in err. */
int mg_metrics_allow_parse(const char *list, struct mg_netmask *nets, int max, int *n,
    char *err, size_t errlen) __attribute__((warn_unused_result));
/* 1 when addr (text, as REMOTE_ADDR; an IPv4 address mapped into IPv6
 * counts as IPv4) is in one of the n nets; else 0. */
int mg_metrics_allowed(const struct mg_netmask *nets, int n, const char *addr);

/* --- this process ------------------------------------------------------ */

/* Opens path and claims this process's slot (folding the slots of dead
 * processes); labels: count per model / per project.  -1 with a reason in
 * err.  Not thread-safe: call before the request threads start. */
int mg_metrics_attach(const char *path, int per_model, int per_project, char *err,
    size_t errlen) __attribute__((warn_unused_result));
/* Retires this process's slot and unmaps (at a clean exit). */
void mg_metrics_detach(void);
/* The scoreboard of this process, or NULL. */
struct mg_scoreboard *mg_metrics_scoreboard(void);

void mg_metrics_count(enum mg_metric m, uint64_t n);
/* Counts a call of upstream up (its index in the config) that ended with
 * outcome (below MG_METRICS_UPSTREAM_COLS - 1), or with
 * MG_METRICS_UPSTREAM_COOLDOWN a cooldown it started: host-wide counters,
 * summed over every process like the others. */
void mg_metrics_upstream(int up, int outcome);
void mg_metrics_gauge(enum mg_gauge g, int64_t delta);
void mg_metrics_observe(enum mg_hist h, uint64_t v);
void mg_metrics_request(enum mg_metrics_ep ep, int status, int stream);
/* A settled call's usage: tokens (negative: unknown), model and project. */
void mg_metrics_usage(const char *model, const char *project, long long prompt,
    long long completion);
/* What settlement (or, model and project NULL, the reaper) charged for a
 * call, in 1e-9 USD. */
void mg_metrics_charge(const char *model, const char *project, uint64_t cost);
void mg_metrics_watermark(int64_t unix_seconds);

#endif
