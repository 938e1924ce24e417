#ifndef MG_METRICSAPI_H
#define MG_METRICSAPI_H

#include <stddef.h>

#include "conf.h"
#include "exchange.h"
#include "gateway.h"

/* GET /metrics: the Prometheus text exposition of this host's scoreboard
 * (metrics.c), to a client whose address is in metrics.allow or that
 * shows the metrics.token; 403 otherwise, 503 when this process has no
 * scoreboard. */
void mg_metricsapi_handle(struct mg_worker *w, struct mg_exchange *x);

/* The scoreboard file of the responders serving listen_fd: in
 * metrics.dir, else in $RUNTIME_DIRECTORY (systemd's), else next to the
 * unix socket, else in /run/modelgate; named after the socket (or the port).  -1 when it
 * does not fit in out (len bytes). */
int mg_metricsapi_path(const struct mg_conf *conf, int listen_fd, char *out, size_t len)
	__attribute__((warn_unused_result));

#endif
