#ifndef MG_USAGEAPI_H
#define MG_USAGEAPI_H

#include "exchange.h"
#include "gateway.h"
#include "report.h"

/* GET /v1/usage (MG_REPORT_USAGE), /v1/usage/requests (MG_REPORT_REQUESTS)
 * and /v1/quota (MG_REPORT_QUOTA): answers the request completely, with
 * the report's object or an OpenAI-style error (401 for a bad key, 403
 * for a project key naming another project, 400 for bad parameters, 503
 * without the database). */
void mg_usageapi_handle(struct mg_worker *w, struct mg_exchange *x, enum mg_report which);

#endif
