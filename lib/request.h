#ifndef MG_REQUEST_H
#define MG_REQUEST_H

#include <stddef.h>

#include "apierror.h"
#include "router.h"

enum mg_endpoint {
	MG_EP_CHAT = 0,     /* POST /v1/chat/completions */
	MG_EP_EMBEDDINGS    /* POST /v1/embeddings */
};

/* The most models a request's "models" list may name. */
#define MG_CALL_MODELS_MAX 4

/* A parsed and validated client request body. */
struct mg_call {
	enum mg_endpoint endpoint;
	char model[MG_MODEL_ID_MAX]; /* "" unless parsed */
	/* "models": [a, b]: further models tried when the model fails (the
	 * model itself left out) */
	char alt[MG_CALL_MODELS_MAX][MG_MODEL_ID_MAX];
	int n_alt;
	size_t model_at, model_cut;   /* the model's value in the body, quotes and all */
	size_t models_at, models_cut; /* the models member, to drop; cut 0: none */
	char *sent_body;              /* owned: the body for one upstream, once made */
	size_t sent_len;
	int stream;            /* chat: "stream": true */
	int include_usage;     /* chat: stream_options.include_usage */
	int want_base64;       /* embeddings: encoding_format "base64" */
	long long max_output;  /* chat: max_tokens / max_completion_tokens, -1 if absent */
	/* a stream that did not ask for usage: the body asks for it once
	 * usage_text replaces its usage_cut bytes at usage_at */
	const char *usage_text;  /* static; NULL: nothing to change */
	size_t usage_at, usage_cut;
	char *usage_body;        /* owned: the body so changed, once made */
	size_t usage_len;
};

/* The largest max_tokens a request may ask for. */
#define MG_MAX_OUTPUT_TOKENS 100000000

/* The name of an endpoint as recorded in usage rows. */
const char *mg_endpoint_name(enum mg_endpoint ep);

/* Parses and validates len bytes of body in one pass, in place.  MG_OK,
 * or MG_ERR_JSON / MG_ERR_INVALID with e filled (status 400, param naming
 * the field).  On success the caller frees c with mg_call_free. */
enum mg_err mg_request_parse(enum mg_endpoint ep, const char *body, size_t len,
    struct mg_call *c, struct mg_apierror *e) __attribute__((warn_unused_result));
/* The body of a stream as sent upstream: body itself (*len bytes, the
 * ones mg_request_parse checked) when it asks for usage already, else a
 * copy owned by c with stream_options.include_usage set to true, its other
 * bytes as the client sent them; *len becomes its length.  When memory
 * runs out, body itself. */
const char *mg_call_usage_body(struct mg_call *c, const char *body, size_t *len);
/* The body for an upstream that is sent the model string sent: as
 * mg_call_usage_body, with the model's value replaced by sent and the
 * "models" member left out (the gateway tries them itself).  The body as
 * mg_call_usage_body gives it when nothing is to change; NULL when memory
 * runs out.  Valid until the next call or mg_call_free. */
const char *mg_call_body(struct mg_call *c, const char *body, size_t *len, const char *sent);
void mg_call_free(struct mg_call *c);

#endif
