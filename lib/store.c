/* store.c -- The responder's Postgres side: a small pool of persistent connections
 * with prepared statements, each call bounded by a deadline.  Called by
 * the ledger and the gateway; thread-safe. */
#include "config.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "jsonw.h"
#include "log.h"
#include "metrics.h"
#include "money.h"
#include "report.h"
#include "store.h"
#include "text.h"

struct stmt {
	const char *name;
	const char *sql;
	int nparams;
};

static const struct stmt statements[] = {
	{ "mg_auth",
	  "SELECT key_id, project_id, project_name, key_prefix "
	  "FROM mg_authenticate(decode($1, 'hex'))", 1 },
	{ "mg_usage",
	  "SELECT mg_record_usage($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
	  "$12, $13, $14, $15, $16)", 16 },
	{ "mg_ping", "SELECT 1", 0 },
	{ "mg_reap", "SELECT a.reaped, a.charged + b.charged, b.reaped "
	  "FROM mg_reap($1) a, mg_reap_leases($2) b", 2 },
	{ "mg_partitions", "SELECT mg_usage_partitions()", 0 },
	{ "mg_compact", "SELECT mg_rollup_compact() IS NOT NULL", 0 },
	{ "mg_models", "SELECT list, allowed FROM mg_model_list($1)", 1 },
	{ "mg_catalog_claim", "SELECT mg_catalog_claim($1)", 1 },
	{ "mg_catalog_replace", "SELECT mg_catalog_replace($1::jsonb, $2::text[], $3::text[])", 3 },
	{ "mg_admit_batch",
	  "SELECT i, outcome, key_id, project_id, project_name, key_prefix, trim_scale(reserved), "
	  "rpm, rpm_remaining, rpm_reset_ms, tpm, tpm_remaining, tpm_reset_ms, "
	  "retry_after_ms, trim_scale(spend_cap), trim_scale(spent), need_tokens, "
	  "trim_scale(prompt_price), trim_scale(completion_price), context_length, "
	  "lease_id, lease_seq, lease_requests, lease_tokens, trim_scale(lease_spend), "
	  "lease_tight "
	  "FROM mg_admit_batch($1::jsonb, $2, $3, $4)", 4 },
	{ "mg_settle_batch", "SELECT settled, ids, costs FROM mg_settle_batch($1::jsonb)", 1 },
	{ "mg_settle_lease_batch", "SELECT settled, ids, costs, lease_ids, "
	  "(SELECT array_agg(trim_scale(x)) FROM unnest(lease_spends) x), lease_seqs "
	  "FROM mg_settle_lease_batch($1::json)", 1 },
	{ "mg_lease_renew", "SELECT mg_lease_renew($1::bigint[])", 1 },
	{ "mg_lease_release", "SELECT mg_lease_release($1, $2, $3, $4)", 4 },
	{ "mg_admission_changes", "SELECT mg_admission_changes()", 0 },
	{ "mg_auth_reader", "SELECT kind, project_name, key_prefix "
	  "FROM mg_authenticate_reader(decode($1, 'hex'))", 1 },
	{ "mg_recon_claim", "SELECT request_id, created_at, upstream_id, tries "
	  "FROM mg_recon_claim($1, make_interval(secs => $2))", 2 },
	{ "mg_recon_apply", "SELECT coalesce(state, ''), amount "
	  "FROM mg_recon_apply($1, $2::timestamptz, $3::numeric)", 3 },
	{ "mg_recon_watermark", "SELECT floor(extract(epoch FROM "
	  "coalesce(mg_recon_watermark(), clock_timestamp())))::bigint", 0 },
	{ "mg_recon_retry", "SELECT coalesce(mg_recon_retry($1, $2::timestamptz), '')", 2 },
	{ "mg_recon_unsupported", "SELECT mg_recon_unsupported()", 0 },
	{ "mg_recon_dequeue", "SELECT mg_recon_dequeue()", 0 },
	{ "mg_recon_note_ids", "SELECT mg_recon_note_ids($1::jsonb)", 1 },
	{ "mg_recon_close_claim", "SELECT coalesce(to_char(mg_recon_close_claim("
	  "make_interval(secs => $1), make_interval(secs => $2)), 'YYYY-MM-DD'), '')", 2 },
	{ "mg_recon_close_record", "SELECT mg_recon_close_record($1::date, $2::jsonb, "
	  "$3::numeric)", 3 },
	/* the reports: their SQL is report.c's (see prepare_reports) */
};

struct slot {
	PGconn *conn;   /* NULL until first use or after a failure */
	int busy;
	int big;        /* it carried a message of over BIG_MESSAGE bytes */
};

/* A message this large leaves libpq's buffers of its connection at twice
 * its size or so for as long as the connection lives (see mg_store_shed). */
#define BIG_MESSAGE (64u << 10)

struct mg_store {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	struct slot *slots;
	int size;
	char *conninfo;
	int timeout_s;  /* connect_timeout: the most one call may take */
};

static __thread char last_error[256];
static __thread char last_state[6];

const char *
mg_store_last_error(void)
{
	return last_error;
}

static void
remember_error(PGconn *c, PGresult *r)
{
	const char *m = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *st = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	mg_text_copy(last_state, sizeof(last_state), st != NULL ? st : "");
	if (m == NULL || m[0] == '\0')
		m = c != NULL ? PQerrorMessage(c) : "no connection";
	mg_text_copy(last_error, sizeof(last_error), m);
	last_error[strcspn(last_error, "\n")] = '\0';
}

struct mg_store *
mg_store_new(const char *conninfo, int size, int connect_timeout)
{
	struct mg_store *s = calloc(1, sizeof(*s));
	pthread_condattr_t attr;

	if (s == NULL)
		return NULL;
	s->slots = calloc((size_t)size, sizeof(*s->slots));
	s->conninfo = strdup(conninfo);
	if (s->slots == NULL || s->conninfo == NULL) {
		free(s->slots);
		free(s->conninfo);
		free(s);
		return NULL;
	}
	s->size = size;
	s->timeout_s = connect_timeout;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->freed, &attr);
	pthread_condattr_destroy(&attr);
	return s;
}

void
mg_store_free(struct mg_store *s)
{
	int i;

	if (s == NULL)
		return;
	for (i = 0; i < s->size; i++)
		if (s->slots[i].conn != NULL)
			PQfinish(s->slots[i].conn);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->freed);
	free(s->slots);
	free(s->conninfo);
	free(s);
}

void
mg_store_shed(struct mg_store *s)
{
	PGconn *gone[64];
	int i, n, from = 0;

	/* a few at a time, none of them closed under the lock */
	do {
		n = 0;
		pthread_mutex_lock(&s->lock);
		for (i = from; i < s->size && n < (int)(sizeof(gone) / sizeof(gone[0])); i++)
			if (!s->slots[i].busy && s->slots[i].big) {
				gone[n++] = s->slots[i].conn;
				s->slots[i].conn = NULL;
				s->slots[i].big = 0;
			}
		from = i;
		pthread_mutex_unlock(&s->lock);
		for (i = 0; i < n; i++)
			if (gone[i] != NULL) {
				PQfinish(gone[i]);
				mg_metrics_count(MG_M_DB_SHED, 1);
			}
	} while (from < s->size);
}

static void
out_of_time(const struct mg_store *s, const char *what)
{
	snprintf(last_error, sizeof(last_error), "%s within %d s", what, s->timeout_s);
}

/* Waits for the answer to what was sent on c, up to the deadline: a
 * database that accepted the connection but went silent (hung, host or
 * network gone) must not hold the request, and the pool slot, for ever.
 * Returns the last result (NULL if none; the caller clears it) and sets
 * *timed_out when the time ran out (the result is then NULL and the
 * connection unusable). */
static PGresult *
wait_result(PGconn *c, const struct timespec *deadline, int *timed_out)
{
	PGresult *r, *last = NULL;

	*timed_out = 0;
	for (;;) {
		struct pollfd p = { PQsocket(c), POLLIN, 0 };
		long ms;

		if (!PQconsumeInput(c))
			break;
		if (!PQisBusy(c)) {
			r = PQgetResult(c);
			if (r == NULL)
				return last;
			PQclear(last);
			last = r;
			continue;
		}
		ms = mg_clock_ms_until(deadline);
		if (ms <= 0) {
			*timed_out = 1;
			PQclear(last);
			return NULL;
		}
		if (poll(&p, 1, (int)ms) < 0 && errno != EINTR)
			break;
	}
	/* the connection broke: libpq's error result, if any, says why */
	while ((r = PQgetResult(c)) != NULL) {
		PQclear(last);
		last = r;
	}
	return last;
}

/* Connects without blocking past the deadline.  libpq ignores its own
 * connect_timeout on this non-blocking path (which counts whole seconds,
 * at least 2, for each address), so it is not passed. */
static PGconn *
connect_by(struct mg_store *s, const struct timespec *deadline)
{
	const char *keys[] = { "dbname", "application_name", NULL };
	const char *vals[] = { s->conninfo, "modelgate-fcgi", NULL };
	PGconn *c = PQconnectStartParams(keys, vals, 1);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;

	if (c == NULL || PQstatus(c) == CONNECTION_BAD) {
		remember_error(c, NULL);
		PQfinish(c);
		return NULL;
	}
	while (st != PGRES_POLLING_OK) {
		struct pollfd p = { PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0 };
		long ms = mg_clock_ms_until(deadline);
		int n;

		if (st == PGRES_POLLING_FAILED) {
			remember_error(c, NULL);
			PQfinish(c);
			return NULL;
		}
		if (ms <= 0) {
			out_of_time(s, "no connection to the database");
			PQfinish(c);
			return NULL;
		}
		n = poll(&p, 1, (int)ms);
		if (n < 0 && errno != EINTR) {
			snprintf(last_error, sizeof(last_error), "poll: %s", strerror(errno));
			PQfinish(c);
			return NULL;
		}
		if (n > 0)
			st = PQconnectPoll(c);
	}
	return c;
}

#define NSTATEMENTS (sizeof(statements) / sizeof(statements[0]))

/* Statement i of the connection's: those above, then the reports'. */
static struct stmt
statement(size_t i)
{
	struct stmt st;

	if (i < NSTATEMENTS)
		return statements[i];
	st.sql = mg_report_sql((enum mg_report)(i - NSTATEMENTS), &st.name, &st.nparams);
	return st;
}

/* Opens a connection and prepares every statement on it, by the deadline. */
static PGconn *
open_conn(struct mg_store *s, const struct timespec *deadline)
{
	PGconn *c = connect_by(s, deadline);
	size_t i;

	if (c == NULL)
		return NULL;
	for (i = 0; i < NSTATEMENTS + MG_REPORT__COUNT; i++) {
		struct stmt st = statement(i);
		PGresult *r = NULL;
		int timed_out = 0;

		if (PQsendPrepare(c, st.name, st.sql, st.nparams, NULL))
			r = wait_result(c, deadline, &timed_out);
		if (timed_out) {
			out_of_time(s, "no answer from the database");
			PQfinish(c);
			return NULL;
		}
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			remember_error(c, r);
			mg_log(MG_LOG_ERROR, NULL, "preparing %s failed: %s (is the schema migrated?)",
			    st.name, last_error);
			PQclear(r);
			PQfinish(c);
			return NULL;
		}
		PQclear(r);
	}
	return c;
}

/* A free slot, or NULL when none came free by the deadline.  bulky: the
 * call sends a settlement batch (up to 1024 rows, 440 KB of JSON), by far
 * the largest message; libpq keeps a connection's buffers at the largest
 * message it carried, so those take the last free slot and every other
 * call looks from the first, and one connection rather than all of them
 * keeps buffers that size (2 MiB of an idle process's memory, measured). */
static struct slot *
acquire(struct mg_store *s, const struct timespec *deadline, int bulky)
{
	struct slot *got = NULL;
	struct timespec waited = { 0, 0 };
	int i;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		/* prefer a slot with an open connection (bulky: the last
		 * free one, opened if need be) */
		for (i = 0; i < s->size && got == NULL && !bulky; i++)
			if (!s->slots[i].busy && s->slots[i].conn != NULL)
				got = &s->slots[i];
		for (i = 0; i < s->size && got == NULL; i++) {
			struct slot *sl = &s->slots[bulky ? s->size - 1 - i : i];

			if (!sl->busy)
				got = sl;
		}
		if (got != NULL)
			break;
		if (waited.tv_sec == 0 && waited.tv_nsec == 0)
			mg_clock_now(CLOCK_MONOTONIC, &waited);
		if (pthread_cond_timedwait(&s->freed, &s->lock, deadline) == ETIMEDOUT)
			break;
	}
	if (got != NULL)
		got->busy = 1;
	pthread_mutex_unlock(&s->lock);
	if (waited.tv_sec != 0 || waited.tv_nsec != 0) {
		mg_metrics_count(MG_M_DB_POOL_WAITS, 1);
		mg_metrics_count(MG_M_DB_POOL_WAIT_US, mg_clock_us_since(&waited));
	}
	if (got == NULL)
		out_of_time(s, "no free database connection");
	return got;
}

static void
release(struct mg_store *s, struct slot *sl)
{
	pthread_mutex_lock(&s->lock);
	sl->busy = 0;
	pthread_cond_signal(&s->freed);
	pthread_mutex_unlock(&s->lock);
}

/* Runs a prepared statement on a pooled connection, reconnecting once if
 * the connection had gone bad (e.g. Postgres restarted), all of it within
 * timeout_s of since (NULL: now).  A statement not answered by then drops
 * the connection and is not retried (it may still complete).  On MG_OK
 * *res holds a PGRES_TUPLES_OK result the caller clears. */
static enum mg_err exec_call(struct mg_store *s, const struct timespec *since,
    const char *name, int n, const char *const *vals, PGresult **res);

/* exec_call, counted: its duration by kind of call, its failures. */
static enum mg_err
exec_since(struct mg_store *s, const struct timespec *since, const char *name, int n,
    const char *const *vals, PGresult **res)
{
	struct timespec start;
	enum mg_err rc;

	mg_clock_now(CLOCK_MONOTONIC, &start);
	rc = exec_call(s, since, name, n, vals, res);
	mg_metrics_observe(strcmp(name, "mg_admit_batch") == 0 ? MG_H_DB_ADMIT :
	    strcmp(name, "mg_settle_batch") == 0 ? MG_H_DB_SETTLE : MG_H_DB_OTHER,
	    mg_clock_us_since(&start));
	if (rc == MG_ERR_DB_DOWN)
		mg_metrics_count(MG_M_DB_UNAVAILABLE, 1);
	else if (rc != MG_OK)
		mg_metrics_count(MG_M_DB_ERROR, 1);
	return rc;
}

/* The size of r's values, counted up to just over BIG_MESSAGE. */
static size_t
answer_size(const PGresult *r)
{
	int rows = PQntuples(r), cols = PQnfields(r), i, j;
	size_t n = 0;

	for (i = 0; i < rows && n <= BIG_MESSAGE; i++)
		for (j = 0; j < cols; j++)
			n += (size_t)PQgetlength(r, i, j);
	return n;
}

static enum mg_err
exec_call(struct mg_store *s, const struct timespec *since, const char *name, int n,
    const char *const *vals, PGresult **res)
{
	struct timespec deadline;
	struct slot *sl;
	enum mg_err rc = MG_ERR_DB_DOWN;
	int attempt, i;

	*res = NULL;
	if (since != NULL && since->tv_sec != 0)
		deadline = *since;
	else
		mg_clock_now(CLOCK_MONOTONIC, &deadline);
	mg_clock_add_ms(&deadline, s->timeout_s * 1000L);
	sl = acquire(s, &deadline, strncmp(name, "mg_settle", 9) == 0);
	if (sl == NULL)
		return MG_ERR_DB_DOWN;
	for (attempt = 0; attempt < 2; attempt++) {
		PGresult *r = NULL;
		int timed_out = 0;

		if (sl->conn == NULL) {
			sl->big = 0;   /* a new connection's buffers are small */
			sl->conn = open_conn(s, &deadline);
			if (sl->conn == NULL) {
				rc = MG_ERR_DB_DOWN;
				break;
			}
		}
		for (i = 0; i < n && !sl->big; i++)
			if (vals[i] != NULL && strlen(vals[i]) > BIG_MESSAGE)
				sl->big = 1;
		if (PQsendQueryPrepared(sl->conn, name, n, vals, NULL, NULL, 0))
			r = wait_result(sl->conn, &deadline, &timed_out);
		if (timed_out) {
			out_of_time(s, "no answer from the database");
			PQfinish(sl->conn);
			sl->conn = NULL;
			rc = MG_ERR_DB_DOWN;
			break;
		}
		if (PQresultStatus(r) == PGRES_TUPLES_OK) {
			if (!sl->big && answer_size(r) > BIG_MESSAGE)
				sl->big = 1;
			*res = r;
			rc = MG_OK;
			break;
		}
		remember_error(sl->conn, r);
		PQclear(r);
		if (PQstatus(sl->conn) == CONNECTION_OK) {
			rc = MG_ERR_DB;
			break;
		}
		/* the connection broke: drop it and try once on a new one */
		PQfinish(sl->conn);
		sl->conn = NULL;
		rc = MG_ERR_DB_DOWN;
	}
	release(s, sl);
	return rc;
}

static enum mg_err
exec_prepared(struct mg_store *s, const char *name, int n, const char *const *vals,
    PGresult **res)
{
	return exec_since(s, NULL, name, n, vals, res);
}

enum mg_err
mg_store_auth(struct mg_store *s, const char *key_hash_hex, struct mg_auth *out)
{
	const char *vals[1] = { key_hash_hex };
	PGresult *r;
	enum mg_err rc = exec_prepared(s, "mg_auth", 1, vals, &r);

	if (rc != MG_OK)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return MG_ERR_AUTH;
	}
	out->key_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	out->project_id = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	mg_text_copy(out->project, sizeof(out->project), PQgetvalue(r, 0, 2));
	mg_text_copy(out->key_prefix, sizeof(out->key_prefix), PQgetvalue(r, 0, 3));
	PQclear(r);
	return MG_OK;
}

static const char *
num_or_null(long long v, char *buf, size_t len)
{
	if (v < 0)
		return NULL;
	snprintf(buf, len, "%lld", v);
	return buf;
}

static const char *
str_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : NULL;
}

enum mg_err
mg_store_record_usage(struct mg_store *s, const struct mg_usage *u)
{
	char project[24], key[24], status[16], pt[24], ct[24], tt[24], lat[24];
	const char *vals[16];
	PGresult *r;
	enum mg_err rc;

	snprintf(project, sizeof(project), "%lld", u->project_id);
	snprintf(status, sizeof(status), "%d", u->status);
	snprintf(lat, sizeof(lat), "%ld", u->latency_ms);
	vals[0] = u->request_id;
	vals[1] = project;
	vals[2] = u->key_id > 0 ? (snprintf(key, sizeof(key), "%lld", u->key_id), key) : NULL;
	vals[3] = str_or_null(u->model);
	vals[4] = str_or_null(u->provider);
	vals[5] = u->endpoint;
	vals[6] = u->stream ? "true" : "false";
	vals[7] = status;
	vals[8] = u->error_type;
	vals[9] = num_or_null(u->prompt_tokens, pt, sizeof(pt));
	vals[10] = num_or_null(u->completion_tokens, ct, sizeof(ct));
	vals[11] = num_or_null(u->total_tokens, tt, sizeof(tt));
	vals[12] = str_or_null(u->cost);
	vals[13] = u->cost[0] != '\0' ? u->cost_source : NULL;
	vals[14] = str_or_null(u->upstream_id);
	vals[15] = lat;
	rc = exec_prepared(s, "mg_usage", 16, vals, &r);
	if (rc == MG_OK)
		PQclear(r);
	return rc;
}

static const struct {
	const char *name;
	enum mg_admit_outcome outcome;
} outcomes[] = {
	{ "ok", MG_ADMIT_OK },
	{ "invalid_key", MG_ADMIT_INVALID_KEY },
	{ "model_not_allowed", MG_ADMIT_MODEL_NOT_ALLOWED },
	{ "model_not_found", MG_ADMIT_MODEL_NOT_FOUND },
	{ "spend_cap", MG_ADMIT_SPEND_CAP },
	{ "requests", MG_ADMIT_REQUESTS },
	{ "tokens", MG_ADMIT_TOKENS },
	{ "tokens_too_many", MG_ADMIT_TOKENS_TOO_MANY },
};

static long long
int_or(PGresult *r, int row, int col, long long absent)
{
	return PQgetisnull(r, row, col) ? absent : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static void
text_or_empty(PGresult *r, int row, int col, char *out, size_t len)
{
	mg_text_copy(out, len, PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

/* Reads the 16 columns of mg_admit from row, starting at column c. */
static void
read_admission(PGresult *r, int row, int c, struct mg_admission *out)
{
	const char *outcome = PQgetvalue(r, row, c);
	size_t i;

	memset(out, 0, sizeof(*out));
	out->outcome = MG_ADMIT_INVALID_KEY;
	for (i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++)
		if (strcmp(outcome, outcomes[i].name) == 0)
			out->outcome = outcomes[i].outcome;
	out->auth.key_id = int_or(r, row, c + 1, 0);
	out->auth.project_id = int_or(r, row, c + 2, 0);
	text_or_empty(r, row, c + 3, out->auth.project, sizeof(out->auth.project));
	text_or_empty(r, row, c + 4, out->auth.key_prefix, sizeof(out->auth.key_prefix));
	text_or_empty(r, row, c + 5, out->reserved, sizeof(out->reserved));
	out->rpm = int_or(r, row, c + 6, -1);
	out->rpm_remaining = int_or(r, row, c + 7, -1);
	out->rpm_reset_ms = int_or(r, row, c + 8, -1);
	out->tpm = int_or(r, row, c + 9, -1);
	out->tpm_remaining = int_or(r, row, c + 10, -1);
	out->tpm_reset_ms = int_or(r, row, c + 11, -1);
	out->retry_after_ms = int_or(r, row, c + 12, -1);
	text_or_empty(r, row, c + 13, out->spend_cap, sizeof(out->spend_cap));
	text_or_empty(r, row, c + 14, out->spent, sizeof(out->spent));
	out->need_tokens = int_or(r, row, c + 15, 0);
	text_or_empty(r, row, c + 16, out->prompt_price, sizeof(out->prompt_price));
	text_or_empty(r, row, c + 17, out->completion_price, sizeof(out->completion_price));
	out->context_length = int_or(r, row, c + 18, -1);
	out->lease_id = int_or(r, row, c + 19, 0);
	out->lease_seq = int_or(r, row, c + 20, 0);
	out->lease_requests = int_or(r, row, c + 21, -1);
	out->lease_tokens = int_or(r, row, c + 22, -1);
	text_or_empty(r, row, c + 23, out->lease_spend, sizeof(out->lease_spend));
	out->lease_tight = strcmp(PQgetvalue(r, row, c + 24), "t") == 0;
}

/* The most a batch's JSON may take (SETTLE_BATCH_MAX rows of the
 * ledger are far below it). */
#define BATCH_TEXT_MAX (64u << 20)

/* "key": value -- a string, or null. */
static void
put_str(struct mg_jw *w, const char *key, const char *v)
{
	mg_jw_key(w, key);
	mg_jw_str(w, v);
}

/* "key": value -- an integer, or null when it is negative (not known). */
static void
put_int(struct mg_jw *w, const char *key, long long v)
{
	mg_jw_key(w, key);
	if (v >= 0)
		mg_jw_int(w, v);
	else
		mg_jw_null(w);
}

static void
put_bool(struct mg_jw *w, const char *key, int v)
{
	mg_jw_key(w, key);
	mg_jw_bool(w, v);
}

/* A batch's JSON array of n objects into b (initialised by the caller, to
 * be freed by it), element i's members written by fill(w, i, ctx). */
static enum mg_err
batch_text(struct mg_buf *b, int n, void (*fill)(struct mg_jw *w, int i, const void *ctx),
    const void *ctx)
{
	struct mg_jw w;
	int i;

	mg_jw_init(&w, b);
	mg_jw_open(&w, '[');
	for (i = 0; i < n; i++) {
		mg_jw_open(&w, '{');
		fill(&w, i, ctx);
		mg_jw_close(&w, '}');
	}
	mg_jw_close(&w, ']');
	return mg_jw_done(&w);
}

/* 1 when q's calls are to the upstream its model routes to, priced by
 * that upstream's catalog as the models table has it, with the fallback
 * prices of the config: the calls ("c") would tell admission nothing more,
 * and cost it a query a request. */
static int
plain_route(const struct mg_admit_req *q)
{
	const struct mg_updef *d;

	if (!mg_route_plan_single(q->cands, q->n_cands))
		return 0;
	d = &q->conf->ups[q->cands[0].upstream];
	return d->prices != MG_PRICES_CONFIG && strcmp(q->cands[0].model, q->model) == 0 &&
	    strcmp(d->prompt_price, q->fallback_prompt) == 0 &&
	    strcmp(d->completion_price, q->fallback_completion) == 0;
}

static void
fill_admission(struct mg_jw *w, int i, const void *ctx)
{
	const struct mg_admit_req *q = ((const struct mg_admit_req *const *)ctx)[i];
	int c;

	put_str(w, "k", q->key_hash_hex);
	put_str(w, "id", q->request_id);
	put_str(w, "m", q->model);
	put_str(w, "e", q->endpoint);
	put_bool(w, "s", q->stream);
	put_int(w, "p", q->prompt_estimate);
	put_int(w, "o", q->max_output);
	if (q->lease_holder != NULL) {
		put_str(w, "lh", q->lease_holder);
		put_int(w, "lr", q->lease_requests);
		put_int(w, "lt", q->lease_tokens);
		put_str(w, "ls", q->lease_spend);
		if (q->lease_refresh)
			put_bool(w, "lf", 1);
	}
	if (q->conf == NULL || q->n_cands == 0 || plain_route(q))
		return;
	/* the calls it may make: {u: upstream, m: model, pp, cp: its prices
	 * where the catalog has none, g: those prices are the config's} */
	mg_jw_key(w, "c");
	mg_jw_open(w, '[');
	for (c = 0; c < q->n_cands; c++) {
		const struct mg_updef *d = &q->conf->ups[q->cands[c].upstream];

		mg_jw_open(w, '{');
		put_str(w, "u", d->name);
		put_str(w, "m", q->cands[c].model);
		put_str(w, "pp", d->prompt_price);
		put_str(w, "cp", d->completion_price);
		put_bool(w, "g", d->prices == MG_PRICES_CONFIG);
		mg_jw_close(w, '}');
	}
	mg_jw_close(w, ']');
}

/* "tr": a request's upstream calls as the usage row keeps them. */
static void
put_attempts(struct mg_jw *w, const struct mg_usage *u)
{
	int i;

	mg_jw_key(w, "tr");
	mg_jw_open(w, '[');
	for (i = 0; i < u->n_attempts; i++) {
		const struct mg_usage_attempt *a = &u->attempts[i];

		mg_jw_open(w, '{');
		put_str(w, "upstream", a->upstream);
		put_str(w, "model", a->model);
		put_int(w, "status", a->status > 0 ? a->status : -1);
		put_str(w, "error", a->error);
		put_int(w, "latency_ms", a->latency_ms);
		mg_jw_close(w, '}');
	}
	mg_jw_close(w, ']');
}

enum mg_err
mg_store_admit_batch(struct mg_store *s, const struct mg_admit_req *const *q, int n,
    struct mg_admission *const *out)
{
	struct mg_buf text;
	char def_output[24];
	const char *vals[4];
	const struct timespec *since;
	PGresult *r = NULL;
	enum mg_err rc = MG_ERR_NOMEM;
	int i;

	mg_buf_init(&text, BATCH_TEXT_MAX);
	rc = batch_text(&text, n, fill_admission, q);
	if (rc != MG_OK)
		goto out;
	/* the same for every request of a process */
	snprintf(def_output, sizeof(def_output), "%d", q[0]->default_output);
	vals[0] = mg_buf_str(&text);
	vals[1] = def_output;
	vals[2] = q[0]->fallback_prompt;
	vals[3] = q[0]->fallback_completion;
	/* the batch ends by the time its oldest request must have an answer */
	since = &q[0]->since;
	for (i = 1; i < n; i++)
		if (mg_clock_before(&q[i]->since, since))
			since = &q[i]->since;
	rc = exec_since(s, since, "mg_admit_batch", 4, vals, &r);
	if (rc != MG_OK)
		goto out;
	if (PQntuples(r) != n || PQnfields(r) != 26) {
		snprintf(last_error, sizeof(last_error), "mg_admit_batch returned %d rows for %d",
		    PQntuples(r), n);
		rc = MG_ERR_DB;
		goto out;
	}
	for (i = 0; i < n; i++) {
		long long k = int_or(r, i, 0, 0);

		if (k < 1 || k > n) {
			rc = MG_ERR_DB;
			goto out;
		}
		read_admission(r, i, 1, out[k - 1]);
	}
out:
	PQclear(r);
	mg_buf_free(&text);
	return rc;
}

enum mg_err
mg_store_admit(struct mg_store *s, const struct mg_admit_req *q, struct mg_admission *out)
{
	memset(out, 0, sizeof(*out));
	return mg_store_admit_batch(s, &q, 1, &out);
}

/* Runs a one-row, one-column statement of n parameters whose value is an
 * integer or a boolean (1 for true); *out is 0 on failure. */
static enum mg_err
scalar_intv(struct mg_store *s, const char *name, int n, const char *const *vals, int *out)
{
	PGresult *r;
	enum mg_err rc = exec_prepared(s, name, n, vals, &r);

	*out = 0;
	if (rc != MG_OK)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return MG_ERR_DB;
	}
	*out = strcmp(PQgetvalue(r, 0, 0), "t") == 0 ? 1 : atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return MG_OK;
}

/* Runs a one-row, one-column statement of no parameters whose value is a
 * bigint (not NULL) into *out. */
static enum mg_err
scalar_ll(struct mg_store *s, const char *name, long long *out)
{
	PGresult *r;
	enum mg_err rc = exec_prepared(s, name, 0, NULL, &r);

	if (rc != MG_OK)
		return rc;
	if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
		PQclear(r);
		return MG_ERR_DB;
	}
	*out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return MG_OK;
}

/* scalar_intv with one parameter. */
static enum mg_err
scalar_int(struct mg_store *s, const char *name, const char *arg, int *out)
{
	const char *vals[1] = { arg };

	return scalar_intv(s, name, 1, vals, out);
}

/* An amount Postgres wrote (len bytes) in 1e-9 USD; 0 when it is none. */
static long long
nano_of(const char *text, size_t len)
{
	long long v = 0;

	return mg_money_numeric_nano(text, len, &v) == 0 ? v : 0;
}

enum mg_err
mg_store_reap(struct mg_store *s, int grace, int lease_timeout, int *n, int *n_leases,
    unsigned long long *charged)
{
	char arg[16], arg2[16];
	const char *vals[2] = { arg, arg2 };
	PGresult *r;
	enum mg_err rc;

	*n = 0;
	*n_leases = 0;
	*charged = 0;
	snprintf(arg, sizeof(arg), "%d", grace);
	snprintf(arg2, sizeof(arg2), "%d", lease_timeout);
	rc = exec_prepared(s, "mg_reap", 2, vals, &r);
	if (rc != MG_OK)
		return rc;
	if (PQntuples(r) != 1 || PQnfields(r) != 3) {
		PQclear(r);
		return MG_ERR_DB;
	}
	*n = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
	*charged = (unsigned long long)nano_of(PQgetvalue(r, 0, 1),
	    (size_t)PQgetlength(r, 0, 1));
	*n_leases = (int)strtol(PQgetvalue(r, 0, 2), NULL, 10);
	PQclear(r);
	return MG_OK;
}

enum mg_err
mg_store_catalog_claim(struct mg_store *s, int interval, int *claimed)
{
	char arg[16];

	snprintf(arg, sizeof(arg), "%d", interval);
	return scalar_int(s, "mg_catalog_claim", arg, claimed);
}

enum mg_err
mg_store_catalog_replace(struct mg_store *s, const char *models_json, const char *upstreams,
    const char *synced, int *n)
{
	const char *vals[3] = { models_json, upstreams, synced };
	PGresult *r = NULL;
	enum mg_err rc = exec_prepared(s, "mg_catalog_replace", 3, vals, &r);

	*n = 0;
	if (rc == MG_OK && PQntuples(r) == 1)
		*n = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return rc;
}

enum mg_err
mg_store_model_list(struct mg_store *s, long long project_id, char **list, char **allowed)
{
	char arg[24];
	const char *vals[1] = { arg };
	PGresult *r;
	enum mg_err rc;

	*list = NULL;
	*allowed = NULL;
	snprintf(arg, sizeof(arg), "%lld", project_id);
	rc = exec_prepared(s, "mg_models", 1, vals, &r);
	if (rc != MG_OK)
		return rc;
	if (PQntuples(r) == 1) {
		if (!PQgetisnull(r, 0, 0))
			*list = strdup(PQgetvalue(r, 0, 0));
		*allowed = strdup(PQgetvalue(r, 0, 1));
		if ((!PQgetisnull(r, 0, 0) && *list == NULL) || *allowed == NULL) {
			free(*list);
			free(*allowed);
			*list = *allowed = NULL;
			rc = MG_ERR_NOMEM;
		}
	} else {
		rc = MG_ERR_AUTH;
	}
	PQclear(r);
	return rc;
}

struct settle_batch {
	const struct mg_usage *const *u;
	const int *billable;
};

static void
fill_settlement(struct mg_jw *w, int i, const void *ctx)
{
	const struct settle_batch *b = ctx;
	const struct mg_usage *u = b->u[i];
	const struct mg_lease_ticket *t = &u->lease;

	put_str(w, "id", u->request_id);
	put_int(w, "st", u->status);
	put_str(w, "et", u->error_type);
	put_int(w, "pt", u->prompt_tokens);
	put_int(w, "ct", u->completion_tokens);
	put_int(w, "tt", u->total_tokens);
	put_str(w, "c", str_or_null(u->cost));
	put_bool(w, "b", b->billable[i]);
	put_str(w, "u", str_or_null(u->upstream_id));
	put_str(w, "pv", str_or_null(u->provider));
	put_int(w, "l", u->latency_ms);
	put_int(w, "f", u->ttft_ms);
	put_bool(w, "r", u->check);
	if (t->lease_id > 0) {
		/* admitted from a lease: what its pending row would hold */
		char when[MG_CLOCK_ISO_US];

		put_int(w, "L", t->lease_id);
		put_int(w, "pid", u->project_id);
		put_int(w, "kid", u->key_id);
		put_str(w, "m", u->model);
		put_str(w, "e", u->endpoint);
		put_bool(w, "s", u->stream);
		put_str(w, "rv", t->reserved);
		put_int(w, "rt", t->reserved_tokens);
		put_int(w, "pe", t->prompt_estimate);
		put_str(w, "ap", t->prompt_price);
		put_str(w, "ac", t->completion_price);
		put_str(w, "at", mg_clock_iso_us(t->admitted_us, when) == 0 ? when : NULL);
		if (t->tight)
			put_bool(w, "gb", 1);
	}
	if (u->upstream == NULL)
		return;
	/* the upstream that served it; what the common case needs no more of
	 * is left out, as each member costs Postgres a few µs a row to read:
	 * the calls when there was one and it served (the row's own upstream,
	 * status and latency say it all), the prices of the upstream that
	 * served when the plan had no other call (the admission's are its) */
	put_str(w, "up", u->upstream);
	if (u->no_recon)
		put_bool(w, "nr", 1);
	if (u->n_attempts > 1 || (u->n_attempts == 1 && u->attempts[0].error != NULL))
		put_attempts(w, u);
	if (u->n_cands <= 1)
		return;
	put_str(w, "sm", str_or_null(u->served_model));
	put_str(w, "pp", str_or_null(u->served_prompt_price));
	put_str(w, "cp", str_or_null(u->served_completion_price));
	put_bool(w, "g", u->served_config_prices);
}

/* Runs the statement name on the JSON array of n objects that fill makes,
 * whose value is an integer (into *out). */
static enum mg_err
batch_call(struct mg_store *s, const char *name, int n,
    void (*fill)(struct mg_jw *w, int i, const void *ctx), const void *ctx, int *out)
{
	struct mg_buf text;
	enum mg_err rc;

	*out = 0;
	mg_buf_init(&text, BATCH_TEXT_MAX);
	rc = batch_text(&text, n, fill, ctx);
	if (rc == MG_OK)
		rc = scalar_int(s, name, mg_buf_str(&text), out);
	mg_buf_free(&text);
	return rc;
}

/* The next element of the text of a Postgres array whose elements are
 * never quoted (request ids, numbers): *p is at its '{' or at the ','
 * before the element, and moves past it.  0 with the element in
 * *elem and *len, or -1 at the end (or at something else). */
static int
array_next(const char **p, const char **elem, size_t *len)
{
	const char *q = *p;

	if (*q != '{' && *q != ',')
		return -1;
	q++;
	if (*q == '}' || *q == '"' || *q == '\0')
		return -1;
	*elem = q;
	*len = strcspn(q, ",}");
	*p = q + *len;
	return 0;
}

/* A batch's request id and its place, for mg_store_read_charged's index. */
struct request_at {
	const char *id;
	int i;
};

static int
cmp_request_at(const void *a, const void *b)
{
	return strcmp(((const struct request_at *)a)->id, ((const struct request_at *)b)->id);
}

/* What bsearch looks for: an id of the answer, not terminated. */
struct id_text {
	const char *p;
	size_t len;
};

static int
cmp_id_text(const void *key, const void *elem)
{
	const struct id_text *k = key;
	const char *id = ((const struct request_at *)elem)->id;
	int c = strncmp(k->p, id, k->len);

	return c != 0 ? c : id[k->len] == '\0' ? 0 : -1;
}

/* See store.h.  The ids are found through an index sorted once: a scan
 * for each was O(n^2), half a million string compares for a batch of
 * 1024 (the answer came back in the batch's order reversed). */
void
mg_store_read_charged(const char *ids, const char *costs, const struct mg_usage *const *u, int n,
    unsigned long long *charged)
{
	struct request_at *index = n > 1 ? malloc((size_t)n * sizeof(*index)) : NULL;
	const char *id, *cost;
	size_t idlen, costlen;
	int i;

	for (i = 0; index != NULL && i < n; i++) {
		index[i].id = u[i]->request_id;
		index[i].i = i;
	}
	if (index != NULL)
		qsort(index, (size_t)n, sizeof(*index), cmp_request_at);
	while (array_next(&ids, &id, &idlen) == 0 && array_next(&costs, &cost, &costlen) == 0) {
		long long v = nano_of(cost, costlen);
		int at = -1;

		if (index != NULL) {
			struct id_text key = { id, idlen };
			const struct request_at *hit = bsearch(&key, index, (size_t)n,
			    sizeof(*index), cmp_id_text);

			if (hit != NULL)
				at = hit->i;
		} else {
			/* one, or no memory for the index */
			for (i = 0; i < n && at < 0; i++)
				if (strlen(u[i]->request_id) == idlen &&
				    memcmp(u[i]->request_id, id, idlen) == 0)
					at = i;
		}
		if (at >= 0)
			charged[at] = v > 0 ? (unsigned long long)v : 0;
	}
	free(index);
}

/* Runs the settle statement name (nfields columns: settled, ids, costs,
 * then the caller's) on n settlements; *r is its one row for the caller
 * to read further (PQclear it), NULL on failure. */
static enum mg_err
settle_call(struct mg_store *s, const char *name, int nfields, const struct mg_usage *const *u,
    const int *billable, int n, int *settled, unsigned long long *charged, PGresult **r)
{
	struct settle_batch b = { u, billable };
	struct mg_buf text;
	const char *vals[1];
	enum mg_err rc;
	int i;

	*r = NULL;
	*settled = 0;
	for (i = 0; charged != NULL && i < n; i++)
		charged[i] = 0;
	mg_buf_init(&text, BATCH_TEXT_MAX);
	rc = batch_text(&text, n, fill_settlement, &b);
	if (rc == MG_OK) {
		vals[0] = mg_buf_str(&text);
		rc = exec_prepared(s, name, 1, vals, r);
	}
	mg_buf_free(&text);
	if (rc != MG_OK)
		return rc;
	if (PQntuples(*r) != 1 || PQnfields(*r) != nfields) {
		snprintf(last_error, sizeof(last_error), "%s returned %d rows of %d columns", name,
		    PQntuples(*r), PQnfields(*r));
		PQclear(*r);
		*r = NULL;
		return MG_ERR_DB;
	}
	*settled = (int)strtol(PQgetvalue(*r, 0, 0), NULL, 10);
	if (charged != NULL)
		mg_store_read_charged(PQgetvalue(*r, 0, 1), PQgetvalue(*r, 0, 2), u, n, charged);
	return MG_OK;
}

enum mg_err
mg_store_settle_batch(struct mg_store *s, const struct mg_usage *const *u, const int *billable,
    int n, int *settled, unsigned long long *charged)
{
	PGresult *r;
	enum mg_err rc = settle_call(s, "mg_settle_batch", 3, u, billable, n, settled, charged, &r);

	PQclear(r);
	return rc;
}

enum mg_err
mg_store_settle(struct mg_store *s, const struct mg_usage *u, int billable, int *settled,
    unsigned long long *charged)
{
	return mg_store_settle_batch(s, &u, &billable, 1, settled, charged);
}

enum mg_err
mg_store_ping(struct mg_store *s)
{
	PGresult *r;
	enum mg_err rc = exec_prepared(s, "mg_ping", 0, NULL, &r);

	if (rc == MG_OK)
		PQclear(r);
	return rc;
}

enum mg_err
mg_store_usage_partitions(struct mg_store *s, int *made)
{
	PGresult *r;
	enum mg_err rc = exec_prepared(s, "mg_partitions", 0, NULL, &r);

	*made = 0;
	if (rc != MG_OK)
		return rc;
	*made = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return MG_OK;
}

enum mg_err
mg_store_rollup_compact(struct mg_store *s, int *folded)
{
	PGresult *r;
	enum mg_err rc = exec_prepared(s, "mg_compact", 0, NULL, &r);

	*folded = 0;
	if (rc != MG_OK)
		return rc;
	*folded = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return MG_OK;
}

enum mg_err
mg_store_auth_reader(struct mg_store *s, const char *key_hash_hex, struct mg_reader *out)
{
	const char *vals[1] = { key_hash_hex };
	PGresult *r;
	enum mg_err rc = exec_prepared(s, "mg_auth_reader", 1, vals, &r);

	if (rc != MG_OK)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return MG_ERR_AUTH;
	}
	out->admin = strcmp(PQgetvalue(r, 0, 0), "admin") == 0;
	mg_text_copy(out->project, sizeof(out->project), PQgetvalue(r, 0, 1));
	mg_text_copy(out->key_prefix, sizeof(out->key_prefix), PQgetvalue(r, 0, 2));
	PQclear(r);
	return MG_OK;
}

enum mg_err
mg_store_report(struct mg_store *s, const struct mg_report_call *c, char **json)
{
	PGresult *r;
	enum mg_err rc = exec_prepared(s, c->name, c->nparams, c->params, &r);

	*json = NULL;
	if (rc == MG_ERR_DB && mg_report_sqlstate_err(last_state) == MG_ERR_INVALID)
		return MG_ERR_INVALID;
	if (rc != MG_OK)
		return rc;
	*json = PQntuples(r) == 1 ? strdup(PQgetvalue(r, 0, 0)) : NULL;
	PQclear(r);
	if (*json == NULL) {
		snprintf(last_error, sizeof(last_error), "a report without its answer");
		return MG_ERR_DB;
	}
	return MG_OK;
}

enum mg_err
mg_store_recon_claim(struct mg_store *s, int max, int lease, struct mg_recon_row **rows, int *n)
{
	char a[16], b[16];
	const char *vals[2] = { a, b };
	PGresult *r;
	enum mg_err rc;
	int i, m;

	*rows = NULL;
	*n = 0;
	snprintf(a, sizeof(a), "%d", max);
	snprintf(b, sizeof(b), "%d", lease);
	rc = exec_prepared(s, "mg_recon_claim", 2, vals, &r);
	if (rc != MG_OK)
		return rc;
	m = PQntuples(r);
	if (m > 0 && (*rows = calloc((size_t)m, sizeof(**rows))) == NULL) {
		PQclear(r);
		return MG_ERR_NOMEM;
	}
	for (i = 0; i < m; i++) {
		struct mg_recon_row *w = &(*rows)[i];

		text_or_empty(r, i, 0, w->request_id, sizeof(w->request_id));
		text_or_empty(r, i, 1, w->created_at, sizeof(w->created_at));
		text_or_empty(r, i, 2, w->upstream_id, sizeof(w->upstream_id));
		w->tries = (int)int_or(r, i, 3, 0);
	}
	*n = m;
	PQclear(r);
	return MG_OK;
}

/* Runs a statement whose one value is text into out (len bytes). */
static enum mg_err
scalar_text(struct mg_store *s, const char *name, int n, const char *const *vals, char *out,
    size_t len)
{
	PGresult *r;
	enum mg_err rc = exec_prepared(s, name, n, vals, &r);

	out[0] = '\0';
	if (rc != MG_OK)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return MG_ERR_DB;
	}
	text_or_empty(r, 0, 0, out, len);
	PQclear(r);
	return MG_OK;
}

enum mg_err
mg_store_recon_apply(struct mg_store *s, const struct mg_recon_row *w, const char *billed,
    char *state, size_t len, long long *adjustment)
{
	const char *vals[3] = { w->request_id, w->created_at, billed };
	PGresult *r;
	enum mg_err rc = exec_prepared(s, "mg_recon_apply", 3, vals, &r);

	state[0] = '\0';
	*adjustment = 0;
	if (rc != MG_OK)
		return rc;
	if (PQntuples(r) != 1 || PQnfields(r) != 2) {
		PQclear(r);
		return MG_ERR_DB;
	}
	text_or_empty(r, 0, 0, state, len);
	if (!PQgetisnull(r, 0, 1))
		*adjustment = nano_of(PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1));
	PQclear(r);
	return MG_OK;
}

enum mg_err
mg_store_recon_watermark(struct mg_store *s, long long *unix_seconds)
{
	enum mg_err rc = scalar_ll(s, "mg_recon_watermark", unix_seconds);

	if (rc != MG_OK)
		*unix_seconds = 0;
	return rc;
}

enum mg_err
mg_store_recon_retry(struct mg_store *s, const struct mg_recon_row *w, char *state, size_t len)
{
	const char *vals[2] = { w->request_id, w->created_at };

	return scalar_text(s, "mg_recon_retry", 2, vals, state, len);
}

/* The count the statement name (no parameters) returns, into *n. */
static enum mg_err
scalar_count(struct mg_store *s, const char *name, long long *n)
{
	char out[32];
	enum mg_err rc = scalar_text(s, name, 0, NULL, out, sizeof(out));

	*n = rc == MG_OK ? strtoll(out, NULL, 10) : 0;
	return rc;
}

enum mg_err
mg_store_recon_unsupported(struct mg_store *s, long long *n)
{
	return scalar_count(s, "mg_recon_unsupported", n);
}

enum mg_err
mg_store_recon_dequeue(struct mg_store *s, long long *n)
{
	return scalar_count(s, "mg_recon_dequeue", n);
}

struct note_batch {
	const char *const *ids;
	const char *const *gens;
};

static void
fill_note(struct mg_jw *w, int i, const void *ctx)
{
	const struct note_batch *b = ctx;

	put_str(w, "id", b->ids[i]);
	put_str(w, "u", b->gens[i]);
}

enum mg_err
mg_store_recon_note_ids(struct mg_store *s, const char *const *ids, const char *const *gens,
    int n, int *kept)
{
	struct note_batch b = { ids, gens };

	return batch_call(s, "mg_recon_note_ids", n, fill_note, &b, kept);
}

enum mg_err
mg_store_recon_close_claim(struct mg_store *s, int after, int lease, char *day, size_t len)
{
	char a[16], b[16];
	const char *vals[2] = { a, b };

	snprintf(a, sizeof(a), "%d", after);
	snprintf(b, sizeof(b), "%d", lease);
	return scalar_text(s, "mg_recon_close_claim", 2, vals, day, len);
}

enum mg_err
mg_store_recon_close_record(struct mg_store *s, const char *day, const char *activity,
    const char *credits, char **json)
{
	const char *vals[3] = { day, activity, credits };
	PGresult *r;
	enum mg_err rc;

	*json = NULL;
	rc = exec_prepared(s, "mg_recon_close_record", 3, vals, &r);
	if (rc != MG_OK)
		return rc;
	if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		*json = strdup(PQgetvalue(r, 0, 0));
	else
		rc = MG_ERR_DB;
	PQclear(r);
	return rc == MG_OK && *json == NULL ? MG_ERR_NOMEM : rc;
}

/* Reads the leases mg_settle_lease_batch returned (three arrays' text:
 * ids, spends, seqs) into leases, at most max; their count. */
static int
read_leases(const char *ids, const char *spends, const char *seqs, struct mg_lease_state *leases,
    int max)
{
	const char *id, *spend, *seq;
	size_t idlen, spendlen, seqlen;
	int k;

	for (k = 0; k < max && array_next(&ids, &id, &idlen) == 0 &&
	    array_next(&spends, &spend, &spendlen) == 0 &&
	    array_next(&seqs, &seq, &seqlen) == 0; k++) {
		if (spendlen >= sizeof(leases[k].spend))
			break;
		leases[k].id = strtoll(id, NULL, 10);
		leases[k].seq = strtoll(seq, NULL, 10);
		memcpy(leases[k].spend, spend, spendlen);
		leases[k].spend[spendlen] = '\0';
	}
	return k;
}

enum mg_err
mg_store_settle_lease_batch(struct mg_store *s, const struct mg_usage *const *u,
    const int *billable, int n, int *settled, unsigned long long *charged,
    struct mg_lease_state *leases, int *n_leases)
{
	PGresult *r;
	enum mg_err rc = settle_call(s, "mg_settle_lease_batch", 6, u, billable, n, settled,
	    charged, &r);

	*n_leases = 0;
	if (rc == MG_OK)
		*n_leases = read_leases(PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 4),
		    PQgetvalue(r, 0, 5), leases, n);
	PQclear(r);
	return rc;
}

enum mg_err
mg_store_lease_renew(struct mg_store *s, const long long *ids, int n, int *live)
{
	char *arg = malloc((size_t)n * 22 + 3);
	const char *vals[1];
	const char *p, *id;
	size_t idlen, len = 0;
	PGresult *r = NULL;
	enum mg_err rc = MG_ERR_NOMEM;
	int i;

	for (i = 0; i < n; i++)
		live[i] = 0;
	if (arg == NULL)
		goto out;
	arg[len++] = '{';
	for (i = 0; i < n; i++)
		len += (size_t)sprintf(arg + len, "%s%lld", i == 0 ? "" : ",", ids[i]);
	arg[len++] = '}';
	arg[len] = '\0';
	vals[0] = arg;
	rc = exec_prepared(s, "mg_lease_renew", 1, vals, &r);
	if (rc != MG_OK)
		goto out;
	if (PQntuples(r) != 1) {
		rc = MG_ERR_DB;
		goto out;
	}
	for (p = PQgetvalue(r, 0, 0); array_next(&p, &id, &idlen) == 0; ) {
		long long v = strtoll(id, NULL, 10);

		for (i = 0; i < n; i++)
			if (ids[i] == v)
				live[i] = 1;
	}
out:
	PQclear(r);
	free(arg);
	return rc;
}

enum mg_err
mg_store_admission_changes(struct mg_store *s, long long *n)
{
	enum mg_err rc = scalar_ll(s, "mg_admission_changes", n);

	if (rc != MG_OK)
		*n = -1;
	return rc;
}

enum mg_err
mg_store_lease_release(struct mg_store *s, long long id, long long seq, long long requests,
    long long tokens, int *released)
{
	char a[24], b[24], c[24], d[24];
	const char *vals[4] = { a, d, b, c };

	snprintf(a, sizeof(a), "%lld", id);
	snprintf(d, sizeof(d), "%lld", seq);
	snprintf(b, sizeof(b), "%lld", requests > 0 ? requests : 0);
	snprintf(c, sizeof(c), "%lld", tokens > 0 ? tokens : 0);
	return scalar_intv(s, "mg_lease_release", 4, vals, released);
}
