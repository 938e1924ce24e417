/* apierror.c -- OpenAI-style error objects: building {"error":{...}} bodies with their
 * HTTP status, and what a client is told when the upstream fails (its
 * HTTP errors and transport failures mapped).  Called by the request path
 * only (gateway.c, auth.c, stream.c). */
#include "config.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>

#include "apierror.h"

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

/* The text an upstream error body carries in error.message, or NULL. */
static const char *
upstream_message(json_object *root)
{
	json_object *err, *msg;

	if (root == NULL || !json_object_object_get_ex(root, "error", &err) ||
	    !json_object_is_type(err, json_type_object))
		return NULL;
	if (json_object_object_get_ex(err, "message", &msg) && json_object_is_type(msg, json_type_string))
		return json_object_get_string(msg);
	return NULL;
}

void
mg_apierror_upstream(long status, const char *upstream_body, struct mg_apierror *e)
{
	json_object *root = upstream_body != NULL ? json_tokener_parse(upstream_body) : NULL;
	const char *msg = upstream_message(root);

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
		    "%s", msg != NULL ? msg : "The upstream provider rejected the request.");
	}
	json_object_put(root);
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
