/* test_apierror.c -- OpenAI error objects, reason phrases, and what the client is
 * told when the upstream fails. */
#include "config.h"

#include <check.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "apierror.h"
#include "buf.h"
#include "err.h"
#include "unit.h"

/* Parses the JSON in b and returns its "error" object (root in *root). */
static json_object *
error_object(const struct mg_buf *b, json_object **root)
{
	json_object *err;

	*root = json_tokener_parse(mg_buf_str(b));
	ck_assert_msg(*root != NULL, "not JSON: %s", mg_buf_str(b));
	ck_assert_int_eq(json_object_object_length(*root), 1);
	ck_assert(json_object_object_get_ex(*root, "error", &err));
	ck_assert(json_object_is_type(err, json_type_object));
	ck_assert_int_eq(json_object_object_length(err), 4);
	return err;
}

START_TEST(apierror_json_fields)
{
	struct mg_apierror e;
	struct mg_buf b;
	json_object *root, *err, *v;

	mg_buf_init(&b, 4096);
	mg_apierror_set(&e, 404, "invalid_request_error", "model", "model_not_found",
	    "The model '%s' does not exist", "a/b");
	ck_assert_int_eq(e.status, 404);
	ck_assert_int_eq(mg_apierror_json(&e, &b), MG_OK);
	err = error_object(&b, &root);
	ck_assert(json_object_object_get_ex(err, "message", &v));
	ck_assert_str_eq(json_object_get_string(v), "The model 'a/b' does not exist");
	ck_assert(json_object_object_get_ex(err, "type", &v));
	ck_assert_str_eq(json_object_get_string(v), "invalid_request_error");
	ck_assert(json_object_object_get_ex(err, "param", &v));
	ck_assert_str_eq(json_object_get_string(v), "model");
	ck_assert(json_object_object_get_ex(err, "code", &v));
	ck_assert_str_eq(json_object_get_string(v), "model_not_found");
	/* '/' is not escaped */
	ck_assert_ptr_nonnull(strstr(mg_buf_str(&b), "a/b"));
	json_object_put(root);
	mg_buf_free(&b);
}
END_TEST

START_TEST(apierror_json_nulls_and_escapes)
{
	static const char msg[] = "He said \"hi\"\nthen\ttab \\ back \x01 end";
	struct mg_apierror e;
	struct mg_buf b;
	json_object *root, *err, *v;

	mg_buf_init(&b, 4096);
	ck_assert_int_eq(mg_buf_adds(&b, "data: "), MG_OK);
	mg_apierror_set(&e, 500, "server_error", NULL, NULL, "%s", msg);
	ck_assert_int_eq(mg_apierror_json(&e, &b), MG_OK);
	/* appended, not replaced */
	ck_assert(strncmp(mg_buf_str(&b), "data: {", 7) == 0);
	/* no raw control characters in the output */
	ck_assert_ptr_null(strchr(mg_buf_str(&b), '\n'));
	ck_assert_ptr_null(strchr(mg_buf_str(&b), '\t'));
	ck_assert_ptr_null(strchr(mg_buf_str(&b), '\x01'));
	ck_assert_ptr_nonnull(strstr(mg_buf_str(&b), "\\\"hi\\\""));
	ck_assert_ptr_nonnull(strstr(mg_buf_str(&b), "\\n"));

	mg_buf_reset(&b);
	ck_assert_int_eq(mg_apierror_json(&e, &b), MG_OK);
	err = error_object(&b, &root);
	ck_assert(json_object_object_get_ex(err, "message", &v));
	ck_assert_str_eq(json_object_get_string(v), msg);
	ck_assert(json_object_object_get_ex(err, "param", &v));
	ck_assert_ptr_null(v);
	ck_assert(json_object_object_get_ex(err, "code", &v));
	ck_assert_ptr_null(v);
	ck_assert(json_object_object_get_ex(err, "type", &v));
	ck_assert_str_eq(json_object_get_string(v), "server_error");
	ck_assert_ptr_nonnull(strstr(mg_buf_str(&b), "\"param\":null"));
	ck_assert_ptr_nonnull(strstr(mg_buf_str(&b), "\"code\":null"));
	json_object_put(root);
	mg_buf_free(&b);
}
END_TEST

START_TEST(apierror_message_truncated)
{
	struct mg_apierror e;
	char *longmsg = mg_unit_repeat('m', 2000);

	mg_apierror_set(&e, 400, "invalid_request_error", NULL, NULL, "%s", longmsg);
	ck_assert_uint_eq(strlen(e.message), sizeof(e.message) - 1);
	free(longmsg);
}
END_TEST

START_TEST(apierror_json_too_big)
{
	struct mg_apierror e;
	struct mg_buf b;

	mg_buf_init(&b, 16);
	mg_apierror_set(&e, 400, "invalid_request_error", NULL, NULL, "a message that does not fit");
	ck_assert_int_eq(mg_apierror_json(&e, &b), MG_ERR_TOO_BIG);
	ck_assert_uint_eq(b.len, 0);
	mg_buf_free(&b);
}
END_TEST

static const struct {
	int status;
	const char *reason;
} reasons[] = {
	{ 200, "OK" }, { 400, "Bad Request" }, { 401, "Unauthorized" },
	{ 402, "Payment Required" }, { 403, "Forbidden" }, { 404, "Not Found" },
	{ 405, "Method Not Allowed" }, { 408, "Request Timeout" }, { 409, "Conflict" },
	{ 411, "Length Required" }, { 413, "Payload Too Large" },
	{ 415, "Unsupported Media Type" }, { 422, "Unprocessable Entity" },
	{ 429, "Too Many Requests" }, { 500, "Internal Server Error" },
	{ 502, "Bad Gateway" }, { 503, "Service Unavailable" }, { 504, "Gateway Timeout" },
	{ 0, "Unknown" }, { -1, "Unknown" }, { 299, "Unknown" }, { 999, "Unknown" },
};

START_TEST(http_reason_table)
{
	ck_assert_str_eq(mg_http_reason(reasons[_i].status), reasons[_i].reason);
}
END_TEST

/* --- upstream error mapping ------------------------------------------- */

static const struct {
	long status;
	const char *body;
	int want_status;
	const char *code;      /* NULL: not checked */
	const char *message;   /* the message must equal this, or NULL */
	const char *hidden;    /* text the message must not contain, or NULL */
} upstream_errors[] = {
	{ 401, "{\"error\":{\"code\":401,\"message\":\"No auth credentials found for sk-or-v1-abc\"}}",
	  502, "upstream_auth_failed", NULL, "credentials" },
	{ 401, "{\"error\":{\"message\":\"User not found.\",\"code\":401}}",
	  502, "upstream_auth_failed", NULL, "User not found" },
	{ 402, "{\"error\":{\"code\":402,\"message\":\"Insufficient credits. Add more using https://openrouter.ai/credits\"}}",
	  503, NULL, NULL, "credits" },
	{ 429, "{\"error\":{\"code\":429,\"message\":\"Rate limit exceeded\"}}", 503, NULL, NULL, NULL },
	{ 408, "{\"error\":{\"code\":408,\"message\":\"Timed out\"}}", 504, NULL, NULL, NULL },
	{ 500, "{\"error\":{\"code\":500,\"message\":\"Internal Server Error\"}}", 502, NULL, NULL, NULL },
	{ 502, "{\"error\":{\"code\":502,\"message\":\"Provider returned error\"}}", 502, NULL, NULL, NULL },
	{ 503, "<html>Service Unavailable</html>", 502, NULL, NULL, NULL },
	{ 400, "{\"error\":{\"code\":400,\"message\":\"Invalid model specified\"}}",
	  400, NULL, "Invalid model specified", NULL },
	{ 404, "{\"error\":{\"code\":404,\"message\":\"Model not found\"}}", 404, "model_not_found", "Model not found", NULL },
	{ 404, "", 404, "model_not_found", NULL, NULL },
	{ 403, "{\"error\":{\"code\":403,\"message\":\"Input was flagged by moderation\"}}",
	  403, NULL, "Input was flagged by moderation", NULL },
	{ 400, "<html><body>Bad Request</body></html>", 400, NULL, NULL, "<html>" },
	{ 400, "{\"error\":{\"code\":400,\"message\":{\"nested\":true}}}", 400, NULL, NULL, "nested" },
	{ 400, "{\"error\":\"flat string\"}", 400, NULL, NULL, "flat string" },
	{ 400, NULL, 400, NULL, NULL, NULL },
	{ 302, "", 502, NULL, NULL, NULL },
	/* read in place: escapes decoded, the last error named counts */
	{ 400, "{\"error\":{\"message\":\"Mod\\u00e8le \\\"x\\\" unknown\"}}", 400, NULL,
	  "Mod\xc3\xa8le \"x\" unknown", NULL },
	{ 400, "{\"error\":{\"message\":\"first\"},\"error\":{\"message\":\"second\"}}", 400, NULL,
	  "second", NULL },
	{ 400, "{\"error\":{\"message\":\"first\"},\"error\":null}", 400, NULL, NULL, "first" },
	{ 400, "{\"error\":{\"message\":\"cut\"}} trailing", 400, NULL, NULL, "cut" },
};

START_TEST(upstream_error_table)
{
	struct mg_apierror e;
	long st = upstream_errors[_i].status;

	memset(&e, 0, sizeof(e));
	mg_apierror_upstream(st, upstream_errors[_i].body, &e);
	ck_assert_msg(e.status == upstream_errors[_i].want_status, "upstream %ld: status %d, want %d",
	    st, e.status, upstream_errors[_i].want_status);
	ck_assert_ptr_nonnull(e.type);
	ck_assert_ptr_null(e.param);
	ck_assert_msg(e.message[0] != '\0', "upstream %ld: empty message", st);
	if (upstream_errors[_i].code != NULL)
		ck_assert_msg(e.code != NULL && strcmp(e.code, upstream_errors[_i].code) == 0,
		    "upstream %ld: code '%s', want '%s'", st, e.code ? e.code : "(null)", upstream_errors[_i].code);
	if (upstream_errors[_i].message != NULL)
		ck_assert_str_eq(e.message, upstream_errors[_i].message);
	if (upstream_errors[_i].hidden != NULL)
		ck_assert_msg(strstr(e.message, upstream_errors[_i].hidden) == NULL,
		    "upstream %ld: message '%s' shows '%s'", st, e.message, upstream_errors[_i].hidden);
	/* client errors passed on are the client's fault */
	if (e.status >= 400 && e.status < 500)
		ck_assert_str_eq(e.type, "invalid_request_error");
}
END_TEST

/* A non-JSON body gets the same generic text as an empty one. */
START_TEST(upstream_error_generic_message)
{
	struct mg_apierror a, b;

	mg_apierror_upstream(400, "not json at all", &a);
	mg_apierror_upstream(400, "", &b);
	ck_assert_str_eq(a.message, b.message);
	ck_assert_ptr_null(strstr(a.message, "not json"));
	/* a message empty, or empty up to an escaped NUL, is none: the
	 * client never gets an empty message (fuzz_recon) */
	mg_apierror_upstream(400, "{\"error\":{\"message\":\"\"}}", &a);
	ck_assert_str_eq(a.message, b.message);
	mg_apierror_upstream(400, "{\"error\":{\"message\":\"\\u0000x\"}}", &a);
	ck_assert_str_eq(a.message, b.message);
}
END_TEST

static Suite *
apierror_suite(void)
{
	Suite *s = suite_create("apierror");
	TCase *tc = tcase_create("apierror");

	tcase_add_test(tc, apierror_json_fields);
	tcase_add_test(tc, apierror_json_nulls_and_escapes);
	tcase_add_test(tc, apierror_message_truncated);
	tcase_add_test(tc, apierror_json_too_big);
	tcase_add_loop_test(tc, http_reason_table, 0, (int)(sizeof(reasons) / sizeof(reasons[0])));
	tcase_add_loop_test(tc, upstream_error_table, 0, (int)(sizeof(upstream_errors) / sizeof(upstream_errors[0])));
	tcase_add_test(tc, upstream_error_generic_message);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(apierror_suite());
}
