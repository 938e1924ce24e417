#ifndef MG_UPSTREAM_H
#define MG_UPSTREAM_H

#include <stddef.h>

#include "buf.h"
#include "conf.h"

/* The relay core: one libcurl easy handle per thread, reused for every
 * call so keep-alive connections and TLS sessions to the upstream stay
 * open.  A struct mg_upstream belongs to one thread at a time. */
struct mg_upstream;

struct mg_upstream_reply {
	long status;              /* HTTP status, 0 if none arrived */
	struct mg_buf body;       /* the answer, capped */
	char content_type[128];
	char retry_after[32];     /* Retry-After header, "" if none */
};

/* NULL on allocation failure.  The config must outlive the handle. */
struct mg_upstream *mg_upstream_new(const struct mg_conf *c);
/* The same, calling with key (e.g. the management key) instead of the
 * provider key; no Authorization header when key is NULL. */
struct mg_upstream *mg_upstream_new_key(const struct mg_conf *c, const char *key);
/* A handle for upstream d of the list: its base URL, its key only, its
 * timeouts.  d must outlive the handle. */
struct mg_upstream *mg_upstream_new_def(const struct mg_conf *c, const struct mg_updef *d);
void mg_upstream_free(struct mg_upstream *u);

/* Initializes a reply whose body may hold at most max bytes. */
void mg_upstream_reply_init(struct mg_upstream_reply *r, size_t max);
void mg_upstream_reply_free(struct mg_upstream_reply *r);

/* Calls base_url + path: a POST of len bytes of JSON body, or a GET when
 * body is NULL.  MG_OK once a whole HTTP answer arrived (any status);
 * MG_ERR_UPSTREAM_CONNECT, MG_ERR_UPSTREAM_TIMEOUT, MG_ERR_TOO_BIG (answer
 * over the cap) or MG_ERR_UPSTREAM (broken answer) otherwise.  The
 * provider key is added here; nothing of the client's headers is sent. */
enum mg_err mg_upstream_call(struct mg_upstream *u, const char *path,
    const char *body, size_t len, struct mg_upstream_reply *r)
	__attribute__((warn_unused_result));

/* Where a streamed answer goes.  Each callback returns 0 to go on or
 * nonzero to abort the upstream transfer at once. */
struct mg_upstream_sink {
	int (*on_start)(void *arg);   /* a 2xx answer begins (before on_data) */
	int (*on_data)(void *arg, const char *p, size_t n); /* bytes as they arrive */
	int (*on_tick)(void *arg);    /* called often (at least once a second) */
	void *arg;
};

/* Like mg_upstream_call, but a 2xx answer goes to the sink as it arrives
 * (r->body then stays empty); a non-2xx answer is buffered in r as usual.
 * MG_ERR_CLIENT_GONE when a sink callback aborted the transfer. */
enum mg_err mg_upstream_call_stream(struct mg_upstream *u, const char *path,
    const char *body, size_t len, const struct mg_upstream_sink *sink,
    struct mg_upstream_reply *r) __attribute__((warn_unused_result));

/* Caps every later call of u at seconds (instead of upstream.timeout):
 * for the upkeep's short calls, which must never hold it up for long. */
void mg_upstream_set_timeout(struct mg_upstream *u, long seconds);
/* The same in milliseconds: a request's later calls get what is left. */
void mg_upstream_set_timeout_ms(struct mg_upstream *u, long ms);

/* A short text for the last failed call (curl's message), for logs. */
const char *mg_upstream_last_error(const struct mg_upstream *u);

#endif
