/* apierror.c -- OpenAI-style error objects: building {"error":{...}} bodies with their
 * HTTP status, for the gateway to send.  Called by the gateway only. */
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
