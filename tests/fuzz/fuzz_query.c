/* fuzz_query.c -- The query string of GET /v1/usage and its kin
 * (report.c): the first byte picks the report, the rest is the query
 * string.  One read gives each field once, decoded, never empty; the
 * call made of it has its statement's parameters, each at most one line
 * of 256 bytes.  The same text is also read as a report's answer. */
#include "config.h"

#include "fuzz.h"
#include "report.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum mg_report r = (enum mg_report)(fuzz_byte(&data, &size) % MG_REPORT__COUNT);
	char *text = fuzz_text(data, size), *copy = fuzz_text(data, size), err[256];
	const char *format = NULL, *param = NULL;
	struct mg_report_query q;
	struct mg_report_call call;
	json_object *o;
	int i, nparams;

	memset(&q, 0, sizeof(q));
	err[0] = '\0';
	if (mg_report_query_string(text, r, &q, &format, &param, err, sizeof(err)) != 0) {
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(param == NULL || (param >= text && param <= text + size));
	} else {
		FUZZ_CHECK(format == NULL || format[0] != '\0');
		FUZZ_CHECK(mg_report_sql(r, NULL, &nparams) != NULL);
		if (mg_report_prepare(r, &q, fuzz_conf(), &call, err, sizeof(err)) == MG_OK) {
			FUZZ_CHECK(call.nparams == nparams && nparams <= MG_REPORT_MAX_PARAMS);
			for (i = 0; i < call.nparams; i++)
				FUZZ_CHECK(call.params[i] == NULL ||
				    strpbrk(call.params[i], "\r\n") == NULL);
		} else {
			FUZZ_CHECK(err[0] != '\0');
		}
	}
	if (mg_report_parse(copy, &o, err, sizeof(err)) == MG_OK)
		FUZZ_CHECK(json_object_is_type(o, json_type_object));
	json_object_put(o);
	free(text);
	free(copy);
	return 0;
}
