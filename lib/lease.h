#ifndef MG_LEASE_H
#define MG_LEASE_H

#include "store.h"

/* A responder process's admission leases (quota.admission = "lease"):
 * the bookkeeping of the slices it borrowed (see sql/015_leases.sql),
 * without any I/O.  The ledger asks Postgres; this decides what can be
 * admitted here and what to ask for.
 *
 * What a key and model were last admitted with (project, limits, prices)
 * is kept while it is in use: a request of that key and model is admitted
 * here from its project's lease when the lease has the request, the
 * tokens and the spend it needs.  Otherwise the ledger sends it to
 * Postgres as a lease element, which decides it as a request and, when it
 * is admitted, lends a new slice that covers it at least.  A kept answer
 * is used only while Postgres's count of admission changes (see
 * sql/016_admission_changes.sql), checked at least every
 * MG_LEASE_CHECK_MS, is the one it was asked under, and the last check
 * was sent less than MG_LEASE_TMPL_MS ago: a key revoked, a limit, cap or
 * price changed binds here within that.
 *
 * Money is counted in 1e-12 USD: reservations rounded up, what a lease
 * holds rounded down, so that rounding never lends more than Postgres
 * holds.  All functions are thread-safe. */
struct mg_leases;

#define MG_LEASE_TMPL_MS   1000  /* answers are used this long after a check */
#define MG_LEASE_CHECK_MS  250   /* which comes this often while in use */
#define MG_LEASE_ASK_MS    250   /* a refill not answered is asked again */
#define MG_LEASE_IDLE_MS   5000  /* a lease unused this long is given back */
#define MG_LEASE_SLICE_MS  2000  /* a slice holds this long of traffic, */
#define MG_LEASE_WANT_MIN  16    /* requests a slice asks for at least, */
#define MG_LEASE_WANT_MAX  4096  /* and at most */

/* holder names the process in the leases table (copied).  NULL on
 * allocation failure. */
struct mg_leases *mg_leases_new(const char *holder);
void mg_leases_free(struct mg_leases *ls);

/* Admits q here if it can (1, out filled as Postgres would, with
 * out->ticket saying how; 2 when, besides, the lease's slice runs low and
 * a refill is due: see mg_leases_refresh_due), at now_ms
 * (CLOCK_MONOTONIC); else 0, and q's lease fields are set for a lease
 * element (spend is written into spend, of len bytes, which q then points
 * to).  q->cands must name one plan per model (the reservation's prices
 * are the plan's); its conf and fallback prices must outlive ls (a
 * refill repeats them). */
int mg_leases_admit(struct mg_leases *ls, struct mg_admit_req *q, struct mg_admission *out,
    long long now_ms, char *spend, size_t len);

/* Applies what Postgres answered to the lease elements of one admission
 * batch, q[i] and out[i] of n (q[i] NULL: not a lease element, left out),
 * any outcome: when admitted, keeps the key and model's answer and the
 * slice lent, and takes the request out of it (out[i]->ticket filled).
 * rc[i] is 0, or -1 when the answer could not be read (out[i] is then a
 * strict admission: settled as one, its ticket empty, which the pending
 * row it lacks makes a no-op for the reaper; see the ledger).  All at
 * once, so that no admission here sees the lease between two of them;
 * the ledger applies each batch's before the next batch is sent: Postgres
 * answers a lease's elements with its holding after each, and one applied
 * after a later one's would leave the slice counting that later share
 * twice. */
void mg_leases_granted_batch(struct mg_leases *ls, const struct mg_admit_req *const *q,
    struct mg_admission *const *out, int *rc, int n, long long now_ms);

/* A refill: a lease element of no request (q->lease_refresh), made of
 * the last request of a key and model that went to Postgres, and the
 * storage q points into. */
struct mg_lease_refresh {
	struct mg_admit_req q;
	struct mg_admission out;
	char key[68];
	char model[MG_MODEL_ID_MAX];
	char endpoint[32];
	char spend[MG_COST_MAX];
	struct mg_route_candidate cands[MG_ROUTE_ATTEMPTS_MAX];
};

/* The refills due at now_ms, up to max of them into r; their count.
 * Due: one of each lease, by a key and model admitted here in the last
 * MG_LEASE_IDLE_MS whose answer is current, whose slice has less than
 * half of MG_LEASE_SLICE_MS of admissions left; it asks for that much,
 * so that a request in use waits for Postgres only when its
 * project is near a limit.  One not answered (mg_leases_granted_batch) is
 * due again after MG_LEASE_ASK_MS.  Refused, the key and model's answer is
 * dropped (unless only the buckets are short now): its next request goes
 * to Postgres. */
int mg_leases_refresh_due(struct mg_leases *ls, long long now_ms, struct mg_lease_refresh *r,
    int max);

/* Postgres's count of admission changes was n in a check sent at sent_ms:
 * the answers asked under another count are not used again, and those
 * asked under n are used until sent_ms + MG_LEASE_TMPL_MS. */
void mg_leases_changes(struct mg_leases *ls, long long n, long long sent_ms);

/* 1 when a key and model is in use (mg_leases_in_use) and no check was
 * sent in the last MG_LEASE_CHECK_MS before now_ms, else 0. */
int mg_leases_check_due(struct mg_leases *ls, long long now_ms);

/* 1 when a key and model was admitted here in the last MG_LEASE_IDLE_MS
 * before now_ms (a refill or a check may come due), else 0. */
int mg_leases_in_use(struct mg_leases *ls, long long now_ms);

/* A settlement of a request admitted from a lease was written (or found
 * written): the lease no longer holds its reservation, and the tokens it
 * did not use go back to the lease's slice.  Call it after
 * mg_leases_update with what that settlement returned. */
void mg_leases_settled(struct mg_leases *ls, const struct mg_usage *u, int billable);

/* A lease as Postgres has it after a settlement: kept if newer. */
void mg_leases_update(struct mg_leases *ls, const struct mg_lease_state *st);

/* What the ledger's thread does next, at now_ms.  *release (NULL: none)
 * gets a lease to give back: idle, nothing of it unsettled; it is
 * detached (no admission uses it) until mg_leases_released.  renew gets
 * up to max lease ids to renew when lease_timeout_ms / 3 has passed since
 * the last renewal (*n_renew of them, 0 otherwise).  Key and model
 * answers no longer current, or not in use, are dropped. */
struct mg_lease_release {
	long long id, seq;
	long long requests, tokens;  /* -1: no such limit */
};
int mg_leases_due(struct mg_leases *ls, long long now_ms, long long lease_timeout_ms,
    struct mg_lease_release *release, long long *renew, int max, int *n_renew);

/* The release of a lease ended: released, it is forgotten; not (it had
 * changed meanwhile: a lease element lent more), it is used again. */
void mg_leases_released(struct mg_leases *ls, long long id, int released);

/* down 1: Postgres did not answer a call; nothing is admitted here until
 * it answers one again (down 0), so that an outage fails closed at once
 * rather than when the key and model answers expire. */
void mg_leases_suspend(struct mg_leases *ls, int down);

/* Leases not live any more (reaped): nothing more is admitted from them. */
void mg_leases_dead(struct mg_leases *ls, long long id);

/* Every lease with nothing unsettled, for a release at exit: up to max
 * into out, each detached; their count. */
int mg_leases_drain(struct mg_leases *ls, struct mg_lease_release *out, int max);

#endif
