#ifndef MG_LEDGER_H
#define MG_LEDGER_H

#include "store.h"
#include "usage.h"

/* The accounting path of a responder process.
 *
 * Admissions are gathered: while one batch is in Postgres, the requests
 * that arrive wait, and the next batch takes them all (one statement, one
 * transaction, one commit for the lot).  Alone, a request is admitted
 * straight away in a batch of one.  Under load this turns the project
 * counter row's lock and commit from once per request into once per
 * batch.
 *
 * Settlements are queued and written by a background thread, so the
 * client never waits for its settle; the thread writes what has gathered
 * as one batch.  A settlement still queued when the process dies is
 * settled by the reaper from its pending usage row. */
struct mg_ledger;
struct mg_conf;

/* NULL on allocation failure.  The store must outlive the ledger. */
struct mg_ledger *mg_ledger_new(struct mg_store *s, const struct mg_conf *conf);
/* Writes the queued settlements, stops the thread, frees. */
void mg_ledger_free(struct mg_ledger *l);

/* As mg_store_admit, batched with concurrent callers. */
enum mg_err mg_ledger_admit(struct mg_ledger *l, const struct mg_admit_req *q,
    struct mg_admission *out) __attribute__((warn_unused_result));

/* Queues the settlement of an admitted request (u and the name of its
 * project, for the metrics, are copied).  When the queue is full or the
 * thread cannot run, settles at once.  What it was charged is counted
 * (mg_metrics_charge) once it is settled. */
void mg_ledger_settle(struct mg_ledger *l, const struct mg_usage *u, const char *project,
    int billable);

/* Queues the generation id of a request still running (an answer that
 * started), to be kept with its pending usage row: if its responder dies,
 * the reaper's charge can still be checked against the upstream's bill.
 * Best effort: dropped when the queue is full. */
void mg_ledger_note_id(struct mg_ledger *l, const char *request_id, const char *upstream_id);

#endif
