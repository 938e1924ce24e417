/* apierror.c -- OpenAI-style error objects: building {"error":{...}} bodies with their
 * HTTP status, and what a client is told when the upstream fails (its
 * HTTP errors, their error.message read in place, and transport failures
 * mapped).  Called by the request path
 * only (gateway.c, auth.c, stream.c). */
#include "config.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "apierror.h"
#include "jscan.h"

void
mg_apierror_set(struct mg_apierror *e, int status, const char *type,
    const char *param, const char *code, const char *fmt, ...)
{
	va_list ap;

	e->status = status;
	e->type = type;
	e->param = param;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

static json_object *
string_or_null(const char *s)
{
	return s != NULL ? json_object_new_string(s) : NULL;
}

enum mg_err
mg_apierror_json(const struct mg_apierror *e, struct mg_buf *out)
{
	json_object *root = json_object_new_object(), *err = json_object_new_object();
	enum mg_err rc = MG_ERR_NOMEM;

	if (root == NULL || err == NULL) {
		json_object_put(err);
		goto out;
	}
	json_object_object_add(err, "message", json_object_new_string(e->message));
	json_object_object_add(err, "type", string_or_null(e->type));
	json_object_object_add(err, "param", string_or_null(e->param));
	json_object_object_add(err, "code", string_or_null(e->code));
	json_object_object_add(root, "error", err);
	rc = mg_buf_adds(out, json_object_to_json_string_ext(root,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
out:
	json_object_put(root);
	return rc;
}

const char *
mg_http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Unknown";
	}
}

/* The text an upstream error body carries in error.message (the last
 * error named, read in place), decoded into dst; 0 when there is none
 * or it is empty. */
static int
upstream_message(const char *body, char *dst, size_t size)
{
	static const char *const names[] = { "error", NULL };
	struct mg_jscan s;
	struct mg_jscan_value v, msg = { 0 };
	int i;

	mg_jscan_init(&s, body, strlen(body));
	mg_jscan_value(&s, &v);
	if (v.type != MG_JSCAN_OBJECT)
		return 0;
	while ((i = mg_jscan_field(&s, names, NULL)) >= 0) {
		if (i == 0) {
			mg_jscan_next(&s);
			continue;
		}
		mg_jscan_value(&s, &v);
		msg.type = MG_JSCAN_NONE;
		if (v.type == MG_JSCAN_OBJECT)
			mg_jscan_pick(&s, "message", &msg);
		else
			mg_jscan_skip(&s, &v);
	}
	mg_jscan_finish(&s);
	/* a message empty up to its first NUL is none */
	return mg_jscan_ok(&s) && mg_jscan_string(&msg, dst, size, NULL) >= 0 && dst[0] != '\0';
}

void
mg_apierror_upstream(long status, const char *upstream_body, struct mg_apierror *e)
{
	char msg[sizeof(e->message)];
	int has_msg = upstream_body != NULL && upstream_message(upstream_body, msg, sizeof(msg));

	if (status == 401) {
		mg_apierror_set(e, 502, "upstream_error", NULL, "upstream_auth_failed",
		    "The gateway could not authenticate with its upstream provider. "
		    "This is a gateway configuration problem; the operator can find the details in the log.");
	} else if (status == 402) {
		mg_apierror_set(e, 503, "upstream_error", NULL, "upstream_unavailable",
		    "The upstream provider is not available to this gateway right now. Try again later.");
	} else if (status == 429) {
		mg_apierror_set(e, 503, "upstream_error", NULL, "upstream_busy",
		    "The upstream provider is busy. Retry after a short wait.");
	} else if (status == 408) {
		mg_apierror_set(e, 504, "upstream_error", NULL, "upstream_timeout",
		    "The upstream provider timed out.");
	} else if (status >= 500 || status < 400) {
		mg_apierror_set(e, 502, "upstream_error", NULL, "upstream_error",
		    "The upstream provider failed (HTTP %ld).", status);
	} else {
		mg_apierror_set(e, (int)status, "invalid_request_error", NULL,
		    status == 404 ? "model_not_found" : status == 403 ? "permission_denied" : "upstream_rejected",
		    "%s", has_msg ? msg : "The upstream provider rejected the request.");
	}
}

void
mg_apierror_transport(enum mg_err rc, struct mg_apierror *e)
{
	switch (rc) {
	case MG_ERR_UPSTREAM_CONNECT:
		mg_apierror_set(e, 502, "upstream_error", NULL, "upstream_unreachable",
		    "The gateway could not connect to its upstream provider.");
		break;
	case MG_ERR_UPSTREAM_TIMEOUT:
		mg_apierror_set(e, 504, "upstream_error", NULL, "upstream_timeout",
		    "The upstream provider did not answer in time.");
		break;
	case MG_ERR_TOO_BIG:
		mg_apierror_set(e, 502, "upstream_error", NULL, "upstream_response_too_large",
		    "The upstream provider's answer was larger than this gateway accepts.");
		break;
	default:
		mg_apierror_set(e, 502, "upstream_error", NULL, "upstream_error",
		    "The upstream provider's answer was broken off or invalid.");
		break;
	}
}
