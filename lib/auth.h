#ifndef MG_AUTH_H
#define MG_AUTH_H

#include "apikey.h"
#include "exchange.h"
#include "gateway.h"

/* The client's key: read from the Authorization header, checked, resolved
 * to its project, and every way that can fail answered as a 401 (or a 503
 * when the database cannot say).  Called by gateway.c. */

/* The key of the request: its hash and public prefix.  0, or -1 with the
 * 401 (or a 500 when libcrypto fails) sent: no key, or not a modelgate
 * key.  No database is needed for that. */
int mg_auth_key(struct mg_worker *w, struct mg_exchange *x,
    char hash[MG_APIKEY_HASH_HEX_LEN + 1], char prefix[MG_APIKEY_PREFIX_LEN + 1])
	__attribute__((warn_unused_result));

/* Answers a key the database did not take: rc MG_ERR_AUTH (unknown or
 * revoked, 401), MG_ERR_AUTH_ADMIN (an admin key where a project key is
 * needed, 401 saying so), or a database failure (503). */
void mg_auth_refused(struct mg_worker *w, struct mg_exchange *x, enum mg_err rc,
    const char *prefix);

/* Why a key hash the project lookup refused is refused: MG_ERR_AUTH_ADMIN
 * for a live admin key, else MG_ERR_AUTH. */
enum mg_err mg_auth_which_refusal(struct mg_worker *w, const char *hash);

/* Resolves a key (from mg_auth_key) to x->auth without admission.  0, or
 * -1 with the answer sent. */
int mg_auth_resolve(struct mg_worker *w, struct mg_exchange *x, const char *hash,
    const char *prefix) __attribute__((warn_unused_result));

/* mg_auth_key and mg_auth_resolve: for routes that admit nothing. */
int mg_auth_project(struct mg_worker *w, struct mg_exchange *x)
	__attribute__((warn_unused_result));

/* The key of a request that reads usage (a project key or an admin key)
 * into *who.  0, or -1 with the 401 (or 503) sent. */
int mg_auth_reader(struct mg_worker *w, struct mg_exchange *x, struct mg_reader *who)
	__attribute__((warn_unused_result));

#endif
