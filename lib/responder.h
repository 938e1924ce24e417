#ifndef MG_RESPONDER_H
#define MG_RESPONDER_H

#include "conf.h"

/* The FastCGI responder process: a pool of conf->threads threads that each
 * FCGX_Accept_r on listen_fd and serve requests through the gateway.
 * Blocks until SIGTERM or SIGINT, then stops accepting, gives in-flight
 * requests conf->shutdown_grace seconds, and returns the exit status.
 * Must be called from the main thread before any other thread exists. */
int mg_responder_run(const struct mg_conf *conf, int listen_fd);

#endif
