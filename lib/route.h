#ifndef MG_ROUTE_H
#define MG_ROUTE_H

#include <stddef.h>

#include "buf.h"
#include "conf.h"
#include "router.h"

/* Routing by model string: which upstream serves a model, what model
 * string it is sent, the ordered candidates of a request with their
 * fallbacks, and each upstream's health in this process.
 *
 * A pattern is "*" (any model), a prefix ending in '*' (such as
 * "openai/" and a star) or an exact model id.  The first upstream (in the list's order) with a
 * matching pattern serves a model. */

/* The most upstream calls a request may make (routing.max_attempts). */
#define MG_ROUTE_ATTEMPTS_MAX 6

/* 1 when p is a pattern: non-empty printable text, '*' only at its end. */
int mg_route_pattern_valid(const char *p);
/* 1 when pattern p matches model. */
int mg_route_pattern_match(const char *p, const char *model);
/* 1 when every model b matches is matched by a as well (a shadows b). */
int mg_route_pattern_covers(const char *a, const char *b);

/* The upstream (index into c->ups) that serves model, -1 when none
 * does; *pattern (unless NULL) the index of the pattern that matched. */
int mg_route_find(const struct mg_conf *c, const char *model, int *pattern);

/* The model string upstream up is sent for model: model itself, or
 * without the prefix of up's first matching pattern when up strips it.
 * Written into out (size bytes; a model is shorter than MG_MODEL_ID_MAX). */
void mg_route_model_for(const struct mg_conf *c, int up, const char *model, char *out,
    size_t size);

/* One upstream call a request may make. */
struct mg_route_candidate {
	int upstream;                     /* index into c->ups */
	char model[MG_MODEL_ID_MAX];      /* the model, as the client names it */
	char sent[MG_MODEL_ID_MAX];       /* the model string the upstream gets */
};

/* The calls a request may make, in order: for each of its n models (the
 * request's model, then those of its "models" list), the upstream that
 * serves it (once, then its retries), then each of that upstream's
 * fallbacks (with their retries); a pair of upstream and model already
 * planned is not planned again; at most max.  Returns how many; 0 when
 * no upstream serves the first model. */
int mg_route_plan(const struct mg_conf *c, const char *const *models, int n,
    struct mg_route_candidate *out, int max);
/* 1 when the n calls of a plan are one upstream and model (its retries
 * at most): whichever serves, it is priced as the first. */
int mg_route_plan_single(const struct mg_route_candidate *c, int n);

/* --- health: this process's view of each upstream ---------------------- */

/* What an upstream call ended with, for health and metrics. */
enum mg_route_outcome {
	MG_ROUTE_OK = 0,       /* an answer that is not a failure of the upstream */
	MG_ROUTE_CONNECT,      /* no connection */
	MG_ROUTE_TIMEOUT,      /* no answer in time */
	MG_ROUTE_STATUS,       /* 429 or 5xx before the first byte */
	MG_ROUTE_BROKEN,       /* a broken answer */
	MG_ROUTE__COUNT
};

/* The outcome name used in metrics and usage rows ("ok", "connect", ...). */
const char *mg_route_outcome_name(enum mg_route_outcome o);

/* Clears every upstream's health (at start, and for tests). */
void mg_route_health_reset(void);
/* 1 when upstream up may be called at now_ms (CLOCK_MONOTONIC ms): it is
 * not cooling down.  Else 0, *wait_ms the rest of its cooldown.
 * Thread-safe. */
int mg_route_available(int up, long long now_ms, long long *wait_ms);
/* Counts a call of up that ended with o: success clears its failures;
 * a failure counts, and the failures-th in a row starts a cooldown of
 * cooldown_s seconds.  An upstream whose cooldown has passed is tried
 * again: one more failure starts the next cooldown.  Thread-safe. */
void mg_route_report(int up, enum mg_route_outcome o, long long now_ms, int failures,
    int cooldown_s);

/* An upstream's state as /metrics and /healthz show it. */
struct mg_route_health {
	int cooling;                      /* 1: skipped now */
	long long cooldown_left_ms;       /* its rest, 0 when not cooling */
	long long failures;               /* failed calls in a row */
	unsigned long long calls[MG_ROUTE__COUNT]; /* calls by outcome, this process */
	unsigned long long cooldowns;     /* cooldowns started, this process */
};
void mg_route_health(int up, long long now_ms, struct mg_route_health *h);

/* Appends the upstreams' state in this process to out, in the Prometheus
 * text format: modelgate_upstream_up, _failures and _cooldown_seconds
 * (the calls and cooldowns are the host's, in metrics.c).  MG_ERR_TOO_BIG
 * past out's cap. */
enum mg_err mg_route_metrics(const struct mg_conf *c, struct mg_buf *out)
	__attribute__((warn_unused_result));
/* Appends "upstreams":{name:{state, failures, retry_in_ms}, ...} (a
 * member of a JSON object) to out. */
enum mg_err mg_route_health_json(const struct mg_conf *c, struct mg_buf *out)
	__attribute__((warn_unused_result));

/* The time now, CLOCK_MONOTONIC milliseconds. */
long long mg_route_now_ms(void);

#endif
