#ifndef MG_ROUTER_H
#define MG_ROUTER_H

#include <stddef.h>

enum mg_route {
	MG_ROUTE_NONE = 0,     /* no such path: 404 */
	MG_ROUTE_CHAT,         /* /v1/chat/completions */
	MG_ROUTE_EMBEDDINGS,   /* /v1/embeddings */
	MG_ROUTE_MODELS,       /* /v1/models */
	MG_ROUTE_MODEL,        /* /v1/models/{id} */
	MG_ROUTE_HEALTH,       /* /healthz */
	MG_ROUTE_USAGE,        /* /v1/usage */
	MG_ROUTE_USAGE_REQUESTS, /* /v1/usage/requests */
	MG_ROUTE_QUOTA,        /* /v1/quota */
	MG_ROUTE_RECONCILIATION, /* /v1/usage/reconciliation */
	MG_ROUTE_MCP,          /* /mcp */
	MG_ROUTE_USAGE_MODELS, /* /v1/usage/models */
	MG_ROUTE_USAGE_PROJECTS, /* /v1/usage/projects */
	MG_ROUTE_DASHBOARD,    /* /dashboard/ and /dashboard/{file} */
	MG_ROUTE_METRICS       /* /metrics */
};

#define MG_MODEL_ID_MAX 256

struct mg_route_match {
	enum mg_route route;
	int method_ok;            /* 0: the path exists but not for this method */
	const char *allow;        /* the method the route takes, for Allow: */
	char model_id[MG_MODEL_ID_MAX]; /* decoded {id} of MG_ROUTE_MODEL, {file}
	                                 * of MG_ROUTE_DASHBOARD ("" for the page) */
};

/* Matches a method and the raw REQUEST_URI (query string ignored, %XX in
 * the model id decoded).  Always fills m; m->route is MG_ROUTE_NONE for
 * unknown paths.  Pure and thread-safe. */
void mg_router_match(const char *method, const char *request_uri,
    struct mg_route_match *m);

/* Decodes %XX escapes of n bytes of src into dst (size dstlen).  Returns
 * the decoded length, or -1 for a bad escape, a NUL byte or no room. */
long mg_url_decode(const char *src, size_t n, char *dst, size_t dstlen);

#endif
