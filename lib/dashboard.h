#ifndef MG_DASHBOARD_H
#define MG_DASHBOARD_H

#include "exchange.h"
#include "gateway.h"

/* GET /dashboard/ and its files: the dashboard's HTML, CSS and JavaScript
 * from report.dashboard_dir (or the installed directory), by a fixed list
 * of names, with a Content-Security-Policy of 'self' only, nosniff, no
 * referrer and no framing.  name is the part after /dashboard/ ("" for
 * the page).  The page holds no data: it asks /v1/usage... with the key
 * the user gives it. */
void mg_dashboard_handle(struct mg_worker *w, struct mg_exchange *x, const char *name);

#endif
