/* auth.c -- The client's key: taken from the Authorization header, hashed,
 * resolved to its project, and every refusal answered as an OpenAI error.
 * Called by gateway.c. */
#include "config.h"

#include <stddef.h>
#include <string.h>

#include "auth.h"
#include "fcgi.h"
#include "log.h"

int
mg_auth_key(struct mg_worker *w, struct mg_exchange *x, char hash[MG_APIKEY_HASH_HEX_LEN + 1],
    char prefix[MG_APIKEY_PREFIX_LEN + 1])
{
	const char *header = mg_fcgi_param(x->fr, "HTTP_AUTHORIZATION");
	struct mg_apierror e;
	const char *key;
	size_t n = 0;

	key = mg_apikey_from_header(header, &n);
	if (key == NULL) {
		mg_apierror_set(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
		    header != NULL && header[strspn(header, " \t")] != '\0' ?
		    "The Authorization header holds no API key alone. Send it as "
		    "'Authorization: Bearer mg-…'." :
		    "You didn't provide an API key. Send it in the Authorization header as "
		    "'Authorization: Bearer mg-…'.");
		mg_exchange_send_error(w, x, &e);
		return -1;
	}
	if (!mg_apikey_valid(key, n)) {
		mg_apierror_set(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
		    "Incorrect API key provided. modelgate keys start with 'mg-'.");
		mg_exchange_send_error(w, x, &e);
		return -1;
	}
	if (mg_apikey_hash_hex(key, n, hash) != MG_OK) {
		mg_log(MG_LOG_ERROR, x->request_id, "libcrypto could not hash a key");
		mg_apierror_set(&e, 500, "server_error", NULL, NULL,
		    "The gateway could not check the API key. Retry shortly.");
		mg_exchange_send_error(w, x, &e);
		return -1;
	}
	mg_apikey_prefix(key, prefix);
	return 0;
}

void
mg_auth_refused(struct mg_worker *w, struct mg_exchange *x, enum mg_err rc, const char *prefix)
{
	struct mg_apierror e;

	if (rc == MG_ERR_AUTH_ADMIN) {
		mg_log(MG_LOG_INFO, x->request_id, "admin key %s refused: it calls no model", prefix);
		mg_apierror_set(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
		    "This is an admin key: it reads usage (/v1/usage) and cannot call models. "
		    "Use a project's key.");
	} else if (rc == MG_ERR_AUTH) {
		mg_log(MG_LOG_INFO, x->request_id, "unknown or revoked key %s", prefix);
		mg_apierror_set(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
		    "Incorrect API key provided: the key is unknown or has been revoked.");
	} else {
		mg_log(MG_LOG_ERROR, x->request_id, "database unavailable: %s", mg_store_last_error());
		mg_apierror_set(&e, 503, "server_error", NULL, "database_unavailable",
		    "The gateway cannot reach its database right now. Retry shortly.");
	}
	mg_exchange_send_error(w, x, &e);
}

enum mg_err
mg_auth_which_refusal(struct mg_worker *w, const char *hash)
{
	struct mg_reader who;

	/* only on the way to a 401: a lookup more is no cost worth saving */
	if (mg_store_auth_reader(w->gw->store, hash, &who) == MG_OK && who.admin)
		return MG_ERR_AUTH_ADMIN;
	return MG_ERR_AUTH;
}

int
mg_auth_resolve(struct mg_worker *w, struct mg_exchange *x, const char *hash, const char *prefix)
{
	enum mg_err rc = mg_store_auth(w->gw->store, hash, &x->auth);

	if (rc != MG_OK) {
		mg_auth_refused(w, x, rc, prefix);
		return -1;
	}
	x->authed = 1;
	return 0;
}

int
mg_auth_project(struct mg_worker *w, struct mg_exchange *x)
{
	char hash[MG_APIKEY_HASH_HEX_LEN + 1], prefix[MG_APIKEY_PREFIX_LEN + 1];

	if (mg_auth_key(w, x, hash, prefix) < 0)
		return -1;
	return mg_auth_resolve(w, x, hash, prefix);
}

int
mg_auth_reader(struct mg_worker *w, struct mg_exchange *x, struct mg_reader *who)
{
	char hash[MG_APIKEY_HASH_HEX_LEN + 1], prefix[MG_APIKEY_PREFIX_LEN + 1];
	enum mg_err rc;

	if (mg_auth_key(w, x, hash, prefix) < 0)
		return -1;
	rc = mg_store_auth_reader(w->gw->store, hash, who);
	if (rc != MG_OK) {
		mg_auth_refused(w, x, rc, prefix);
		return -1;
	}
	return 0;
}
