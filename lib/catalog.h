#ifndef MG_CATALOG_H
#define MG_CATALOG_H

#include <json-c/json.h>
#include <stddef.h>

#include "err.h"
#include "upstream.h"

/* The model catalog's input: the upstream's model lists turned into the
 * rows mg_catalog_replace (sql/) stores.  Shared by `modelgate models
 * sync` and the responders' scheduled refresh. */

/* Builds the rows from the upstream's chat model list and, if not NULL,
 * its separate embedding model list: a JSON array of {id, kind, name,
 * context_length, prompt_price, completion_price, object}.  Prices are
 * kept as the exact decimal text the upstream sent (USD per token); one
 * that is absent, negative (OpenRouter's "-1": priced per request) or not
 * a number becomes null.  object is the model in the OpenAI shape, as
 * /v1/models serves it.  MG_ERR_UPSTREAM when chat has no data array. */
enum mg_err mg_catalog_rows(json_object *chat, json_object *embeddings, json_object **rows)
	__attribute__((warn_unused_result));

/* The upstream's models in one OpenAI list ({"object":"list","data":[…]},
 * chat models first, then embedding models where the upstream lists them
 * apart), fetched into reply: what /v1/models serves while the catalog is
 * empty.  On failure err says why and rc is the call's (connect, timeout,
 * broken off), MG_ERR_UPSTREAM with *refused the HTTP status /models
 * answered outside 2xx (else *refused is 0), MG_ERR_JSON when the answer
 * is not a model list, or MG_ERR_NOMEM.  The caller owns *list. */
enum mg_err mg_catalog_models(struct mg_upstream *up, struct mg_upstream_reply *reply,
    json_object **list, long *refused, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Fetches /models (and /embeddings/models, where the upstream has it) and
 * returns the rows as JSON text (malloc'd) and their count.  On failure
 * err says why. */
enum mg_err mg_catalog_fetch(struct mg_upstream *up, size_t max_response, char **json_text,
    int *count, char *err, size_t errlen) __attribute__((warn_unused_result));

/* The rows of every upstream of c, each fetched with its own handle:
 * every row names its upstream, has the id clients use (a stripped
 * prefix put back, in its object too), says whether the routing sends
 * that id to it first (routed), and has the config's prices where the
 * upstream's prices come from the config.  *upstreams is the Postgres
 * array text of every upstream's name, *synced of those whose list came
 * (an upstream that fails keeps its rows; err then says why); all three
 * malloc'd.  When no list came: the failures' error when they share one
 * (MG_ERR_UPSTREAM_CONNECT: every upstream unreachable), else
 * MG_ERR_UPSTREAM, with err ("model list from URL: ..." with one
 * upstream). */
enum mg_err mg_catalog_fetch_all(const struct mg_conf *c, char **json_text, char **upstreams,
    char **synced, int *count, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
