#ifndef MG_MIGRATE_H
#define MG_MIGRATE_H

#include <libpq-fe.h>

#include "err.h"

/* In one transaction under an advisory lock (so concurrent runs on any
 * number of hosts are safe): applies every sql_dir/NNN_NAME.sql not yet
 * recorded in schema_migrations, in order, then every
 * sql_dir/functions/NAME.sql, in name order, each time (they are CREATE OR
 * REPLACE).  A database recorded at a version older than the oldest
 * numbered file is refused.  Sets *applied (numbered files applied now)
 * and *version (the schema version reached).  On failure nothing is
 * changed and err holds a message. */
enum mg_err mg_migrate(PGconn *c, const char *sql_dir, int *applied, int *version,
    char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
