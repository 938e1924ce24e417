#ifndef MG_USAGEAPI_H
#define MG_USAGEAPI_H

#include <json-c/json.h>

#include "exchange.h"
#include "gateway.h"
#include "report.h"

/* GET /v1/usage (MG_REPORT_USAGE), /v1/usage/requests (MG_REPORT_REQUESTS)
 * and /v1/quota (MG_REPORT_QUOTA): answers the request completely, with
 * the report's object or an OpenAI-style error (401 for a bad key, 403
 * for a project key naming another project, 400 for bad parameters, 503
 * without the database). */
void mg_usageapi_handle(struct mg_worker *w, struct mg_exchange *x, enum mg_report which);

/* Runs report r of query q (scoped by the caller) on the responders'
 * store: its object into *out (the caller puts it).  MG_ERR_INVALID with
 * the reason in err for bad input, MG_ERR_DB_DOWN without the database,
 * another error (reason in err) for the rest. */
enum mg_err mg_usageapi_run(struct mg_gateway *gw, enum mg_report r,
    const struct mg_report_query *q, json_object **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
