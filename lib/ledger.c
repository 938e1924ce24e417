/* ledger.c -- The accounting path of a responder process: admissions gathered into
 * batches while the previous one is in Postgres, settlements queued and
 * sent from a background thread.  Called by the gateway. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unistd.h>
#ifdef HAVE_MALLOC_TRIM
#include <malloc.h>
#endif

#include "clock.h"
#include "conf.h"
#include "lease.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "text.h"

#define ADMIT_BATCH_MAX   64     /* admissions in one statement */
#define SETTLE_BATCH_MAX  1024   /* settlements in one statement: with 100
                                  * busy projects, 1024 rather than 256
                                  * cost Postgres 10 us a request less */
#define SETTLE_QUEUE_MAX  10000  /* beyond, callers settle themselves */
#define SETTLE_GATHER_MS  10     /* a settlement waits this long for others, */
#define LEASE_GATHER_MS   25     /* in lease mode, where no reservation waits
                                  * on it but a tight one's (and strict
                                  * fallbacks'): those get SETTLE_GATHER_MS; */
#define LEASE_GATHER_BUSY 32     /* with this many queued by then, it waits */
#define LEASE_GATHER_MAX_MS 100  /* up to this long for a full batch */
#define LEASE_UPKEEP_MS   500    /* leases are looked at this often */
#define LEASE_RETRY_MS    1000   /* a lease settlement not written is retried */
#define LEASE_RENEW_MAX   4096   /* leases renewed in one statement */
#define REFRESH_TICK_MS   100    /* the refresher looks this often, */
#define REFRESH_MAX       128    /* and sends at most this many at once */

/* A request waiting for its admission, one of a thread's (a request's
 * thread has one, the refresher many); lives on its thread.  Each thread
 * sleeps on its own condition, so that a batch's end wakes the threads of
 * that batch and the next leader, not every waiting thread. */
struct waiter {
	const struct mg_admit_req *q;
	struct mg_admission *out;
	enum mg_err rc;
	int granted;                   /* its rc of mg_leases_granted_batch */
	pthread_cond_t *wake;          /* its thread's */
	int *left;                     /* its thread's waiters not answered */
	struct waiter *next;
};

/* A settlement, or (note) only the generation id of a request still
 * running, kept so that it can be reconciled if its responder dies. */
struct settlement {
	struct mg_usage u;
	char project[sizeof(((struct mg_auth *)0)->project)]; /* its name, for the metrics */
	int billable;
	int note;
	int keep;                      /* not written: to be retried */
	long long retry_ms;            /* when (CLOCK_MONOTONIC) */
	struct settlement *next;
};

struct mg_ledger {
	struct mg_store *store;
	pthread_mutex_t lock;

	struct waiter *waiting, **waiting_tail;
	int leading;                   /* a thread has a batch in Postgres */

	pthread_cond_t queued;         /* a settlement was queued, or stop */
	struct settlement *queue, **queue_tail;
	int queue_len;
	int urgent;                    /* queued ones a reservation waits on */
	int stopping;
	pthread_t settler;
	int settler_running;

	struct mg_leases *leases;      /* quota.admission = "lease", else NULL */
	pthread_cond_t refresh;        /* a lease runs low, or stop */
	int refresh_wanted;
	pthread_t refresher;
	int refresher_running;
	long long lease_timeout_ms;
	struct settlement *retry;      /* lease settlements to write again */
	int retry_len;
	long long next_upkeep_ms;
	int written;                   /* batches written since the last trim */
};

static long long
now_ms(void)
{
	struct timespec ts;

	mg_clock_now(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Admits one batch (the waiters from first on, n of them) in Postgres.
 * Called without the lock; the answers go into the waiters' own out. */
static void
admit_batch(struct mg_ledger *l, struct waiter *first, int n)
{
	const struct mg_admit_req *q[ADMIT_BATCH_MAX] = { NULL };
	struct mg_admission *out[ADMIT_BATCH_MAX] = { NULL };
	struct waiter *w;
	enum mg_err rc;
	int i;

	mg_metrics_observe(MG_H_ADMIT_BATCH, (uint64_t)n);
	if (n == 1) {
		first->rc = mg_store_admit(l->store, first->q, first->out);
		return;
	}
	for (i = 0, w = first; i < n; i++, w = w->next) {
		q[i] = w->q;
		out[i] = w->out;
	}
	rc = mg_store_admit_batch(l->store, q, n, out);
	if (rc == MG_ERR_DB) {
		/* one request Postgres refuses (e.g. text it cannot store) must
		 * not fail the others: admit each on its own */
		mg_log(MG_LOG_WARN, NULL, "admission batch of %d failed (%s); admitting one by one",
		    n, mg_store_last_error());
		for (i = 0, w = first; i < n; i++, w = w->next)
			w->rc = mg_store_admit(l->store, w->q, w->out);
		return;
	}
	for (i = 0, w = first; i < n; i++, w = w->next)
		w->rc = rc;
}

/* Applies what a batch's lease elements were lent, in one step and before
 * the next batch is sent (see mg_leases_granted_batch); run by the batch's
 * leader, without the lock. */
static void
apply_grants(struct mg_ledger *l, struct waiter *first, int n)
{
	const struct mg_admit_req *q[ADMIT_BATCH_MAX];
	struct mg_admission *out[ADMIT_BATCH_MAX];
	int rc[ADMIT_BATCH_MAX];
	struct waiter *w;
	int i;

	for (i = 0, w = first; i < n; i++, w = w->next) {
		q[i] = w->q->lease_holder != NULL && w->rc == MG_OK ? w->q : NULL;
		out[i] = w->out;
		rc[i] = 0;
	}
	mg_leases_granted_batch(l->leases, q, out, rc, n, now_ms());
	for (i = 0, w = first; i < n; i++, w = w->next)
		w->granted = rc[i];
}

/* Marks a waiter answered and wakes its thread when that was its last
 * (not needed for the caller's own, which is awake).  Called with the lock
 * held. */
static void
answer(struct waiter *w, const pthread_cond_t *mine)
{
	if (--*w->left == 0 && w->wake != mine)
		pthread_cond_signal(w->wake);
}

static enum mg_err admit_in_postgres(struct mg_ledger *l, const struct mg_admit_req *q,
    struct mg_admission *out, int *granted);
static void admit_group(struct mg_ledger *l, struct waiter *ws, int n);

/* Lease mode: whether Postgres answered the last call (see
 * mg_leases_suspend). */
static void
answered(struct mg_ledger *l, enum mg_err rc)
{
	if (l->leases != NULL && (rc == MG_OK || rc == MG_ERR_DB_DOWN))
		mg_leases_suspend(l->leases, rc == MG_ERR_DB_DOWN);
}

/* Has the refresher look now rather than at its next tick. */
static void
wake_refresher(struct mg_ledger *l)
{
	pthread_mutex_lock(&l->lock);
	if (!l->refresh_wanted) {
		l->refresh_wanted = 1;
		pthread_cond_signal(&l->refresh);
	}
	pthread_mutex_unlock(&l->lock);
}

enum mg_err
mg_ledger_admit(struct mg_ledger *l, const struct mg_admit_req *q, struct mg_admission *out)
{
	struct mg_admit_req lq;
	char spend[MG_COST_MAX];
	enum mg_err rc;
	int granted = 0;

	if (l->leases == NULL)
		return admit_in_postgres(l, q, out, &granted);
	lq = *q;
	switch (mg_leases_admit(l->leases, &lq, out, now_ms(), spend, sizeof(spend))) {
	case 2:
		/* its slice runs low: refilled before a request waits for it */
		wake_refresher(l);
		/* FALLTHROUGH */
	case 1:
		mg_metrics_count(MG_M_LEASE_ADMITS, 1);
		return MG_OK;
	default:
		break;
	}
	/* the leader of its batch applied what Postgres lent (granted) */
	rc = admit_in_postgres(l, &lq, out, &granted);
	answered(l, rc);
	if (lq.lease_holder != NULL && rc == MG_OK) {
		/* an answer kept, not yet checked: the refresher checks now */
		if (mg_leases_check_due(l->leases, now_ms()))
			wake_refresher(l);
		if (granted != 0)
			mg_log(MG_LOG_WARN, q->request_id, "lease %lld not counted here (out of "
			    "memory?): left to the reaper", out->lease_id);
	}
	return rc;
}

/* Admits q in Postgres, in a batch with those that come meanwhile; in
 * lease mode, *granted is what applying a lease element's answer gave
 * (mg_leases_granted_batch). */
static enum mg_err
admit_in_postgres(struct mg_ledger *l, const struct mg_admit_req *q, struct mg_admission *out,
    int *granted)
{
	struct waiter me;

	memset(&me, 0, sizeof(me));
	me.q = q;
	me.out = out;
	admit_group(l, &me, 1);
	*granted = me.granted;
	return me.rc;
}

/* Admits the n waiters ws (q and out set) in Postgres, in batches with
 * those that come meanwhile, and returns when each is answered (its rc,
 * and granted in lease mode). */
static void
admit_group(struct mg_ledger *l, struct waiter *ws, int n)
{
	pthread_cond_t wake;
	int i, left = n;

	pthread_cond_init(&wake, NULL);
	pthread_mutex_lock(&l->lock);
	for (i = 0; i < n; i++) {
		ws[i].rc = MG_OK;
		ws[i].granted = 0;
		ws[i].wake = &wake;
		ws[i].left = &left;
		ws[i].next = NULL;
		*l->waiting_tail = &ws[i];
		l->waiting_tail = &ws[i].next;
	}
	while (left > 0) {
		struct waiter *first, *w;
		enum mg_err rc;
		int k = 0;

		if (l->leading) {
			pthread_cond_wait(&wake, &l->lock);
			continue;
		}
		/* lead the next batch: everyone waiting, up to the maximum */
		first = l->waiting;
		for (w = first; w != NULL && k < ADMIT_BATCH_MAX; w = w->next)
			k++;
		l->waiting = w;
		if (w == NULL)
			l->waiting_tail = &l->waiting;
		l->leading = 1;
		pthread_mutex_unlock(&l->lock);

		admit_batch(l, first, k);
		if (l->leases != NULL)
			apply_grants(l, first, k);

		pthread_mutex_lock(&l->lock);
		rc = first->rc;
		for (w = first; k > 0; k--) {
			struct waiter *next = w->next;

			answer(w, &wake);
			w = next;
		}
		if (rc == MG_ERR_DB_DOWN) {
			/* those who queued meanwhile have waited as long: answer
			 * them now rather than after one more timeout each */
			for (w = l->waiting; w != NULL; w = w->next) {
				w->rc = MG_ERR_DB_DOWN;
				answer(w, &wake);
			}
			l->waiting = NULL;
			l->waiting_tail = &l->waiting;
		}
		l->leading = 0;
		/* the first of those who queued meanwhile leads the next batch */
		if (l->waiting != NULL && l->waiting->wake != &wake)
			pthread_cond_signal(l->waiting->wake);
	}
	pthread_mutex_unlock(&l->lock);
	pthread_cond_destroy(&wake);
}

static void
settle_one(struct mg_ledger *l, const struct mg_usage *u, const char *project, int billable)
{
	unsigned long long charged = 0;
	enum mg_err rc;
	int settled = 0;

	rc = mg_store_settle(l->store, u, billable, &settled, &charged);
	if (rc != MG_OK) {
		mg_metrics_count(MG_M_SETTLE_LOST, 1);
		mg_log(MG_LOG_ERROR, u->request_id, "not settled: %s: %s; the reaper will charge "
		    "its reservation", mg_strerror(rc), mg_store_last_error());
	} else if (!settled) {
		mg_log(MG_LOG_WARN, u->request_id, "already settled by the reaper at its reserved "
		    "amount (quota.reap_after too short?)");
	} else {
		mg_metrics_charge(u->model, project, charged);
	}
}

/* Keeps the generation ids of the notes among the n entries from first. */
static void
note_ids(struct mg_ledger *l, struct settlement *first, int n)
{
	const char *ids[SETTLE_BATCH_MAX], *gens[SETTLE_BATCH_MAX];
	struct settlement *s;
	int i, k = 0, kept = 0;

	for (i = 0, s = first; i < n; i++, s = s->next)
		if (s->note) {
			ids[k] = s->u.request_id;
			gens[k++] = s->u.upstream_id;
		}
	if (k > 0 && mg_store_recon_note_ids(l->store, ids, gens, k, &kept) != MG_OK)
		mg_log(MG_LOG_WARN, NULL, "%d generation ids not kept early: %s", k,
		    mg_store_last_error());
}

/* Writes the n settlements of requests admitted from leases in s[]; those
 * not written because Postgres did not answer are marked to be kept. */
static void
settle_leased(struct mg_ledger *l, struct settlement **s, int n)
{
	/* on the heap: a request's thread calls this too, with n of 1 */
	const struct mg_usage **u = malloc((size_t)n * sizeof(*u));
	unsigned long long *charged = malloc((size_t)n * sizeof(*charged));
	int *billable = malloc((size_t)n * sizeof(*billable));
	struct mg_lease_state *st = malloc((size_t)n * sizeof(*st));
	enum mg_err rc;
	int i, settled = 0, n_st = 0;

	if (u == NULL || charged == NULL || billable == NULL || st == NULL) {
		mg_log(MG_LOG_WARN, NULL, "%d lease settlements not written yet: out of memory; "
		    "retried", n);
		for (i = 0; i < n; i++)
			s[i]->keep = 1;
		goto out;
	}
	for (i = 0; i < n; i++) {
		u[i] = &s[i]->u;
		billable[i] = s[i]->billable;
	}
	rc = mg_store_settle_lease_batch(l->store, u, billable, n, &settled, charged, st, &n_st);
	answered(l, rc);
	if (rc == MG_ERR_DB && n > 1) {
		mg_log(MG_LOG_WARN, NULL, "lease settlement batch of %d failed (%s); settling one "
		    "by one", n, mg_store_last_error());
		for (i = 0; i < n; i++)
			settle_leased(l, &s[i], 1);
		goto out;
	}
	if (rc == MG_ERR_DB) {
		/* Postgres refuses this one: its lease keeps its reservation,
		 * so the lease is never given back, and is charged whole
		 * when its process is gone */
		mg_metrics_count(MG_M_SETTLE_LOST, 1);
		mg_log(MG_LOG_ERROR, u[0]->request_id, "not settled: %s; its lease %lld holds its "
		    "reservation until the reaper charges the lease", mg_store_last_error(),
		    u[0]->lease.lease_id);
		goto out;
	}
	if (rc != MG_OK) {
		mg_log(MG_LOG_WARN, NULL, "%d lease settlements not written yet: %s: %s; retried",
		    n, mg_strerror(rc), mg_store_last_error());
		for (i = 0; i < n; i++)
			s[i]->keep = 1;
		goto out;
	}
	/* what the leases hold now first, then the reservations they no
	 * longer cover: the other way round, for a moment a lease would
	 * seem to hold both, and a request could be admitted from spend
	 * Postgres no longer lends */
	for (i = 0; i < n_st; i++)
		mg_leases_update(l->leases, &st[i]);
	for (i = 0; i < n; i++) {
		mg_leases_settled(l->leases, u[i], billable[i]);
		mg_metrics_charge(u[i]->model, s[i]->project, charged[i]);
	}
out:
	free(u);
	free(charged);
	free(billable);
	free(st);
}

static void
settle_batch(struct mg_ledger *l, struct settlement *first, int n)
{
	const struct mg_usage *u[SETTLE_BATCH_MAX] = { NULL };
	const char *project[SETTLE_BATCH_MAX] = { NULL };
	unsigned long long charged[SETTLE_BATCH_MAX];
	int billable[SETTLE_BATCH_MAX] = { 0 };
	struct settlement *leased[SETTLE_BATCH_MAX];
	struct settlement *s;
	enum mg_err rc;
	int i, m, k = 0, settled = 0;

	note_ids(l, first, n);
	for (i = 0, s = first; i < n; i++, s = s->next)
		if (!s->note && s->u.lease.lease_id > 0)
			leased[k++] = s;
	if (k > 0)
		settle_leased(l, leased, k);
	for (i = 0, m = 0, s = first; i < n; i++, s = s->next)
		if (!s->note && s->u.lease.lease_id == 0) {
			u[m] = &s->u;
			project[m] = s->project;
			billable[m++] = s->billable;
		}
	n = m;
	if (n == 0)
		return;
	if (n == 1) {
		settle_one(l, u[0], project[0], billable[0]);
		return;
	}
	rc = mg_store_settle_batch(l->store, u, billable, n, &settled, charged);
	answered(l, rc);
	if (rc == MG_ERR_DB) {
		mg_log(MG_LOG_WARN, NULL, "settlement batch of %d failed (%s); settling one by one",
		    n, mg_store_last_error());
		for (i = 0; i < n; i++)
			settle_one(l, u[i], project[i], billable[i]);
		return;
	}
	if (rc != MG_OK) {
		mg_metrics_count(MG_M_SETTLE_LOST, (uint64_t)n);
		mg_log(MG_LOG_ERROR, NULL, "%d settlements not written: %s: %s; the reaper will "
		    "charge their reservations", n, mg_strerror(rc), mg_store_last_error());
		return;
	}
	for (i = 0; i < n; i++)
		mg_metrics_charge(u[i]->model, project[i], charged[i]);
	if (settled < n)
		mg_log(MG_LOG_WARN, NULL, "%d of %d requests were already settled by the reaper at "
		    "their reserved amount (quota.reap_after too short?)", n - settled, n);
}

/* 1 when a reservation in Postgres waits on s: a request lent tight (its
 * settlement gives back what it reserved), or one admitted in Postgres
 * without a lease (a pending row). */
static int
urgent(const struct settlement *s)
{
	return !s->note && (s->u.lease.lease_id <= 0 || s->u.lease.tight);
}

/* Called with the lock held and a settlement queued: waits up to
 * SETTLE_GATHER_MS (LEASE_GATHER_MS in lease mode, until one that is
 * urgent comes) for more to join it, as one statement settling many
 * costs Postgres little more than one settling one.  The client has its
 * answer already; the request's reservation is released that much later. */
static void
gather(struct mg_ledger *l)
{
	struct timespec until, soon;
	int hurried = 0, extended = l->leases == NULL;

	mg_clock_deadline(CLOCK_MONOTONIC, l->leases != NULL ? LEASE_GATHER_MS : SETTLE_GATHER_MS,
	    &until);
	while (l->queue_len < SETTLE_BATCH_MAX && !l->stopping) {
		if (l->urgent > 0 && !hurried) {
			mg_clock_deadline(CLOCK_MONOTONIC, SETTLE_GATHER_MS, &soon);
			if (mg_clock_before(&soon, &until))
				until = soon;
			hurried = extended = 1;
		}
		if (pthread_cond_timedwait(&l->queued, &l->lock, &until) != ETIMEDOUT)
			continue;
		/* busy: fewer, fuller batches cost Postgres less; quiet: a
		 * batch's wait would only add to the others' latency */
		if (extended || l->queue_len < LEASE_GATHER_BUSY)
			break;
		mg_clock_deadline(CLOCK_MONOTONIC, LEASE_GATHER_MAX_MS - LEASE_GATHER_MS, &until);
		extended = 1;
	}
}

/* Puts back into the queue the lease settlements due for another try.
 * Called with the lock held. */
static void
requeue(struct mg_ledger *l, long long now)
{
	struct settlement **p = &l->retry;

	while (*p != NULL) {
		struct settlement *s = *p;

		if (s->retry_ms > now && !l->stopping) {
			p = &s->next;
			continue;
		}
		*p = s->next;
		l->retry_len--;
		s->keep = 0;
		s->next = NULL;
		*l->queue_tail = s;
		l->queue_tail = &s->next;
		l->queue_len++;
		l->urgent += urgent(s);
		mg_metrics_gauge(MG_G_SETTLE_QUEUE, 1);
	}
}

/* Gives back an idle lease and renews the others, when it is time.
 * Called without the lock. */
static void
lease_upkeep(struct mg_ledger *l, long long now)
{
	static long long renew[LEASE_RENEW_MAX];
	static int live[LEASE_RENEW_MAX];
	struct mg_lease_release r;
	enum mg_err rc = MG_OK;
	int n, i, released;

	/* one release a round: the thread writes settlements too */
	if (mg_leases_due(l->leases, now, l->lease_timeout_ms, &r, renew, LEASE_RENEW_MAX, &n)) {
		if (mg_store_lease_release(l->store, r.id, r.seq, r.requests, r.tokens,
		    &released) != MG_OK) {
			mg_log(MG_LOG_WARN, NULL, "lease %lld not given back: %s", r.id,
			    mg_store_last_error());
			released = 0;
		}
		mg_leases_released(l->leases, r.id, released);
	}
	if (n > 0 && (rc = mg_store_lease_renew(l->store, renew, n, live)) == MG_OK) {
		for (i = 0; i < n; i++)
			if (!live[i]) {
				mg_log(MG_LOG_WARN, NULL, "lease %lld was reaped (its renewals did not "
				    "reach Postgres for quota.lease_timeout): a new one is taken",
				    renew[i]);
				mg_leases_dead(l->leases, renew[i]);
			}
	} else if (n > 0) {
		mg_log(MG_LOG_WARN, NULL, "%d leases not renewed: %s", n, mg_store_last_error());
	}
	if (n > 0)
		answered(l, rc);
}

static void *
settler_main(void *arg)
{
	struct mg_ledger *l = arg;

	pthread_mutex_lock(&l->lock);
	for (;;) {
		struct settlement *first, *s, *next;
		int n = 0;

		if (l->leases != NULL) {
			long long now = now_ms();

			if (now >= l->next_upkeep_ms && !l->stopping) {
				l->next_upkeep_ms = now + LEASE_UPKEEP_MS;
				pthread_mutex_unlock(&l->lock);
				lease_upkeep(l, now);
				pthread_mutex_lock(&l->lock);
			}
			requeue(l, now);
			if (l->queue == NULL && !l->stopping) {
				struct timespec until;

				mg_clock_deadline(CLOCK_MONOTONIC, LEASE_UPKEEP_MS, &until);
				if (pthread_cond_timedwait(&l->queued, &l->lock, &until) == ETIMEDOUT &&
				    l->queue == NULL && l->written > 0) {
					/* quiet for a tick after writing: the batches'
					 * JSON goes back to the system (this thread's
					 * heap is the settlements'), and the buffers
					 * libpq grew for the large ones */
					l->written = 0;
					pthread_mutex_unlock(&l->lock);
					mg_store_shed(l->store);
					pthread_mutex_lock(&l->lock);
#ifdef HAVE_MALLOC_TRIM
					malloc_trim(0);
#endif
				}
				continue;
			}
		}
		while (l->queue == NULL && !l->stopping)
			pthread_cond_wait(&l->queued, &l->lock);
		if (l->queue == NULL)
			break;
		gather(l);
		first = l->queue;
		for (s = first; s != NULL && n < SETTLE_BATCH_MAX; s = s->next) {
			l->urgent -= urgent(s);
			n++;
		}
		l->queue = s;
		if (s == NULL)
			l->queue_tail = &l->queue;
		l->queue_len -= n;
		pthread_mutex_unlock(&l->lock);
		{
			int k, m = 0;

			for (k = 0, s = first; k < n; k++, s = s->next)
				m += !s->note;
			mg_metrics_gauge(MG_G_SETTLE_QUEUE, -m);
		}

		settle_batch(l, first, n);
		pthread_mutex_lock(&l->lock);
		l->written++;
		for (s = first; n > 0; n--, s = next) {
			next = s->next;
			if (s->keep && !l->stopping) {
				s->retry_ms = now_ms() + LEASE_RETRY_MS;
				s->next = l->retry;
				l->retry = s;
				l->retry_len++;
			} else {
				if (s->keep)
					mg_log(MG_LOG_ERROR, s->u.request_id, "not settled at exit: its "
					    "lease is charged whole by the reaper");
				free(s);
			}
		}
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

/* Lease mode: reads Postgres's count of admission changes, which says
 * whether the answers kept for keys and models are current
 * (mg_leases_changes).  *failing: the last check failed (said once). */
static void
check_changes(struct mg_ledger *l, int *failing)
{
	long long sent = now_ms(), n;
	enum mg_err rc = mg_store_admission_changes(l->store, &n);

	mg_metrics_count(MG_M_LEASE_CHECKS, 1);
	answered(l, rc);
	if (rc == MG_OK) {
		mg_leases_changes(l->leases, n, sent);
		*failing = 0;
	} else if (!*failing) {
		mg_log(MG_LOG_WARN, NULL, "admission changes not checked (requests of lease "
		    "mode wait for Postgres until they are): %s", mg_store_last_error());
		*failing = 1;
	}
}

/* Lease mode: checks that the key and model answers in use are current
 * every MG_LEASE_CHECK_MS, and refills the slices running low
 * (mg_leases_refresh_due) as lease elements of no request in the
 * admission queue, so that requests seldom wait for Postgres. */
static void *
refresher_main(void *arg)
{
	struct mg_ledger *l = arg;
	struct mg_lease_refresh *r = NULL;   /* REFRESH_MAX of them, while in use */
	struct waiter *ws = NULL;
	int warned = 0;                       /* out of memory, said once */
	int failing = 0;                      /* checks failing, said once */

	pthread_mutex_lock(&l->lock);
	while (!l->stopping) {
		struct timespec until;
		long long now;
		int n, i;

		if (!l->refresh_wanted) {
			mg_clock_deadline(CLOCK_MONOTONIC, REFRESH_TICK_MS, &until);
			pthread_cond_timedwait(&l->refresh, &l->lock, &until);
			if (l->stopping)
				break;
		}
		l->refresh_wanted = 0;
		pthread_mutex_unlock(&l->lock);
		now = now_ms();
		if (mg_leases_check_due(l->leases, now))
			check_changes(l, &failing);
		if (r == NULL) {
			/* the room for a tick's refreshes (about half a MiB,
			 * touched as used) is taken only while there are some */
			if (!mg_leases_in_use(l->leases, now)) {
				pthread_mutex_lock(&l->lock);
				continue;
			}
			r = calloc(REFRESH_MAX, sizeof(*r));
			ws = calloc(REFRESH_MAX, sizeof(*ws));
			if (r == NULL || ws == NULL) {
				if (!warned)
					mg_log(MG_LOG_WARN, NULL, "no room for lease refills (out "
					    "of memory): requests refill their leases themselves");
				warned = 1;
				free(r);
				free(ws);
				r = NULL;
				ws = NULL;
				pthread_mutex_lock(&l->lock);
				continue;
			}
		}
		n = mg_leases_refresh_due(l->leases, now, r, REFRESH_MAX);
		if (n > 0) {
			for (i = 0; i < n; i++) {
				memset(&ws[i], 0, sizeof(ws[i]));
				mg_clock_now(CLOCK_MONOTONIC, &r[i].q.since);
				ws[i].q = &r[i].q;
				ws[i].out = &r[i].out;
			}
			admit_group(l, ws, n);
			mg_metrics_count(MG_M_LEASE_REFRESHES, (uint64_t)n);
			answered(l, ws[n - 1].rc);
			if (ws[n - 1].rc != MG_OK)
				mg_log(MG_LOG_WARN, NULL, "%d lease refills not answered: %s", n,
				    mg_store_last_error());
		} else if (!mg_leases_in_use(l->leases, now)) {
			/* nothing in use for a while: the room goes back, and
			 * with it what the answers dropped meanwhile held (the
			 * upkeep thread's trim came when requests stopped) */
			free(r);
			free(ws);
			r = NULL;
			ws = NULL;
#ifdef HAVE_MALLOC_TRIM
			malloc_trim(0);
#endif
		}
		pthread_mutex_lock(&l->lock);
	}
	pthread_mutex_unlock(&l->lock);
	free(r);
	free(ws);
	return NULL;
}

/* Queues s for the settler thread; 0, or -1 (s not taken) when the queue
 * is full or the thread cannot run. */
static int
enqueue(struct mg_ledger *l, struct settlement *s)
{
	s->next = NULL;
	pthread_mutex_lock(&l->lock);
	if (l->settler_running && !l->stopping && l->queue_len < SETTLE_QUEUE_MAX) {
		*l->queue_tail = s;
		l->queue_tail = &s->next;
		/* wake the settler when it waits for a first one, a full
		 * batch or, in lease mode, a first urgent one */
		l->urgent += urgent(s);
		if (++l->queue_len == 1 || l->queue_len == SETTLE_BATCH_MAX ||
		    (l->urgent == 1 && urgent(s)))
			pthread_cond_signal(&l->queued);
		if (!s->note) {
			mg_metrics_count(MG_M_SETTLE_QUEUED, 1);
			mg_metrics_gauge(MG_G_SETTLE_QUEUE, 1);
		}
		pthread_mutex_unlock(&l->lock);
		return 0;
	}
	pthread_mutex_unlock(&l->lock);
	return -1;
}

void
mg_ledger_settle(struct mg_ledger *l, const struct mg_usage *u, const char *project,
    int billable)
{
	struct settlement *s = malloc(sizeof(*s));

	if (s != NULL) {
		s->u = *u;
		mg_text_copy(s->project, sizeof(s->project), project);
		s->billable = billable;
		s->note = 0;
		s->keep = 0;
		if (enqueue(l, s) == 0)
			return;
		if (u->lease.lease_id > 0) {
			/* written here and now, as the batch of one it is */
			settle_leased(l, &s, 1);
			if (s->keep)
				mg_log(MG_LOG_ERROR, u->request_id, "not settled: its lease is charged "
				    "whole by the reaper");
			free(s);
			return;
		}
		free(s);
	}
	if (u->lease.lease_id > 0) {
		mg_log(MG_LOG_ERROR, u->request_id, "not settled (out of memory): its lease is "
		    "charged whole by the reaper");
		return;
	}
	settle_one(l, u, project, billable);
}

void
mg_ledger_note_id(struct mg_ledger *l, const char *request_id, const char *upstream_id)
{
	struct settlement *s = malloc(sizeof(*s));

	if (s == NULL)
		return;   /* best effort: the settlement carries the id too */
	mg_usage_init(&s->u);
	mg_text_copy(s->u.request_id, sizeof(s->u.request_id), request_id);
	mg_text_copy(s->u.upstream_id, sizeof(s->u.upstream_id), upstream_id);
	s->project[0] = '\0';
	s->billable = 0;
	s->note = 1;
	s->keep = 0;
	if (enqueue(l, s) != 0)
		free(s);
}

struct mg_ledger *
mg_ledger_new(struct mg_store *store, const struct mg_conf *conf)
{
	struct mg_ledger *l = calloc(1, sizeof(*l));
	pthread_condattr_t attr;

	if (l == NULL)
		return NULL;
	l->store = store;
	if (conf != NULL && conf->lease) {
		char host[64], holder[128];
		struct timespec ts;

		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "?");
		host[sizeof(host) - 1] = '\0';
		clock_gettime(CLOCK_REALTIME, &ts);
		/* unique to this process: host, pid, and when it started */
		snprintf(holder, sizeof(holder), "%.63s:%ld:%lld.%09ld", host, (long)getpid(),
		    (long long)ts.tv_sec, ts.tv_nsec);
		l->leases = mg_leases_new(holder);
		if (l->leases == NULL) {
			free(l);
			return NULL;
		}
		l->lease_timeout_ms = conf->lease_timeout * 1000LL;
	}
	l->waiting_tail = &l->waiting;
	l->queue_tail = &l->queue;
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&l->queued, &attr);
	pthread_cond_init(&l->refresh, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&l->settler, NULL, settler_main, l) == 0)
		l->settler_running = 1;
	else
		mg_log(MG_LOG_WARN, NULL, "no settlement thread: requests settle before they finish");
	if (l->leases != NULL) {
		if (pthread_create(&l->refresher, NULL, refresher_main, l) == 0)
			l->refresher_running = 1;
		else
			mg_log(MG_LOG_WARN, NULL, "no lease refresher: every request is admitted "
			    "in Postgres");
	}
	return l;
}

void
mg_ledger_free(struct mg_ledger *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->lock);
	l->stopping = 1;
	pthread_cond_signal(&l->queued);
	pthread_cond_signal(&l->refresh);
	pthread_mutex_unlock(&l->lock);
	if (l->refresher_running)
		pthread_join(l->refresher, NULL);
	if (l->settler_running)
		pthread_join(l->settler, NULL);
	if (l->leases != NULL) {
		struct mg_lease_release r[64];
		int n, i, released;

		/* the leases with nothing unsettled go back; the others are
		 * charged whole by the reaper */
		while ((n = mg_leases_drain(l->leases, r, 64)) > 0)
			for (i = 0; i < n; i++) {
				if (mg_store_lease_release(l->store, r[i].id, r[i].seq, r[i].requests,
				    r[i].tokens, &released) != MG_OK)
					mg_log(MG_LOG_WARN, NULL, "lease %lld not given back at exit: %s",
					    r[i].id, mg_store_last_error());
				mg_leases_released(l->leases, r[i].id, 1);
			}
		while (l->retry != NULL) {
			struct settlement *s = l->retry;

			l->retry = s->next;
			free(s);
		}
		mg_leases_free(l->leases);
	}
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->queued);
	pthread_cond_destroy(&l->refresh);
	free(l);
}
