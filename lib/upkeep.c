/* upkeep.c -- A responder's upkeep thread: the reaper of dead responders'
 * reservations, the scheduled catalog refresh, the usage partitions of
 * the months ahead, the compaction of the usage rollups, the daily close
 * against the upstream's activity, the reconciled-through watermark of
 * the metrics and the giving back of freed memory, each on its own
 * interval, woken once a second.  Started and stopped by responder.c. */
#include "config.h"

#include <errno.h>
#ifdef HAVE_MALLOC_H
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "apikey.h"
#include "catalog.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "reconcile.h"
#include "upkeep.h"

/* While requests keep running, the free memory of the malloc heaps is
 * given back at most this often (seconds); a process that has been idle
 * for a whole second gives it back then. */
#define TRIM_BUSY_INTERVAL 30

/* Blocks from this size are mapped on their own, and free memory at an
 * arena's top from this size goes back to the system. */
#define MALLOC_LARGE (128 * 1024)

/* How often (seconds) a process makes sure the usage partitions of this
 * month and the next two exist: they are made weeks before they are
 * needed, so hourly is plenty. */
#define PARTITION_INTERVAL 3600

/* How often (seconds) a process folds the settlements' pending rollup
 * rows and offers to fold the usage quarters into days and months.  Every
 * report reads all the pending rows (a settlement batch each, no index),
 * so they must stay few: 3,800 of them (60,000 requests, under a minute of
 * a busy host) took 108 ms of each report.  A fold takes Postgres about
 * 10 us a request folded: after 10 s at 8,000 req/s it held a core for
 * 0.85 s, and the requests that came then waited for the other one.
 * When there is nothing to fold the call reads two rows and takes no
 * lock. */
#define COMPACT_INTERVAL 2

/* The longest the upkeep waits for one upstream call (seconds): a slow
 * upstream must not hold up the reaper and the compaction. */
#define UPKEEP_CALL_TIMEOUT 30

/* How often (seconds) a process reads the reconciled-through watermark
 * for its metrics. */
#define WATERMARK_INTERVAL 15

/* How often (seconds) a process offers to close a UTC day against the
 * upstream's activity, and how long the one that takes a day has to
 * close it before another may (seconds). */
#define CLOSE_INTERVAL 60
#define CLOSE_LEASE 600
#define CLOSE_MAX_DAYS 31

struct mg_upkeep {
	const struct mg_conf *conf;
	struct mg_store *store;
	void (*activity)(void *arg, unsigned long *ended, int *serving);
	void *arg;
	pthread_t tid;
	pthread_mutex_t lock;
	pthread_cond_t stop;     /* signalled when stopping is set */
	int stopping;
};

/* When the upkeep thread last gave memory back. */
struct trim_state {
	unsigned long seen;      /* requests ended, at the last tick */
	unsigned long trimmed;   /* requests ended, at the last trim */
	long last;               /* upkeep seconds, at the last trim */
};

/* Sleeps up to seconds, or until stopped; 1 when stopping. */
static int
nap(struct mg_upkeep *u, int seconds)
{
	struct timespec until;
	int stopping;

	/* the condition waits on the default clock, CLOCK_REALTIME */
	mg_clock_deadline(CLOCK_REALTIME, seconds * 1000L, &until);
	pthread_mutex_lock(&u->lock);
	while (!u->stopping && pthread_cond_timedwait(&u->stop, &u->lock, &until) != ETIMEDOUT)
		;
	stopping = u->stopping;
	pthread_mutex_unlock(&u->lock);
	return stopping;
}

/* Settles the reservations of responders that died holding them. */
static void
reap(struct mg_upkeep *u)
{
	unsigned long long charged = 0;
	int n = 0, leases = 0;

	if (mg_store_reap(u->store, u->conf->reap_after, u->conf->lease_timeout, &n, &leases,
	    &charged) != MG_OK) {
		mg_log(MG_LOG_WARN, NULL, "reaper: %s", mg_store_last_error());
		return;
	}
	mg_metrics_charge(NULL, NULL, charged);
	if (n > 0)
		mg_log(MG_LOG_WARN, NULL, "reaper: settled %d requests lost with their "
		    "responder, at their reserved amount", n);
	if (leases > 0)
		mg_log(MG_LOG_WARN, NULL, "reaper: charged %d leases of responders gone (not "
		    "renewed for %d s), whole", leases, u->conf->lease_timeout);
}

/* Reads the reconciled-through watermark into the metrics. */
static void
read_watermark(struct mg_upkeep *u)
{
	long long t = 0;

	if (mg_store_recon_watermark(u->store, &t) != MG_OK)
		mg_log(MG_LOG_DEBUG, NULL, "watermark not read: %s", mg_store_last_error());
	else
		mg_metrics_watermark(t);
}

/* Makes the usage partitions of the months ahead that are missing. */
static void
make_partitions(struct mg_upkeep *u)
{
	int n = 0;

	if (mg_store_usage_partitions(u->store, &n) != MG_OK)
		mg_log(MG_LOG_WARN, NULL, "usage partitions: %s", mg_store_last_error());
	else if (n > 0)
		mg_log(MG_LOG_INFO, NULL, "usage partitions: made %d for the months ahead", n);
}

/* Folds the usage quarters behind the frontier into days and months, and
 * schedules the lookups settlement queued (which the reconciliation's
 * claim does too; this drains the queue when nothing reconciles). */
static void
compact_rollups(struct mg_upkeep *u)
{
	int folded = 0;
	long long queued = 0;

	if (mg_store_rollup_compact(u->store, &folded) != MG_OK)
		mg_log(MG_LOG_WARN, NULL, "usage rollups not compacted: %s", mg_store_last_error());
	else if (folded)
		mg_log(MG_LOG_DEBUG, NULL, "usage rollups compacted");
	if (mg_store_recon_dequeue(u->store, &queued) != MG_OK)
		mg_log(MG_LOG_WARN, NULL, "queued lookups not scheduled: %s",
		    mg_store_last_error());
	else if (queued > 0)
		mg_log(MG_LOG_DEBUG, NULL, "%lld queued lookups scheduled", queued);
}

/* Looks up to reconcile.max_rps generations up (a second's worth). */
static void
reconcile(struct mg_upkeep *u, struct mg_upstream *up, int *no_api)
{
	struct mg_recon_pass p;
	enum mg_err rc = mg_reconcile_pass(u->store, up, (size_t)u->conf->up_max_response,
	    u->conf->recon_max_rps, no_api, &p);

	/* what the pass did before it stopped counts either way */
	mg_metrics_count(MG_M_RECON_CONFIRMED, (uint64_t)p.confirmed);
	mg_metrics_count(MG_M_RECON_ADJUSTED, (uint64_t)p.adjusted);
	mg_metrics_count(MG_M_RECON_RETRIED, (uint64_t)p.retried);
	mg_metrics_count(MG_M_RECON_MISSING, (uint64_t)p.missing);
	mg_metrics_count(MG_M_RECON_FAILED, (uint64_t)p.failed);
	mg_metrics_count(MG_M_RECON_DRIFT_UP_NANOUSD, p.raised);
	mg_metrics_count(MG_M_RECON_DRIFT_DOWN_NANOUSD, p.lowered);
	if (rc != MG_OK)
		mg_log(MG_LOG_WARN, NULL, "reconciliation: %s", mg_store_last_error());
	else if (p.looked > 0 || p.unsupported > 0)
		mg_log(MG_LOG_DEBUG, NULL, "reconciliation: %d looked up, %d confirmed, "
		    "%d adjusted, %d to retry, %d missing, %d failed, %lld unsupported",
		    p.looked, p.confirmed, p.adjusted, p.retried, p.missing, p.failed,
		    p.unsupported);
}

/* Closes the UTC days due for their close, oldest first, that this
 * process wins the claim of (after a while without a close, the whole
 * month's: the upstream keeps 30 days of activity). */
static void
close_days(struct mg_upkeep *u, struct mg_upstream *mgmt, const char *key_hash)
{
	char day[16], err[MG_ERR_DETAIL_LEN], *json = NULL;
	int i;

	for (i = 0; i < CLOSE_MAX_DAYS; i++) {
		if (mg_store_recon_close_claim(u->store, u->conf->recon_close_after, CLOSE_LEASE,
		    day, sizeof(day)) != MG_OK) {
			mg_log(MG_LOG_WARN, NULL, "daily close: %s", mg_store_last_error());
			return;
		}
		if (day[0] == '\0')
			return;
		if (mg_recon_close(u->store, mgmt, key_hash, (size_t)u->conf->up_max_response,
		    day, &json, err, sizeof(err)) != MG_OK) {
			mg_log(MG_LOG_WARN, NULL, "daily close of %s: %s; tried again in %d minutes",
			    day, err, CLOSE_LEASE / 60);
			return;
		}
		mg_log(MG_LOG_INFO, NULL, "daily close of %s recorded (modelgate reconcile "
		    "--since %s)", day, day);
		free(json);
	}
}

/* Refreshes the catalog when this process wins the claim. */
static void
refresh_catalog(struct mg_upkeep *u, struct mg_upstream *up)
{
	const struct mg_conf *c = u->conf;
	char err[MG_ERR_DETAIL_LEN], *rows = NULL, *names = NULL, *synced = NULL;
	int claimed = 0, n = 0;

	(void)up;
	if (mg_store_catalog_claim(u->store, c->catalog_refresh, &claimed) != MG_OK || !claimed)
		return;
	if (mg_catalog_fetch_all(c, &rows, &names, &synced, &n, err, sizeof(err)) != MG_OK) {
		mg_log(MG_LOG_WARN, NULL, "catalog refresh failed: %s", err);
		return;
	}
	if (err[0] != '\0')
		mg_log(MG_LOG_WARN, NULL, "catalog refresh: %s (their models are kept)", err);
	if (mg_store_catalog_replace(u->store, rows, names, synced, &n) != MG_OK)
		mg_log(MG_LOG_WARN, NULL, "catalog refresh not stored: %s", mg_store_last_error());
	else
		mg_log(MG_LOG_INFO, NULL, "catalog refreshed: %d models", n);
	free(rows);
	free(names);
	free(synced);
}

/* Hands the free pages of the malloc heaps back to the system once
 * requests have ended since the last time: as soon as the process has
 * been idle for a whole tick, and every TRIM_BUSY_INTERVAL seconds while
 * it stays busy. */
static void
trim_memory(struct mg_upkeep *u, long now, struct trim_state *ts)
{
	unsigned long ended = 0;
	int serving = 0, quiet;

	u->activity(u->arg, &ended, &serving);
	quiet = serving == 0 && ended == ts->seen;
	ts->seen = ended;
	if (ended == ts->trimmed || (!quiet && now - ts->last < TRIM_BUSY_INTERVAL))
		return;
	ts->trimmed = ended;
	ts->last = now;
	/* and, once quiet, the pooled connections that grew large buffers
	 * (a large report's answer, a settlement batch) */
	if (quiet)
		mg_store_shed(u->store);
#ifdef HAVE_MALLOC_TRIM
	malloc_trim(0);
#endif
}

static void *
upkeep_main(void *arg)
{
	struct mg_upkeep *u = arg;
	const struct mg_conf *c = u->conf;
	struct mg_upstream *up = c->catalog_refresh > 0 || c->recon_max_rps > 0 ?
	    mg_upstream_new(c) : NULL;
	struct trim_state trim = { 0, 0, 0 };
	struct mg_upstream *mgmt = c->up_mgmt_key != NULL ?
	    mg_upstream_new_key(c, c->up_mgmt_key) : NULL;
	long now = 0, next_reap = 1, next_catalog = 1, next_partitions = 2, next_compact = 3;
	long next_close = 5, next_watermark = 1;
	int no_api = 0;
	char key_hash[MG_APIKEY_HASH_HEX_LEN + 1] = "";

	/* lookups and the model list: short calls, in the way of nothing */
	if (up != NULL)
		mg_upstream_set_timeout(up, UPKEEP_CALL_TIMEOUT);
	if (mgmt != NULL)
		mg_upstream_set_timeout(mgmt, UPKEEP_CALL_TIMEOUT);
	/* the close counts what the gateway's own provider key spent */
	if (c->up_key != NULL &&
	    mg_apikey_hash_hex(c->up_key, strlen(c->up_key), key_hash) != MG_OK)
		key_hash[0] = '\0';

	while (!nap(u, 1)) {
		now++;
		trim_memory(u, now, &trim);
		if (c->reap_interval > 0 && now >= next_reap) {
			next_reap = now + c->reap_interval;
			reap(u);
		}
		if (now >= next_partitions) {
			next_partitions = now + PARTITION_INTERVAL;
			make_partitions(u);
		}
		if (now >= next_compact) {
			next_compact = now + COMPACT_INTERVAL;
			compact_rollups(u);
		}
		if (now >= next_watermark) {
			next_watermark = now + WATERMARK_INTERVAL;
			read_watermark(u);
		}
		if (up != NULL && c->recon_max_rps > 0)
			reconcile(u, up, &no_api);
		if (mgmt != NULL && now >= next_close) {
			next_close = now + CLOSE_INTERVAL;
			close_days(u, mgmt, key_hash);
		}
		if (up != NULL && c->catalog_refresh > 0 && now >= next_catalog) {
			next_catalog = now + (c->catalog_refresh < 60 ? c->catalog_refresh : 60);
			refresh_catalog(u, up);
		}
	}
	mg_upstream_free(mgmt);
	mg_upstream_free(up);
	return NULL;
}

struct mg_upkeep *
mg_upkeep_start(const struct mg_conf *conf, struct mg_store *store,
    void (*activity)(void *arg, unsigned long *ended, int *serving), void *arg)
{
	struct mg_upkeep *u = calloc(1, sizeof(*u));

	if (u == NULL)
		return NULL;
	u->conf = conf;
	u->store = store;
	u->activity = activity;
	u->arg = arg;
	pthread_mutex_init(&u->lock, NULL);
	pthread_cond_init(&u->stop, NULL);
	if (pthread_create(&u->tid, NULL, upkeep_main, u) != 0) {
		pthread_mutex_destroy(&u->lock);
		pthread_cond_destroy(&u->stop);
		free(u);
		return NULL;
	}
	return u;
}

void
mg_upkeep_stop(struct mg_upkeep *u)
{
	if (u == NULL)
		return;
	pthread_mutex_lock(&u->lock);
	u->stopping = 1;
	pthread_cond_broadcast(&u->stop);
	pthread_mutex_unlock(&u->lock);
	pthread_join(u->tid, NULL);
	pthread_mutex_destroy(&u->lock);
	pthread_cond_destroy(&u->stop);
	free(u);
}

void
mg_upkeep_tune_malloc(int arenas)
{
#if defined(HAVE_MALLOPT) && defined(M_TRIM_THRESHOLD) && defined(M_MMAP_THRESHOLD) && \
    defined(M_MXFAST)
	/* Fixed thresholds: glibc otherwise raises both after the first
	 * large block it freed (a settlement batch's JSON, a refresher's
	 * room), up to 64 MiB, and an arena other than the main one keeps
	 * up to twice that at its top, which malloc_trim does not give
	 * back: megabytes of an idle process.  No fast bins: small blocks
	 * freed merge at once (the threads' caches still keep a few of each
	 * size), so that a burst's end shrinks the arena's top instead of
	 * growing it when malloc_trim merges them, untrimmed, later. */
	if (mallopt(M_MMAP_THRESHOLD, MALLOC_LARGE) != 1 ||
	    mallopt(M_TRIM_THRESHOLD, MALLOC_LARGE) != 1 || mallopt(M_MXFAST, 0) != 1)
		mg_log(MG_LOG_WARN, NULL, "cannot fix the malloc thresholds");
#endif
	if (arenas == 0)
		return;
#if defined(HAVE_MALLOPT) && defined(M_ARENA_MAX)
	if (mallopt(M_ARENA_MAX, arenas) != 1)
		mg_log(MG_LOG_WARN, NULL, "cannot limit malloc arenas to %d", arenas);
#else
	mg_log(MG_LOG_INFO, NULL, "server.malloc_arenas: this C library has no arena limit");
#endif
}
