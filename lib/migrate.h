#ifndef MG_MIGRATE_H
#define MG_MIGRATE_H

#include <libpq-fe.h>

#include "err.h"

/* Applies every sql_dir/NNN_*.sql not yet recorded in schema_migrations,
 * in order, each in its own transaction under an advisory lock (so
 * concurrent runs are safe).  Sets *applied and *version.  On failure
 * writes a message into err. */
enum mg_err mg_migrate(PGconn *c, const char *sql_dir, int *applied, int *version,
    char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
