/* modelgate-fcgi: the FastCGI responder.  Serves the listening socket on
 * fd 0 (spawn-fcgi, systemd StandardInput=socket) or one it opens (-s). */
#include "config.h"

#include <errno.h>
#include <fcgiapp.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "responder.h"

static void
usage(FILE *out)
{
	fputs("usage: modelgate-fcgi [-c FILE] [-s SOCKET] [-t]\n"
	    "  -c FILE    configuration file (else $MODELGATE_CONFIG, else "
	    MG_CONF_DEFAULT_PATH ")\n"
	    "  -s SOCKET  listen on a unix socket path or HOST:PORT instead of fd 0\n"
	    "  -t         check the configuration and exit\n", out);
}

int
main(int argc, char **argv)
{
	const char *config_arg = NULL, *socket_arg = NULL;
	struct mg_conf conf;
	char err[MG_ERR_DETAIL_LEN];
	int opt, test_only = 0, fd = 0, status;

	while ((opt = getopt(argc, argv, "c:s:th")) != -1) {
		switch (opt) {
		case 'c':
			config_arg = optarg;
			break;
		case 's':
			socket_arg = optarg;
			break;
		case 't':
			test_only = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (mg_conf_load(&conf, mg_conf_pick_path(config_arg), err, sizeof(err)) != MG_OK) {
		fprintf(stderr, "modelgate-fcgi: %s\n", err);
		return 1;
	}
	if (test_only) {
		printf("%s: ok\n", conf.file);
		mg_conf_free(&conf);
		return 0;
	}
	if (mg_log_open(conf.log_level, conf.log_file) != 0) {
		fprintf(stderr, "modelgate-fcgi: cannot open log file %s: %s\n", conf.log_file,
		    strerror(errno));
		mg_conf_free(&conf);
		return 1;
	}
	/* until it serves (mg_responder_run), why it cannot goes to stderr too */
	mg_log_tee(MG_LOG_WARN);
	if (conf.up_key == NULL)
		mg_log(MG_LOG_WARN, NULL, "no upstream key configured (upstream.key_file / upstream.key_env)");
	if (socket_arg != NULL) {
		fd = FCGX_OpenSocket(socket_arg, 1024);
		if (fd < 0) {
			mg_log(MG_LOG_ERROR, NULL, "cannot listen on %s", socket_arg);
			mg_conf_free(&conf);
			return 1;
		}
	}
	status = mg_responder_run(&conf, fd);
	mg_log_close();
	mg_conf_free(&conf);
	return status;
}
