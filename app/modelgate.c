/* modelgate: the operator CLI (migrations, projects, keys, config). */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "conf.h"

#ifndef MG_SQL_DIR
#define MG_SQL_DIR "/usr/local/share/modelgate/sql"
#endif

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "sql-dir", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_arg = NULL, *sql_dir = getenv("MODELGATE_SQL_DIR");
	struct mg_conf conf;
	char err[MG_ERR_DETAIL_LEN];
	int opt, status;

	/* "+": stop at the command word, so its own flags stay for it */
	while ((opt = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_arg = optarg;
			break;
		case 'S':
			sql_dir = optarg;
			break;
		case 'h':
			mg_cli_usage(stdout);
			return 0;
		case 'V':
			printf("modelgate %s\n", PACKAGE_VERSION);
			return 0;
		default:
			mg_cli_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		mg_cli_usage(stderr);
		return 2;
	}
	if (sql_dir == NULL || sql_dir[0] == '\0')
		sql_dir = MG_SQL_DIR;
	if (mg_conf_load(&conf, mg_conf_pick_path(config_arg), err, sizeof(err)) != MG_OK) {
		fprintf(stderr, "modelgate: %s\n", err);
		return 1;
	}
	status = mg_cli_run(&conf, sql_dir, argc - optind, argv + optind);
	mg_conf_free(&conf);
	return status;
}
