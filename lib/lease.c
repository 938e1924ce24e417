/* lease.c -- The bookkeeping of a responder process's admission leases:
 * which key and model may be admitted here, from which project's slice,
 * and what to borrow, renew and give back.  No I/O: the ledger does the
 * asking.  Called by the ledger. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lease.h"
#include "money.h"
#include "text.h"

#define PICO 12          /* the scale of amounts here: 1e-12 USD */
#define NBUCKETS 256

/* What a key and model were last admitted with. */
struct tmpl {
	char key[68];
	char model[MG_MODEL_ID_MAX];
	long long changes;           /* the count of admission changes it was
	                              * asked under (see mg_leases_changes) */
	long long fetched_ms;        /* when Postgres answered for it */
	long long used_ms;           /* its last admission here (0: none) */
	long long project_id;
	struct mg_auth auth;
	long long rpm, tpm, ctx;     /* -1: none */
	char spend_cap[MG_COST_MAX];
	char spent[MG_COST_MAX];
	char pp[MG_COST_MAX], cp[MG_COST_MAX];
	long long pp_pico, cp_pico;  /* rounded up */
	/* the request it was answered for, which a refill repeats: its
	 * numbers and the config's pointers in req (the pointers to the
	 * request's own text and candidates NULL), those kept beside it */
	struct mg_admit_req req;
	char endpoint[32];
	struct mg_route_candidate cands[MG_ROUTE_ATTEMPTS_MAX];
	struct tmpl *next;
};

/* A project's lease, as this process knows it. */
struct lease {
	long long project_id;
	long long id, seq;           /* id 0: none live */
	long long spend_pico;        /* what Postgres says it holds, rounded down */
	long long out_pico;          /* the reservations of its requests unsettled */
	long long outstanding;       /* its requests unsettled */
	long long req_left, tok_left;   /* of its slices; -1: no such limit */
	int capped;                  /* the project has a spend cap */
	int stale;                   /* reaped: borrow anew before admitting */
	int releasing;               /* being given back: not used meanwhile */
	long long last_ms;           /* its last admission */
	long long win_ms, win_n, rate;  /* admissions a second */
	long long rpm_rem, rpm_reset, tpm_rem, tpm_reset;  /* the buckets' */
	long long asked_ms;          /* a refill was asked for (0: none) */
	long long rpm, tpm;          /* the project's limits its slices are of */
	struct lease *next;
};

struct mg_leases {
	pthread_mutex_t lock;
	char holder[128];
	struct tmpl *tmpls[NBUCKETS];
	struct lease *leases[NBUCKETS];
	long long renewed_ms;
	long long changes;           /* Postgres's count of admission changes, */
	long long checked_ms;        /* as a check sent then answered */
	int checked;                 /* (0: none answered yet) */
	int down;                    /* Postgres did not answer the last call */
};

static unsigned
hash_str(unsigned h, const char *s)
{
	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static unsigned
tmpl_slot(const char *key, const char *model)
{
	return hash_str(hash_str(2166136261u, key), model) % NBUCKETS;
}

static struct tmpl *
find_tmpl(struct mg_leases *ls, const char *key, const char *model)
{
	struct tmpl *t;

	for (t = ls->tmpls[tmpl_slot(key, model)]; t != NULL; t = t->next)
		if (strcmp(t->key, key) == 0 && strcmp(t->model, model) == 0)
			return t;
	return NULL;
}

static struct lease *
find_lease(struct mg_leases *ls, long long project_id)
{
	struct lease *l;

	for (l = ls->leases[(unsigned long long)project_id % NBUCKETS]; l != NULL; l = l->next)
		if (l->project_id == project_id)
			return l;
	return NULL;
}

struct mg_leases *
mg_leases_new(const char *holder)
{
	struct mg_leases *ls = calloc(1, sizeof(*ls));

	if (ls == NULL)
		return NULL;
	pthread_mutex_init(&ls->lock, NULL);
	mg_text_copy(ls->holder, sizeof(ls->holder), holder);
	ls->changes = -1;
	return ls;
}

void
mg_leases_free(struct mg_leases *ls)
{
	int i;

	if (ls == NULL)
		return;
	for (i = 0; i < NBUCKETS; i++) {
		while (ls->tmpls[i] != NULL) {
			struct tmpl *t = ls->tmpls[i];

			ls->tmpls[i] = t->next;
			free(t);
		}
		while (ls->leases[i] != NULL) {
			struct lease *l = ls->leases[i];

			ls->leases[i] = l->next;
			free(l);
		}
	}
	pthread_mutex_destroy(&ls->lock);
	free(ls);
}

/* The output a request reserves: its own maximum or the default, never
 * more than the model's context. */
static long long
output_of(const struct mg_admit_req *q, long long ctx)
{
	long long out = q->max_output >= 0 ? q->max_output : q->default_output;

	return ctx >= 0 && out > ctx ? ctx : out;
}

/* q's reservation at t's prices into *pico; -1 when it does not fit. */
static int
cost_of(const struct tmpl *t, const struct mg_admit_req *q, long long out, long long *pico)
{
	long long a, b;

	if (q->prompt_estimate < 0 || out < 0 ||
	    __builtin_mul_overflow(q->prompt_estimate, t->pp_pico, &a) ||
	    __builtin_mul_overflow(out, t->cp_pico, &b) || __builtin_add_overflow(a, b, pico))
		return -1;
	return 0;
}

/* Counts an admission for l's rate (admissions in the last whole second). */
static void
count(struct lease *l, long long now_ms)
{
	if (now_ms - l->win_ms >= 1000) {
		l->rate = now_ms - l->win_ms < 2000 ? l->win_n : 0;
		l->win_ms = now_ms;
		l->win_n = 0;
	}
	l->win_n++;
	l->last_ms = now_ms;
}

/* Takes q (need tokens, cost pico) out of l's slices and fills out as an
 * admission by Postgres would be, from t. */
static void
take(struct lease *l, const struct tmpl *t, const struct mg_admit_req *q,
    struct mg_admission *out, long long need, long long pico, long long now_ms)
{
	struct mg_lease_ticket *k = &out->ticket;
	struct timespec now;

	if (l->req_left > 0)
		l->req_left--;
	if (l->tok_left >= 0)
		l->tok_left = l->tok_left > need ? l->tok_left - need : 0;
	l->out_pico += pico;
	l->outstanding++;
	count(l, now_ms);

	memset(out, 0, sizeof(*out));
	out->outcome = MG_ADMIT_OK;
	out->auth = t->auth;
	mg_text_copy(out->spend_cap, sizeof(out->spend_cap), t->spend_cap);
	mg_text_copy(out->spent, sizeof(out->spent), t->spent);
	mg_text_copy(out->prompt_price, sizeof(out->prompt_price), t->pp);
	mg_text_copy(out->completion_price, sizeof(out->completion_price), t->cp);
	out->context_length = t->ctx;
	out->rpm = t->rpm;
	out->tpm = t->tpm;
	out->rpm_remaining = t->rpm >= 0 ? l->rpm_rem + (l->req_left > 0 ? l->req_left : 0) : -1;
	out->rpm_reset_ms = t->rpm >= 0 ? l->rpm_reset : -1;
	out->tpm_remaining = t->tpm >= 0 ? l->tpm_rem + (l->tok_left > 0 ? l->tok_left : 0) : -1;
	out->tpm_reset_ms = t->tpm >= 0 ? l->tpm_reset : -1;
	out->retry_after_ms = -1;
	out->need_tokens = need;
	out->lease_requests = -1;
	out->lease_tokens = -1;

	k->lease_id = l->id;
	k->reserved_pico = pico;
	k->reserved_tokens = need;
	k->prompt_estimate = q->prompt_estimate;
	clock_gettime(CLOCK_REALTIME, &now);
	k->admitted_us = (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
	if (mg_money_format_units(pico, PICO, k->reserved, sizeof(k->reserved)) != 0)
		k->reserved[0] = '\0';
	mg_text_copy(out->reserved, sizeof(out->reserved), k->reserved);
	mg_text_copy(k->prompt_price, sizeof(k->prompt_price), t->pp);
	mg_text_copy(k->completion_price, sizeof(k->completion_price), t->cp);
}

/* What l asks for when it borrows at now_ms: MG_LEASE_SLICE_MS of what
 * it admits, and at least MG_LEASE_WANT_MIN: Postgres lends at most an
 * eighth of what is left, and a request at a time near a limit.  Each
 * refill costs Postgres about as much as a settlement batch: with 100
 * busy projects, slices of two seconds instead of one took Postgres's
 * CPU a request from 60-74 us to 56-57 (four seconds: 49), while a
 * process killed with its slices is charged for twice as much.  The
 * rate is that of the last whole second, or of this one so far when
 * higher (after 100 ms of it), so that a slice taken cold grows to its
 * traffic within a few refills. */
static long long
want_of(const struct lease *l, long long now_ms)
{
	long long rate = l->rate, span = now_ms - l->win_ms, want;

	if (span >= 100 && span < 1000 && l->win_n * 1000 / span > rate)
		rate = l->win_n * 1000 / span;
	want = rate * MG_LEASE_SLICE_MS / 1000 + 1;
	if (want < MG_LEASE_WANT_MIN)
		want = MG_LEASE_WANT_MIN;
	return want > MG_LEASE_WANT_MAX ? MG_LEASE_WANT_MAX : want;
}

/* 1 when what is left of l's slice is less than half of what it asks for
 * at now_ms (requests of need tokens costing pico). */
static int
low(const struct lease *l, long long need, long long pico, long long now_ms)
{
	long long half = (want_of(l, now_ms) + 1) / 2, v;

	return (l->req_left >= 0 && l->req_left < half) ||
	    (l->tok_left >= 0 && (__builtin_mul_overflow(half, need, &v) || l->tok_left < v)) ||
	    (l->capped && (__builtin_mul_overflow(half, pico, &v) ||
	    l->spend_pico - l->out_pico < v));
}

/* The lease element's asks for want requests of need tokens costing pico:
 * tokens (-1 when they do not fit the bigint or the integer Postgres
 * reads) and spend (into spend, of len; NULL when it does not fit). */
static void
asks(struct mg_admit_req *q, long long want, long long need, long long pico, char *spend,
    size_t len)
{
	long long v;

	q->lease_requests = want;
	q->lease_tokens = -1;
	q->lease_spend = NULL;
	if (!__builtin_mul_overflow(want, need, &v))
		q->lease_tokens = v > 2147483647 ? 2147483647 : v;
	if (!__builtin_mul_overflow(want, pico, &v) &&
	    mg_money_format_units(v, PICO, spend, len) == 0)
		q->lease_spend = spend;
}

/* 1 when t was admitted from here in the last MG_LEASE_IDLE_MS before
 * now_ms: its answer is kept renewed. */
static int
in_use(const struct tmpl *t, long long now_ms)
{
	return t->used_ms != 0 && now_ms - t->used_ms < MG_LEASE_IDLE_MS;
}

/* 1 when t's answer may be used at now_ms: asked under the count of
 * admission changes that the last check found, sent less than
 * MG_LEASE_TMPL_MS ago. */
static int
current(const struct mg_leases *ls, const struct tmpl *t, long long now_ms)
{
	return ls->checked && t->changes == ls->changes &&
	    now_ms - ls->checked_ms < MG_LEASE_TMPL_MS;
}

/* 1 when a refill asked for at asked_ms (0: none) may be asked for
 * again at now_ms: none is waiting for an answer. */
static int
may_ask(long long asked_ms, long long now_ms)
{
	return asked_ms == 0 || now_ms - asked_ms >= MG_LEASE_ASK_MS;
}

/* 1 when l can admit a request of need tokens costing pico. */
static int
fits(const struct lease *l, long long need, long long pico)
{
	return l->id > 0 && !l->stale && !l->releasing &&
	    (l->req_left < 0 || l->req_left >= 1) &&
	    (l->tok_left < 0 || l->tok_left >= need) &&
	    (!l->capped || l->spend_pico - l->out_pico >= pico);
}

int
mg_leases_admit(struct mg_leases *ls, struct mg_admit_req *q, struct mg_admission *out,
    long long now_ms, char *spend, size_t len)
{
	struct tmpl *t;
	struct lease *l = NULL;
	long long want = 1, need = 0, pico = 0;
	int done = 0;

	q->lease_holder = NULL;
	q->lease_requests = -1;
	q->lease_tokens = -1;
	q->lease_spend = NULL;
	pthread_mutex_lock(&ls->lock);
	q->lease_changes = ls->changes;
	t = find_tmpl(ls, q->key_hash_hex, q->model);
	if (t != NULL) {
		l = find_lease(ls, t->project_id);
		need = q->prompt_estimate + output_of(q, t->ctx);
		if (l != NULL && l->releasing) {
			/* being given back: admitted in Postgres meanwhile */
			pthread_mutex_unlock(&ls->lock);
			return 0;
		}
		if (cost_of(t, q, output_of(q, t->ctx), &pico) != 0) {
			pthread_mutex_unlock(&ls->lock);
			return 0;   /* beyond what is counted here: in Postgres */
		}
		if (!ls->down && current(ls, t, now_ms) && l != NULL && fits(l, need, pico)) {
			take(l, t, q, out, need, pico, now_ms);
			t->used_ms = now_ms;
			done = 1;
			/* running low: the refresher is woken to refill it */
			if (may_ask(l->asked_ms, now_ms) && low(l, need, pico, now_ms))
				done = 2;
		} else if (l != NULL) {
			want = want_of(l, now_ms);
		}
	}
	if (!done) {
		q->lease_holder = ls->holder;
		if (t != NULL)
			asks(q, want, need, pico, spend, len);
		else
			q->lease_requests = want;
	}
	pthread_mutex_unlock(&ls->lock);
	return done;
}

/* Forgets what key and model were last admitted with, if anything. */
static void
drop_tmpl(struct mg_leases *ls, const char *key, const char *model)
{
	struct tmpl **p = &ls->tmpls[tmpl_slot(key, model)];

	for (; *p != NULL; p = &(*p)->next)
		if (strcmp((*p)->key, key) == 0 && strcmp((*p)->model, model) == 0) {
			struct tmpl *t = *p;

			*p = t->next;
			free(t);
			return;
		}
}

/* Keeps Postgres's answer for q's key and model. */
static struct tmpl *
keep_tmpl(struct mg_leases *ls, const struct mg_admit_req *q, const struct mg_admission *a,
    long long now_ms)
{
	struct tmpl *t = find_tmpl(ls, q->key_hash_hex, q->model);
	struct tmpl n;

	memset(&n, 0, sizeof(n));
	if (strlen(q->key_hash_hex) >= sizeof(n.key) || strlen(q->model) >= sizeof(n.model) ||
	    strlen(q->endpoint) >= sizeof(n.endpoint) || q->n_cands < 0 ||
	    q->n_cands > MG_ROUTE_ATTEMPTS_MAX ||
	    mg_money_units(a->prompt_price, PICO, MG_MONEY_UP, &n.pp_pico) != 0 ||
	    mg_money_units(a->completion_price, PICO, MG_MONEY_UP, &n.cp_pico) != 0)
		return NULL;
	if (t == NULL) {
		unsigned slot = tmpl_slot(q->key_hash_hex, q->model);

		t = malloc(sizeof(*t));
		if (t == NULL)
			return NULL;
		n.next = ls->tmpls[slot];
		ls->tmpls[slot] = t;
	} else {
		n.next = t->next;
		n.used_ms = t->used_ms;
	}
	strcpy(n.key, q->key_hash_hex);
	strcpy(n.model, q->model);
	n.changes = q->lease_changes;
	n.fetched_ms = now_ms;
	if (!q->lease_refresh)
		n.used_ms = now_ms;
	n.req = *q;
	n.req.key_hash_hex = n.req.request_id = n.req.model = n.req.endpoint = NULL;
	n.req.cands = NULL;
	n.req.lease_holder = n.req.lease_spend = NULL;
	n.req.lease_refresh = 0;
	strcpy(n.endpoint, q->endpoint);
	if (q->n_cands > 0)
		memcpy(n.cands, q->cands, (size_t)q->n_cands * sizeof(n.cands[0]));
	n.project_id = a->auth.project_id;
	n.auth = a->auth;
	n.rpm = a->rpm;
	n.tpm = a->tpm;
	n.ctx = a->context_length;
	mg_text_copy(n.spend_cap, sizeof(n.spend_cap), a->spend_cap);
	mg_text_copy(n.spent, sizeof(n.spent), a->spent);
	mg_text_copy(n.pp, sizeof(n.pp), a->prompt_price);
	mg_text_copy(n.cp, sizeof(n.cp), a->completion_price);
	*t = n;
	return t;
}

/* A project's limits as Postgres answered them: a limit changed leaves
 * nothing of what l's slices hold of it (lent under the old limit, it is
 * not admitted under the new), so that the change binds here as soon as
 * it is known. */
static void
limits(struct lease *l, const struct mg_admission *a)
{
	if (a->rpm != l->rpm) {
		l->rpm = a->rpm;
		l->req_left = a->rpm >= 0 ? 0 : -1;
	}
	if (a->tpm != l->tpm) {
		l->tpm = a->tpm;
		l->tok_left = a->tpm >= 0 ? 0 : -1;
	}
}

static int
granted(struct mg_leases *ls, const struct mg_admit_req *q, struct mg_admission *out,
    long long now_ms)
{
	struct tmpl *t;
	struct lease *l;
	long long spend = 0, need, pico;
	unsigned slot = (unsigned)((unsigned long long)out->auth.project_id % NBUCKETS);
	int rc = -1;

	l = find_lease(ls, out->auth.project_id);
	if (l != NULL && out->outcome != MG_ADMIT_INVALID_KEY)
		limits(l, out);
	if (out->outcome != MG_ADMIT_OK && q->lease_refresh) {
		/* the key and model's next request is decided in Postgres,
		 * unless only the buckets are short now: what is left of the
		 * slice is the process's until the answer expires */
		if (out->outcome != MG_ADMIT_REQUESTS && out->outcome != MG_ADMIT_TOKENS)
			drop_tmpl(ls, q->key_hash_hex, q->model);
		return 0;
	}
	if (out->outcome != MG_ADMIT_OK || out->lease_id <= 0) {
		/* refused, or not lent: nothing changes here */
		return out->outcome == MG_ADMIT_OK ? -1 : 0;
	}
	if (out->lease_spend[0] != '\0' &&
	    mg_money_units(out->lease_spend, PICO, MG_MONEY_DOWN, &spend) != 0)
		goto out;
	t = keep_tmpl(ls, q, out, now_ms);
	if (t == NULL)
		goto out;
	if (l == NULL) {
		l = calloc(1, sizeof(*l));
		if (l == NULL)
			goto out;
		l->project_id = out->auth.project_id;
		l->next = ls->leases[slot];
		ls->leases[slot] = l;
		l->win_ms = now_ms;
	}
	if (l->id != out->lease_id) {
		/* a new lease (the first, or one after a reaped one): the
		 * requests of the old one settle against it, not this */
		l->id = out->lease_id;
		l->seq = 0;
		l->out_pico = 0;
		l->outstanding = 0;
		l->req_left = out->rpm >= 0 ? 0 : -1;
		l->tok_left = out->tpm >= 0 ? 0 : -1;
		l->rpm = out->rpm;
		l->tpm = out->tpm;
		l->stale = 0;
		l->releasing = 0;   /* the old one's release is over */
	}
	if (out->lease_seq > l->seq) {
		l->seq = out->lease_seq;
		l->spend_pico = spend;
	}
	l->capped = out->spend_cap[0] != '\0';
	if (out->lease_requests >= 0 && l->req_left >= 0)
		l->req_left += out->lease_requests;
	if (out->lease_tokens >= 0 && l->tok_left >= 0)
		l->tok_left += out->lease_tokens;
	l->rpm_rem = out->rpm_remaining;
	l->rpm_reset = out->rpm_reset_ms;
	l->tpm_rem = out->tpm_remaining;
	l->tpm_reset = out->tpm_reset_ms;
	if (q->lease_refresh) {
		/* no request to take out: the slice is the lease's */
		l->asked_ms = 0;
		return 0;
	}
	need = out->need_tokens;
	if (cost_of(t, q, output_of(q, t->ctx), &pico) != 0)
		goto out;
	{
		struct mg_admission a = *out;

		/* Postgres lent this request's share: taken even if rounding
		 * left the slice a little short */
		take(l, t, q, out, need, pico, now_ms);
		mg_text_copy(out->spent, sizeof(out->spent), a.spent);
		out->ticket.tight = a.lease_tight;
	}
	rc = 0;
out:
	if (rc != 0) {
		/* admitted and lent, but not counted here: its ticket still
		 * names the lease (its settlement needs it), and the lease is
		 * not used again, so that it is reaped and charged whole */
		struct mg_lease_ticket *k = &out->ticket;
		struct timespec now;

		if (l != NULL && l->id == out->lease_id)
			l->stale = 1;
		if (q->lease_refresh)
			return rc;
		memset(k, 0, sizeof(*k));
		k->lease_id = out->lease_id;
		k->tight = out->lease_tight;
		k->reserved_tokens = out->need_tokens;
		k->prompt_estimate = q->prompt_estimate;
		clock_gettime(CLOCK_REALTIME, &now);
		k->admitted_us = (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
		mg_text_copy(k->reserved, sizeof(k->reserved), out->reserved);
		mg_text_copy(k->prompt_price, sizeof(k->prompt_price), out->prompt_price);
		mg_text_copy(k->completion_price, sizeof(k->completion_price),
		    out->completion_price);
	}
	return rc;
}

void
mg_leases_granted_batch(struct mg_leases *ls, const struct mg_admit_req *const *q,
    struct mg_admission *const *out, int *rc, int n, long long now_ms)
{
	int i;

	pthread_mutex_lock(&ls->lock);
	for (i = 0; i < n; i++)
		if (q[i] != NULL)
			rc[i] = granted(ls, q[i], out[i], now_ms);
	pthread_mutex_unlock(&ls->lock);
}

/* Fills r as a refill of t, asking for want requests. */
static void
refresh_of(struct mg_leases *ls, const struct tmpl *t, long long want, long long need,
    long long pico, struct mg_lease_refresh *r)
{
	struct mg_admit_req *q = &r->q;

	strcpy(r->key, t->key);
	strcpy(r->model, t->model);
	strcpy(r->endpoint, t->endpoint);
	memcpy(r->cands, t->cands, sizeof(r->cands));
	*q = t->req;
	q->key_hash_hex = r->key;
	q->request_id = "";
	q->model = r->model;
	q->endpoint = r->endpoint;
	q->cands = r->cands;
	q->lease_holder = ls->holder;
	q->lease_refresh = 1;
	q->lease_changes = ls->changes;
	asks(q, want, need, pico, r->spend, sizeof(r->spend));
}

int
mg_leases_refresh_due(struct mg_leases *ls, long long now_ms, struct mg_lease_refresh *r,
    int max)
{
	struct tmpl *t;
	int i, n = 0;

	pthread_mutex_lock(&ls->lock);
	for (i = 0; i < NBUCKETS && n < max && !ls->down; i++)
		for (t = ls->tmpls[i]; t != NULL && n < max; t = t->next) {
			struct lease *l = find_lease(ls, t->project_id);
			long long need, out, pico;

			if (l == NULL || l->id <= 0 || l->stale || l->releasing ||
			    !current(ls, t, now_ms) || !in_use(t, now_ms) ||
			    !may_ask(l->asked_ms, now_ms))
				continue;
			out = output_of(&t->req, t->ctx);
			need = t->req.prompt_estimate + out;
			if (cost_of(t, &t->req, out, &pico) != 0 || !low(l, need, pico, now_ms))
				continue;
			l->asked_ms = now_ms;
			refresh_of(ls, t, want_of(l, now_ms), need, pico, &r[n++]);
		}
	pthread_mutex_unlock(&ls->lock);
	return n;
}

void
mg_leases_changes(struct mg_leases *ls, long long n, long long sent_ms)
{
	pthread_mutex_lock(&ls->lock);
	if (!ls->checked || sent_ms >= ls->checked_ms) {
		ls->changes = n;
		ls->checked_ms = sent_ms;
		ls->checked = 1;
	}
	pthread_mutex_unlock(&ls->lock);
}

/* 1 when a key and model was admitted here in the last MG_LEASE_IDLE_MS.
 * Called with the lock held. */
static int
any_in_use(struct mg_leases *ls, long long now_ms)
{
	struct tmpl *t;
	int i;

	for (i = 0; i < NBUCKETS; i++)
		for (t = ls->tmpls[i]; t != NULL; t = t->next)
			if (in_use(t, now_ms))
				return 1;
	return 0;
}

int
mg_leases_check_due(struct mg_leases *ls, long long now_ms)
{
	int due;

	pthread_mutex_lock(&ls->lock);
	due = (!ls->checked || now_ms - ls->checked_ms >= MG_LEASE_CHECK_MS) &&
	    any_in_use(ls, now_ms);
	pthread_mutex_unlock(&ls->lock);
	return due;
}

int
mg_leases_in_use(struct mg_leases *ls, long long now_ms)
{
	int used;

	pthread_mutex_lock(&ls->lock);
	used = any_in_use(ls, now_ms);
	pthread_mutex_unlock(&ls->lock);
	return used;
}

void
mg_leases_settled(struct mg_leases *ls, const struct mg_usage *u, int billable)
{
	const struct mg_lease_ticket *k = &u->lease;
	struct lease *l;

	pthread_mutex_lock(&ls->lock);
	l = find_lease(ls, u->project_id);
	if (l != NULL && l->id == k->lease_id) {
		long long used = 0;

		l->out_pico = l->out_pico > k->reserved_pico ? l->out_pico - k->reserved_pico : 0;
		if (l->outstanding > 0)
			l->outstanding--;
		/* as settlement in Postgres does: tokens reserved and not used
		 * go back to the bucket, here the slice */
		if (billable)
			used = u->total_tokens >= 0 ? u->total_tokens :
			    u->prompt_tokens >= 0 && u->completion_tokens >= 0 ?
			    u->prompt_tokens + u->completion_tokens : k->reserved_tokens;
		if (l->tok_left >= 0 && !k->tight && k->reserved_tokens > used)
			l->tok_left += k->reserved_tokens - used;
	}
	pthread_mutex_unlock(&ls->lock);
}

void
mg_leases_update(struct mg_leases *ls, const struct mg_lease_state *st)
{
	struct lease *l;
	int i;

	pthread_mutex_lock(&ls->lock);
	for (i = 0; i < NBUCKETS; i++)
		for (l = ls->leases[i]; l != NULL; l = l->next)
			if (l->id == st->id && st->seq > l->seq) {
				long long v;

				if (mg_money_units(st->spend, PICO, MG_MONEY_DOWN, &v) == 0) {
					l->seq = st->seq;
					l->spend_pico = v;
				}
			}
	pthread_mutex_unlock(&ls->lock);
}

/* Unlinks l (in bucket i) and frees it. */
static void
forget(struct mg_leases *ls, struct lease *l)
{
	struct lease **p = &ls->leases[(unsigned long long)l->project_id % NBUCKETS];

	while (*p != l)
		p = &(*p)->next;
	*p = l->next;
	free(l);
}

static void
release_of(const struct lease *l, struct mg_lease_release *r)
{
	r->id = l->id;
	r->seq = l->seq;
	r->requests = l->req_left;
	r->tokens = l->tok_left;
}

int
mg_leases_due(struct mg_leases *ls, long long now_ms, long long lease_timeout_ms,
    struct mg_lease_release *release, long long *renew, int max, int *n_renew)
{
	struct lease *l, *next;
	int i, found = 0, renewing = now_ms - ls->renewed_ms >= lease_timeout_ms / 3;

	*n_renew = 0;
	pthread_mutex_lock(&ls->lock);
	for (i = 0; i < NBUCKETS; i++) {
		struct tmpl **p = &ls->tmpls[i];

		while (*p != NULL) {
			struct tmpl *t = *p;

			if ((ls->checked && t->changes != ls->changes) ||
			    (!in_use(t, now_ms) && now_ms - t->fetched_ms >= MG_LEASE_TMPL_MS)) {
				*p = t->next;
				free(t);
			} else {
				p = &t->next;
			}
		}
		for (l = ls->leases[i]; l != NULL; l = next) {
			next = l->next;
			if (l->releasing)
				continue;
			if (release != NULL && !found && l->id > 0 && l->outstanding == 0 &&
			    (l->stale || now_ms - l->last_ms >= MG_LEASE_IDLE_MS)) {
				if (l->stale) {
					forget(ls, l);
					continue;
				}
				release_of(l, release);
				l->releasing = 1;
				found = 1;
				continue;
			}
			if (renewing && l->id > 0 && !l->stale && *n_renew < max)
				renew[(*n_renew)++] = l->id;
		}
	}
	if (renewing)
		ls->renewed_ms = now_ms;
	pthread_mutex_unlock(&ls->lock);
	return found;
}

void
mg_leases_released(struct mg_leases *ls, long long id, int released)
{
	struct lease *l;
	int i;

	pthread_mutex_lock(&ls->lock);
	for (i = 0; i < NBUCKETS; i++)
		for (l = ls->leases[i]; l != NULL; l = l->next)
			if (l->id == id && l->releasing) {
				if (released)
					forget(ls, l);
				else
					l->releasing = 0;
				pthread_mutex_unlock(&ls->lock);
				return;
			}
	pthread_mutex_unlock(&ls->lock);
}

void
mg_leases_suspend(struct mg_leases *ls, int down)
{
	pthread_mutex_lock(&ls->lock);
	ls->down = down;
	pthread_mutex_unlock(&ls->lock);
}

void
mg_leases_dead(struct mg_leases *ls, long long id)
{
	struct lease *l;
	int i;

	pthread_mutex_lock(&ls->lock);
	for (i = 0; i < NBUCKETS; i++)
		for (l = ls->leases[i]; l != NULL; l = l->next)
			if (l->id == id)
				l->stale = 1;
	pthread_mutex_unlock(&ls->lock);
}

int
mg_leases_drain(struct mg_leases *ls, struct mg_lease_release *out, int max)
{
	struct lease *l;
	int i, n = 0;

	pthread_mutex_lock(&ls->lock);
	for (i = 0; i < NBUCKETS; i++)
		for (l = ls->leases[i]; l != NULL && n < max; l = l->next)
			if (l->id > 0 && !l->stale && !l->releasing && l->outstanding == 0) {
				release_of(l, &out[n++]);
				l->releasing = 1;
			}
	pthread_mutex_unlock(&ls->lock);
	return n;
}
