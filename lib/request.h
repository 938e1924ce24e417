#ifndef MG_REQUEST_H
#define MG_REQUEST_H

#include <json-c/json.h>
#include <stddef.h>

#include "apierror.h"
#include "router.h"

enum mg_endpoint {
	MG_EP_CHAT = 0,     /* POST /v1/chat/completions */
	MG_EP_EMBEDDINGS    /* POST /v1/embeddings */
};

/* A parsed and validated client request body. */
struct mg_call {
	enum mg_endpoint endpoint;
	json_object *root;     /* owned; the whole body, or NULL (see mg_call_tree) */
	char model[MG_MODEL_ID_MAX]; /* "" unless parsed */
	int stream;            /* chat: "stream": true */
	int include_usage;     /* chat: stream_options.include_usage */
	int want_base64;       /* embeddings: encoding_format "base64" */
	long long max_output;  /* chat: max_tokens / max_completion_tokens, -1 if absent */
};

/* The largest max_tokens a request may ask for. */
#define MG_MAX_OUTPUT_TOKENS 100000000

/* The name of an endpoint as recorded in usage rows. */
const char *mg_endpoint_name(enum mg_endpoint ep);

/* Parses and validates len bytes of body.  MG_OK, or MG_ERR_JSON /
 * MG_ERR_INVALID with e filled (status 400, param naming the field).
 * A valid body is mostly checked in place (lib/jscan), without a tree.
 * On success the caller frees c with mg_call_free. */
enum mg_err mg_request_parse(enum mg_endpoint ep, const char *body, size_t len,
    struct mg_call *c, struct mg_apierror *e) __attribute__((warn_unused_result));
/* The body (the same len bytes mg_request_parse checked) as a json-c
 * tree, owned by c: c->root, parsed now if it was not.  NULL when out of
 * memory. */
json_object *mg_call_tree(struct mg_call *c, const char *body, size_t len);
void mg_call_free(struct mg_call *c);

#endif
