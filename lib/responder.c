/* responder.c -- The FastCGI responder process: its request threads, the
 * upkeep thread's start and stop (lib/upkeep.c), signals and graceful
 * shutdown.
 * Called by app/modelgate-fcgi.c. */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "clock.h"
#include "gateway.h"
#include "log.h"
#include "metrics.h"
#include "metricsapi.h"
#include "responder.h"
#include "store.h"
#include "upkeep.h"

/* A request thread's lifecycle, changed only through set_state(). */
enum thread_state {
	TS_STARTING = 0, /* not yet in accept */
	TS_ACCEPTING,    /* blocked in FCGX_Accept_r: may be woken by a signal */
	TS_SERVING,      /* serving a request: left alone until it is done */
	TS_DONE          /* returned from its loop */
};

struct worker_thread {
	pthread_t tid;
	int started;
	enum thread_state state;
	struct responder *rs;
	struct mg_worker w;
};

struct responder {
	const struct mg_conf *conf;
	struct mg_gateway gw;
	int listen_fd;
	int local_socket;       /* listen_fd is a unix socket */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	int stopping;
	int running;            /* threads not yet TS_DONE */
	int serving;            /* threads in TS_SERVING */
	unsigned long served;   /* times a thread left TS_SERVING */
	struct worker_thread *threads;
	struct mg_upkeep *upkeep;
};

#define WAKE_SIGNAL SIGUSR2

static void
on_wake(int sig)
{
	(void)sig; /* only interrupts accept(); the flag is checked after */
}

static void
set_state(struct worker_thread *t, enum thread_state s)
{
	pthread_mutex_lock(&t->rs->lock);
	if (s == TS_DONE && t->state != TS_DONE)
		t->rs->running--;
	if (s == TS_SERVING && t->state != TS_SERVING) {
		t->rs->serving++;
	} else if (s != TS_SERVING && t->state == TS_SERVING) {
		t->rs->serving--;
		t->rs->served++;
	}
	t->state = s;
	pthread_cond_broadcast(&t->rs->changed);
	pthread_mutex_unlock(&t->rs->lock);
}

static int
is_stopping(struct responder *rs)
{
	int v;

	pthread_mutex_lock(&rs->lock);
	v = rs->stopping;
	pthread_mutex_unlock(&rs->lock);
	return v;
}

static void *
thread_main(void *arg)
{
	struct worker_thread *t = arg;
	struct responder *rs = t->rs;
	FCGX_Request req;

	if (FCGX_InitRequest(&req, rs->listen_fd, 0) != 0) {
		mg_log(MG_LOG_ERROR, NULL, "FCGX_InitRequest failed");
		set_state(t, TS_DONE);
		return NULL;
	}
	while (!is_stopping(rs)) {
		int rc;

		set_state(t, TS_ACCEPTING);
		rc = FCGX_Accept_r(&req);
		set_state(t, TS_SERVING);
		if (rc < 0) {
			if (is_stopping(rs))
				break;
			mg_log(MG_LOG_WARN, NULL, "accept failed (%d); retrying", rc);
			continue;
		}
		mg_gateway_handle(&t->w, &req);
		/* libfcgi closes a connection by shutting down its sending
		 * side and reading until the web server closes its own, so
		 * that a server still sending the body gets no error.  When
		 * the body has been read to its end on a unix socket (which
		 * sends no reset), there is nothing left to wait for: the
		 * connection is closed at once, and the thread takes the next
		 * request without that wait. */
		if (rs->local_socket && FCGX_HasSeenEOF(req.in) == EOF)
			FCGX_Detach(&req);
		FCGX_Finish_r(&req);
		mg_worker_shrink(&t->w);
	}
	FCGX_Free(&req, 1);
	set_state(t, TS_DONE);
	return NULL;
}

/* The upkeep's view of the requests (see mg_upkeep_start). */
static void
activity(void *arg, unsigned long *ended, int *serving)
{
	struct responder *rs = arg;

	pthread_mutex_lock(&rs->lock);
	*ended = rs->served;
	*serving = rs->serving;
	pthread_mutex_unlock(&rs->lock);
}

/* Waits for SIGTERM/SIGINT in the main thread. */
static void
wait_for_stop(void)
{
	sigset_t set;
	int sig = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	while (sigwait(&set, &sig) != 0 || (sig != SIGTERM && sig != SIGINT))
		;
	mg_log(MG_LOG_INFO, NULL, "signal %d: stopping", sig);
}

/* Wakes the threads blocked in accept and waits, up to the grace period,
 * for every thread to leave its loop.  Returns the number still running. */
static int
stop_threads(struct responder *rs)
{
	struct timespec deadline;
	int i, left;

	FCGX_ShutdownPending();
	/* rs->changed waits on the default clock, CLOCK_REALTIME */
	mg_clock_deadline(CLOCK_REALTIME, rs->conf->shutdown_grace * 1000L, &deadline);
	pthread_mutex_lock(&rs->lock);
	rs->stopping = 1;
	while (rs->running > 0) {
		struct timespec tick;

		/* a thread may enter accept just after a wake-up: wake again */
		for (i = 0; i < rs->conf->threads; i++)
			if (rs->threads[i].started && rs->threads[i].state == TS_ACCEPTING)
				pthread_kill(rs->threads[i].tid, WAKE_SIGNAL);
		mg_clock_now(CLOCK_REALTIME, &tick);
		if (!mg_clock_before(&tick, &deadline))
			break;
		mg_clock_add_ms(&tick, 50);
		pthread_cond_timedwait(&rs->changed, &rs->lock, &tick);
	}
	left = rs->running;
	pthread_mutex_unlock(&rs->lock);
	return left;
}

static int
install_signals(void)
{
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		return -1;
	sa.sa_handler = on_wake;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: accept() must return EINTR */
	if (sigaction(WAKE_SIGNAL, &sa, NULL) != 0)
		return -1;
	/* SIGTERM/SIGINT are taken by sigwait in the main thread only; as
	 * they are not at their default, libfcgi leaves them alone */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	return pthread_sigmask(SIG_BLOCK, &set, NULL) == 0 ? 0 : -1;
}

static int
is_unix_socket(int fd)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);

	memset(&sa, 0, sizeof(sa));
	return getsockname(fd, (struct sockaddr *)&sa, &len) == 0 && sa.ss_family == AF_UNIX;
}

int
mg_responder_run(const struct mg_conf *conf, int listen_fd)
{
	struct responder rs;
	int i, left, status = 1;

	memset(&rs, 0, sizeof(rs));
	rs.conf = conf;
	rs.listen_fd = listen_fd;
	rs.local_socket = is_unix_socket(listen_fd);
	pthread_mutex_init(&rs.lock, NULL);
	pthread_cond_init(&rs.changed, NULL);
	if (install_signals() != 0) {
		mg_log(MG_LOG_ERROR, NULL, "cannot install signal handlers: %s", strerror(errno));
		goto out;
	}
	if (FCGX_Init() != 0) {
		mg_log(MG_LOG_ERROR, NULL, "FCGX_Init failed");
		goto out;
	}
	mg_upkeep_tune_malloc(conf->malloc_arenas);
	{
		char path[4096], err[MG_ERR_DETAIL_LEN];

		if (mg_metricsapi_path(conf, listen_fd, path, sizeof(path)) != 0)
			mg_log(MG_LOG_WARN, NULL, "no metrics: the scoreboard's path is too long");
		else if (mg_metrics_attach(path, conf->metrics_per_model, conf->metrics_per_project,
		    err, sizeof(err)) != 0)
			mg_log(MG_LOG_WARN, NULL, "no metrics: %s", err);
		else
			mg_log(MG_LOG_DEBUG, NULL, "metrics scoreboard %s", path);
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		mg_log(MG_LOG_ERROR, NULL, "curl_global_init failed");
		goto out;
	}
	rs.gw.conf = conf;
	rs.gw.store = mg_store_new(conf->db_conninfo, conf->db_pool_size, conf->db_connect_timeout);
	rs.gw.ledger = rs.gw.store != NULL ? mg_ledger_new(rs.gw.store, conf) : NULL;
	rs.threads = calloc((size_t)conf->threads, sizeof(*rs.threads));
	if (rs.gw.store == NULL || rs.gw.ledger == NULL || rs.threads == NULL) {
		mg_log(MG_LOG_ERROR, NULL, "out of memory at start");
		goto out_curl;
	}
	/* not fatal (requests get 503 until Postgres answers, and the pool
	 * reconnects by itself), but said at start, where it is looked for */
	if (mg_store_ping(rs.gw.store) != MG_OK)
		mg_log(MG_LOG_WARN, NULL, "the database does not answer (%s): requests get 503 until it does",
		    mg_store_last_error());
	for (i = 0; i < conf->threads; i++) {
		struct worker_thread *t = &rs.threads[i];

		t->rs = &rs;
		if (mg_worker_init(&t->w, &rs.gw) != MG_OK) {
			mg_log(MG_LOG_ERROR, NULL, "cannot set up request thread %d", i);
			break;
		}
		pthread_mutex_lock(&rs.lock);
		rs.running++;
		pthread_mutex_unlock(&rs.lock);
		if (pthread_create(&t->tid, NULL, thread_main, t) != 0) {
			mg_log(MG_LOG_ERROR, NULL, "cannot start request thread %d", i);
			pthread_mutex_lock(&rs.lock);
			rs.running--;
			pthread_mutex_unlock(&rs.lock);
			mg_worker_free(&t->w);
			break;
		}
		t->started = 1;
	}
	if (i == conf->threads) {
		rs.upkeep = mg_upkeep_start(conf, rs.gw.store, activity, &rs);
		if (rs.upkeep == NULL)
			mg_log(MG_LOG_ERROR, NULL, "cannot start the upkeep thread");
	}
	if (i == conf->threads) {
		mg_log(MG_LOG_INFO, NULL, "serving with %d threads, upstream %s",
		    conf->threads, conf->up_base_url);
		mg_log_tee(-1);
		wait_for_stop();
		status = 0;
	}
	left = stop_threads(&rs);
	mg_upkeep_stop(rs.upkeep);
	if (left > 0) {
		/* threads still serving past the grace period: leave them to
		 * the process exit rather than free what they use */
		mg_log(MG_LOG_WARN, NULL, "%d requests still running after %d s; exiting",
		    left, conf->shutdown_grace);
		return status;
	}
	for (i = 0; i < conf->threads; i++) {
		if (rs.threads[i].started) {
			pthread_join(rs.threads[i].tid, NULL);
			mg_worker_free(&rs.threads[i].w);
		}
	}
	mg_log(MG_LOG_INFO, NULL, "stopped");
out_curl:
	free(rs.threads);
	mg_ledger_free(rs.gw.ledger);   /* writes the queued settlements */
	mg_store_free(rs.gw.store);
	mg_metrics_detach();
	curl_global_cleanup();
out:
	pthread_mutex_destroy(&rs.lock);
	pthread_cond_destroy(&rs.changed);
	return status;
}
