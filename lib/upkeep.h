#ifndef MG_UPKEEP_H
#define MG_UPKEEP_H

#include "conf.h"
#include "store.h"

/* A responder process's upkeep thread: once a second it settles the
 * reservations of dead responders (every reap_interval), refreshes the
 * model catalog when it is due and this process wins the claim, and gives
 * memory freed by finished requests back to the system.  One per
 * process; started and stopped by responder.c. */

struct mg_upkeep;

/* Starts the thread; NULL when it cannot (out of memory, no thread).
 * activity(arg, &ended, &serving) tells, from any thread, how many of the
 * responder's requests have ended so far and how many are being served. */
struct mg_upkeep *mg_upkeep_start(const struct mg_conf *conf, struct mg_store *store,
    void (*activity)(void *arg, unsigned long *ended, int *serving), void *arg);
/* Stops the thread, waits for it and frees u; NULL is fine. */
void mg_upkeep_stop(struct mg_upkeep *u);

/* Bounds the number of malloc arenas (server.malloc_arenas; 0 keeps the
 * C library's default), and fixes the sizes from which blocks are mapped
 * on their own and free memory at an arena's top goes back to the system
 * (so that an idle process gives back what a burst took).  Call before
 * any thread starts. */
void mg_upkeep_tune_malloc(int arenas);

#endif
