#ifndef MG_STORE_H
#define MG_STORE_H

#include "err.h"
#include "usage.h"

/* The responder's Postgres side: a small pool of persistent connections
 * with prepared statements.  A thread holds a connection only for the
 * duration of one call below.  All functions are thread-safe. */
struct mg_store;

/* The identity a key resolves to. */
struct mg_auth {
	long long key_id;
	long long project_id;
	char project[72];
	char key_prefix[16];
};

/* Creates a pool of up to size connections (opened lazily).  NULL on
 * allocation failure. */
struct mg_store *mg_store_new(const char *conninfo, int size, int connect_timeout);
void mg_store_free(struct mg_store *s);

/* Resolves a key hash (64 hex chars).  MG_OK, MG_ERR_AUTH (unknown or
 * revoked), MG_ERR_DB_DOWN (no connection) or MG_ERR_DB. */
enum mg_err mg_store_auth(struct mg_store *s, const char *key_hash_hex, struct mg_auth *out)
	__attribute__((warn_unused_result));
/* Writes the usage row.  MG_OK, MG_ERR_DB_DOWN or MG_ERR_DB. */
enum mg_err mg_store_record_usage(struct mg_store *s, const struct mg_usage *u)
	__attribute__((warn_unused_result));
/* MG_OK when Postgres answers a trivial query. */
enum mg_err mg_store_ping(struct mg_store *s) __attribute__((warn_unused_result));
/* The last Postgres error text seen by this thread (for logs), or "". */
const char *mg_store_last_error(void);

#endif
