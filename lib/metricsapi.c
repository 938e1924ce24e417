/* metricsapi.c -- GET /metrics: who may read the counters (metrics.allow,
 * metrics.token) and their exposition; where the scoreboard file is.
 * Called by gateway.c (the route) and responder.c (the path). */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "apikey.h"
#include "fcgi.h"
#include "log.h"
#include "metrics.h"
#include "metricsapi.h"
#include "route.h"

#define EXPOSITION_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* 1 when the Authorization header carries the configured token; the
 * comparison takes the same time wherever the two differ (their hashes
 * are compared, so not even their lengths show). */
static int
token_ok(const struct mg_conf *conf, const char *header)
{
	char want[MG_APIKEY_HASH_HEX_LEN + 1], got[MG_APIKEY_HASH_HEX_LEN + 1];
	unsigned diff = 0;
	size_t i;

	if (conf->metrics_token == NULL || header == NULL ||
	    strncasecmp(header, "Bearer ", 7) != 0)
		return 0;
	header += 7;
	header += strspn(header, " ");
	if (mg_apikey_hash_hex(conf->metrics_token, strlen(conf->metrics_token), want) != MG_OK ||
	    mg_apikey_hash_hex(header, strlen(header), got) != MG_OK)
		return 0;
	for (i = 0; i < MG_APIKEY_HASH_HEX_LEN; i++)
		diff |= (unsigned)(want[i] ^ got[i]);
	return diff == 0;
}

static int
address_ok(const struct mg_conf *conf, const char *addr)
{
	struct mg_netmask nets[MG_METRICS_ALLOW_MAX];
	char err[160];
	int n;

	/* checked at start: this only fails if the configuration changed */
	if (mg_metrics_allow_parse(conf->metrics_allow, nets, MG_METRICS_ALLOW_MAX, &n, err,
	    sizeof(err)) != 0)
		return 0;
	return mg_metrics_allowed(nets, n, addr);
}

void
mg_metricsapi_handle(struct mg_worker *w, struct mg_exchange *x)
{
	const struct mg_conf *conf = w->gw->conf;
	const char *addr = mg_fcgi_param(x->fr, "REMOTE_ADDR");
	struct mg_scoreboard *sb = mg_metrics_scoreboard();
	struct mg_metrics_view v = { PACKAGE_VERSION, conf->metrics_per_model,
	    conf->metrics_per_project, 0, { NULL }, NULL, 0 };
	const char *outcomes[MG_ROUTE__COUNT];
	int i;
	struct mg_apierror e;
	enum mg_err rc;

	if (!address_ok(conf, addr) &&
	    !token_ok(conf, mg_fcgi_param(x->fr, "HTTP_AUTHORIZATION"))) {
		mg_log(MG_LOG_INFO, x->request_id, "metrics refused to %.64s", addr ? addr : "-");
		mg_apierror_set(&e, 403, "invalid_request_error", NULL, "forbidden",
		    "The metrics are not served to this address; see metrics.allow and "
		    "metrics.token_file in the gateway's configuration.");
		mg_exchange_send_error(w, x, &e);
		return;
	}
	if (sb == NULL) {
		mg_apierror_set(&e, 503, "server_error", NULL, "metrics_unavailable",
		    "This responder has no metrics scoreboard (see its log).");
		mg_exchange_send_error(w, x, &e);
		return;
	}
	for (i = 0; i < conf->n_ups && i < MG_METRICS_UPSTREAMS; i++)
		v.upstreams[v.n_upstreams++] = conf->ups[i].name;
	for (i = 0; i < MG_ROUTE__COUNT; i++)
		outcomes[i] = mg_route_outcome_name((enum mg_route_outcome)i);
	v.outcomes = outcomes;
	v.n_outcomes = MG_ROUTE__COUNT;
	mg_scoreboard_reap(sb, NULL);
	mg_buf_reset(&w->out);
	rc = mg_scoreboard_write(sb, &v, &w->out);
	if (rc == MG_OK)
		rc = mg_route_metrics(w->gw->conf, &w->out);
	if (rc != MG_OK) {
		mg_log(MG_LOG_ERROR, x->request_id, "metrics: %s", mg_strerror(rc));
		mg_apierror_set(&e, 500, "server_error", NULL, NULL, "The metrics could not be written.");
		mg_exchange_send_error(w, x, &e);
		return;
	}
	x->status = 200;
	if (mg_fcgi_reply(x->fr, 200, EXPOSITION_TYPE, x->headers, w->out.data, w->out.len) != MG_OK)
		mg_log(MG_LOG_INFO, x->request_id, "client went away before the response");
}

int
mg_metricsapi_path(const struct mg_conf *conf, int listen_fd, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	const char *dir = conf->metrics_dir, *env = getenv("RUNTIME_DIRECTORY");
	char name[sizeof(((struct sockaddr_un *)0)->sun_path) + 32] = "modelgate.scoreboard", sock_dir[sizeof(((struct sockaddr_un *)0)->sun_path)] = "";
	int n;

	memset(&ss, 0, sizeof(ss));
	if (getsockname(listen_fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_UNIX) {
			const struct sockaddr_un *su = (const struct sockaddr_un *)&ss;
			const char *path = su->sun_path, *slash;

			if (path[0] != '\0') {
				slash = strrchr(path, '/');
				snprintf(name, sizeof(name), "%s.scoreboard", slash ? slash + 1 : path);
				if (slash != NULL)
					snprintf(sock_dir, sizeof(sock_dir), "%.*s",
					    (int)(slash == path ? 1 : slash - path), path);
			}
		} else if (ss.ss_family == AF_INET) {
			snprintf(name, sizeof(name), "modelgate-%u.scoreboard",
			    (unsigned)ntohs(((const struct sockaddr_in *)&ss)->sin_port));
		} else if (ss.ss_family == AF_INET6) {
			snprintf(name, sizeof(name), "modelgate-%u.scoreboard",
			    (unsigned)ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port));
		}
	}
	if (dir[0] == '\0')
		dir = env != NULL && env[0] != '\0' ? env : sock_dir[0] != '\0' ? sock_dir :
		    "/run/modelgate";
	/* RUNTIME_DIRECTORY may list several: the first */
	n = snprintf(out, len, "%.*s/%s", (int)(dir == env ? strcspn(dir, ":") : strlen(dir)),
	    dir, name);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}
