#ifndef MG_CLI_H
#define MG_CLI_H

#include <stdio.h>

#include "conf.h"

/* The operator commands of `modelgate`, each a call of admin.c.  argv[0]
 * is the command word ("db", "project", "key", "reap", "models",
 * "config").  Output goes to stdout, messages to stderr prefixed
 * "modelgate: ".  Returns the exit status: 0 ok, 1 runtime error, 2 usage
 * error. */
int mg_cli_run(const struct mg_conf *conf, const char *sql_dir, int argc, char **argv);

/* The usage text. */
void mg_cli_usage(FILE *out);

#endif
