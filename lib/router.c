/* router.c -- Paths to routes: which /v1 endpoint (or health) a request names, and
 * the model id of /v1/models/{id}, URL-decoded.  Called by the gateway. */
#include "config.h"

#include <string.h>

#include "router.h"

struct route_def {
	const char *path;
	const char *method;
	enum mg_route route;
};

static const struct route_def routes[] = {
	{ "/v1/chat/completions", "POST", MG_ROUTE_CHAT },
	{ "/v1/embeddings", "POST", MG_ROUTE_EMBEDDINGS },
	{ "/v1/models", "GET", MG_ROUTE_MODELS },
	{ "/healthz", "GET", MG_ROUTE_HEALTH },
	{ "/v1/usage", "GET", MG_ROUTE_USAGE },
	{ "/v1/usage/requests", "GET", MG_ROUTE_USAGE_REQUESTS },
	{ "/v1/quota", "GET", MG_ROUTE_QUOTA },
	{ "/v1/usage/reconciliation", "GET", MG_ROUTE_RECONCILIATION },
	{ "/mcp", "POST", MG_ROUTE_MCP },
	{ "/v1/usage/models", "GET", MG_ROUTE_USAGE_MODELS },
	{ "/v1/usage/projects", "GET", MG_ROUTE_USAGE_PROJECTS },
	{ "/dashboard", "GET", MG_ROUTE_DASHBOARD },
	{ "/metrics", "GET", MG_ROUTE_METRICS },
};

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long
mg_url_decode(const char *src, size_t n, char *dst, size_t dstlen)
{
	size_t i, o = 0;

	if (dstlen == 0)
		return -1;
	for (i = 0; i < n; i++) {
		char c = src[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return -1;
			hi = hexval(src[i + 1]);
			lo = hexval(src[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (c == '\0' || o + 1 >= dstlen)
			return -1;
		dst[o++] = c;
	}
	dst[o] = '\0';
	return (long)o;
}

static int
method_is(const char *method, const char *want)
{
	if (strcmp(method, want) == 0)
		return 1;
	/* HEAD is answered like GET by the web server's rules; accept it */
	return strcmp(want, "GET") == 0 && strcmp(method, "HEAD") == 0;
}

void
mg_router_match(const char *method, const char *request_uri, struct mg_route_match *m)
{
	size_t plen, i;
	const char *uri = request_uri != NULL ? request_uri : "";
	static const char models_prefix[] = "/v1/models/";
	static const char dashboard_prefix[] = "/dashboard/";

	memset(m, 0, sizeof(*m));
	if (method == NULL)
		method = "";
	plen = strcspn(uri, "?#");
	/* tolerate one trailing slash: /v1/models/ is /v1/models */
	while (plen > 1 && uri[plen - 1] == '/' &&
	    !(plen > sizeof(models_prefix) - 1 && strncmp(uri, models_prefix, sizeof(models_prefix) - 1) == 0))
		plen--;
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strlen(routes[i].path) == plen && strncmp(uri, routes[i].path, plen) == 0) {
			m->route = routes[i].route;
			m->allow = routes[i].method;
			m->method_ok = method_is(method, routes[i].method);
			return;
		}
	}
	if (plen > sizeof(dashboard_prefix) - 1 &&
	    strncmp(uri, dashboard_prefix, sizeof(dashboard_prefix) - 1) == 0) {
		const char *name = uri + sizeof(dashboard_prefix) - 1;
		size_t n = plen - (sizeof(dashboard_prefix) - 1);

		/* a file name: letters, digits, '.', '-', '_' (dashboard.c serves
		 * those of its list only) */
		if (n >= sizeof(m->model_id) ||
		    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") < n)
			return;
		memcpy(m->model_id, name, n);
		m->model_id[n] = '\0';
		m->route = MG_ROUTE_DASHBOARD;
		m->allow = "GET";
		m->method_ok = method_is(method, "GET");
		return;
	}
	if (plen > sizeof(models_prefix) - 1 &&
	    strncmp(uri, models_prefix, sizeof(models_prefix) - 1) == 0) {
		const char *id = uri + sizeof(models_prefix) - 1;
		size_t idlen = plen - (sizeof(models_prefix) - 1);

		if (mg_url_decode(id, idlen, m->model_id, sizeof(m->model_id)) <= 0)
			return;
		m->route = MG_ROUTE_MODEL;
		m->allow = "GET";
		m->method_ok = method_is(method, "GET");
	}
}
