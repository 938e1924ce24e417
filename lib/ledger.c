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

#include "clock.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"

#define ADMIT_BATCH_MAX   64     /* admissions in one statement */
#define SETTLE_BATCH_MAX  256    /* settlements in one statement */
#define SETTLE_QUEUE_MAX  10000  /* beyond, callers settle themselves */
#define SETTLE_GATHER_MS  10     /* a settlement waits this long for others */

/* A request waiting for its admission; lives on its thread's stack.  Each
 * waiter sleeps on its own condition, so that a batch's end wakes the
 * threads of that batch and the next leader, not every waiting thread. */
struct waiter {
	const struct mg_admit_req *q;
	struct mg_admission *out;
	enum mg_err rc;
	int done;
	pthread_cond_t wake;
	struct waiter *next;
};

/* A settlement, or (note) only the generation id of a request still
 * running, kept so that it can be reconciled if its responder dies. */
struct settlement {
	struct mg_usage u;
	char project[sizeof(((struct mg_auth *)0)->project)]; /* its name, for the metrics */
	int billable;
	int note;
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
	int stopping;
	pthread_t settler;
	int settler_running;
};

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

/* Marks a waiter answered and wakes it (not needed for the caller's own,
 * which is awake).  Called with the lock held. */
static void
answer(struct waiter *w, const struct waiter *me)
{
	w->done = 1;
	if (w != me)
		pthread_cond_signal(&w->wake);
}

enum mg_err
mg_ledger_admit(struct mg_ledger *l, const struct mg_admit_req *q, struct mg_admission *out)
{
	struct waiter me;

	memset(&me, 0, sizeof(me));
	me.q = q;
	me.out = out;
	me.rc = MG_OK;
	pthread_cond_init(&me.wake, NULL);
	pthread_mutex_lock(&l->lock);
	*l->waiting_tail = &me;
	l->waiting_tail = &me.next;
	while (!me.done) {
		struct waiter *first, *w;
		enum mg_err rc;
		int n = 0;

		if (l->leading) {
			pthread_cond_wait(&me.wake, &l->lock);
			continue;
		}
		/* lead the next batch: everyone waiting, up to the maximum */
		first = l->waiting;
		for (w = first; w != NULL && n < ADMIT_BATCH_MAX; w = w->next)
			n++;
		l->waiting = w;
		if (w == NULL)
			l->waiting_tail = &l->waiting;
		l->leading = 1;
		pthread_mutex_unlock(&l->lock);

		admit_batch(l, first, n);

		pthread_mutex_lock(&l->lock);
		rc = first->rc;
		for (w = first; n > 0; n--) {
			struct waiter *next = w->next;

			answer(w, &me);
			w = next;
		}
		if (rc == MG_ERR_DB_DOWN) {
			/* those who queued meanwhile have waited as long: answer
			 * them now rather than after one more timeout each */
			for (w = l->waiting; w != NULL; w = w->next) {
				w->rc = MG_ERR_DB_DOWN;
				answer(w, &me);
			}
			l->waiting = NULL;
			l->waiting_tail = &l->waiting;
		}
		l->leading = 0;
		/* the first of those who queued meanwhile leads the next batch */
		if (l->waiting != NULL)
			pthread_cond_signal(&l->waiting->wake);
	}
	pthread_mutex_unlock(&l->lock);
	pthread_cond_destroy(&me.wake);
	return me.rc;
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

static void
settle_batch(struct mg_ledger *l, struct settlement *first, int n)
{
	const struct mg_usage *u[SETTLE_BATCH_MAX] = { NULL };
	const char *project[SETTLE_BATCH_MAX] = { NULL };
	unsigned long long charged[SETTLE_BATCH_MAX];
	int billable[SETTLE_BATCH_MAX] = { 0 };
	struct settlement *s;
	enum mg_err rc;
	int i, m, settled = 0;

	note_ids(l, first, n);
	for (i = 0, m = 0, s = first; i < n; i++, s = s->next)
		if (!s->note) {
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

/* Called with the lock held and a settlement queued: waits up to
 * SETTLE_GATHER_MS for more to join it, as one statement settling many
 * costs Postgres little more than one settling one.  The client has its
 * answer already; the request's reservation is released that much later. */
static void
gather(struct mg_ledger *l)
{
	struct timespec until;

	mg_clock_deadline(CLOCK_MONOTONIC, SETTLE_GATHER_MS, &until);
	while (l->queue_len < SETTLE_BATCH_MAX && !l->stopping)
		if (pthread_cond_timedwait(&l->queued, &l->lock, &until) == ETIMEDOUT)
			break;
}

static void *
settler_main(void *arg)
{
	struct mg_ledger *l = arg;

	pthread_mutex_lock(&l->lock);
	for (;;) {
		struct settlement *first, *s, *next;
		int n = 0;

		while (l->queue == NULL && !l->stopping)
			pthread_cond_wait(&l->queued, &l->lock);
		if (l->queue == NULL)
			break;
		gather(l);
		first = l->queue;
		for (s = first; s != NULL && n < SETTLE_BATCH_MAX; s = s->next)
			n++;
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
		for (s = first; n > 0; n--, s = next) {
			next = s->next;
			free(s);
		}
		pthread_mutex_lock(&l->lock);
	}
	pthread_mutex_unlock(&l->lock);
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
		/* wake the settler when it waits for a first one or for a
		 * full batch */
		if (++l->queue_len == 1 || l->queue_len == SETTLE_BATCH_MAX)
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
		snprintf(s->project, sizeof(s->project), "%s", project);
		s->billable = billable;
		s->note = 0;
		if (enqueue(l, s) == 0)
			return;
		free(s);
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
	snprintf(s->u.request_id, sizeof(s->u.request_id), "%s", request_id);
	snprintf(s->u.upstream_id, sizeof(s->u.upstream_id), "%s", upstream_id);
	s->project[0] = '\0';
	s->billable = 0;
	s->note = 1;
	if (enqueue(l, s) != 0)
		free(s);
}

struct mg_ledger *
mg_ledger_new(struct mg_store *store)
{
	struct mg_ledger *l = calloc(1, sizeof(*l));
	pthread_condattr_t attr;

	if (l == NULL)
		return NULL;
	l->store = store;
	l->waiting_tail = &l->waiting;
	l->queue_tail = &l->queue;
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&l->queued, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&l->settler, NULL, settler_main, l) == 0)
		l->settler_running = 1;
	else
		mg_log(MG_LOG_WARN, NULL, "no settlement thread: requests settle before they finish");
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
	pthread_mutex_unlock(&l->lock);
	if (l->settler_running)
		pthread_join(l->settler, NULL);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->queued);
	free(l);
}
