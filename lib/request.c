#include "config.h"

#include <string.h>

#include "request.h"

#define JSON_MAX_DEPTH 64
#define EMBEDDING_MAX_INPUTS 2048

static const char invalid[] = "invalid_request_error";

const char *
mg_endpoint_name(enum mg_endpoint ep)
{
	return ep == MG_EP_CHAT ? "chat.completions" : "embeddings";
}

static int
only_space(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
			return 0;
	return 1;
}

static json_object *
parse_json(const char *body, size_t len)
{
	json_tokener *tok;
	json_object *root;
	size_t end;

	if (len == 0 || len > (size_t)0x7fffffff)
		return NULL;
	tok = json_tokener_new_ex(JSON_MAX_DEPTH);
	if (tok == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, body, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (root != NULL && json_tokener_get_error(tok) == json_tokener_success &&
	    end < len && !only_space(body + end, len - end)) {
		json_object_put(root);
		root = NULL;
	}
	json_tokener_free(tok);
	return root;
}

static enum mg_err
check_model(struct mg_call *c, struct mg_apierror *e)
{
	json_object *v;

	if (!json_object_object_get_ex(c->root, "model", &v) || v == NULL) {
		mg_apierror_set(e, 400, invalid, "model", "missing_required_parameter",
		    "you must provide a model parameter");
		return MG_ERR_INVALID;
	}
	if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0 ||
	    strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v)) {
		mg_apierror_set(e, 400, invalid, "model", "invalid_type",
		    "'model' must be a non-empty string");
		return MG_ERR_INVALID;
	}
	if (json_object_get_string_len(v) >= 256) {
		mg_apierror_set(e, 400, invalid, "model", "invalid_value",
		    "'model' is longer than 255 characters");
		return MG_ERR_INVALID;
	}
	c->model = json_object_get_string(v);
	return MG_OK;
}

/* Checks an optional boolean field; *out is left alone when absent/null. */
static enum mg_err
check_bool(json_object *obj, const char *name, int *out, struct mg_apierror *e)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, name, &v) || v == NULL)
		return MG_OK;
	if (!json_object_is_type(v, json_type_boolean)) {
		mg_apierror_set(e, 400, invalid, name, "invalid_type",
		    "'%s' must be a boolean", name);
		return MG_ERR_INVALID;
	}
	*out = json_object_get_boolean(v);
	return MG_OK;
}

/* max_tokens and max_completion_tokens: absent, null or an integer >= 1;
 * the larger of the two bounds the output. */
static enum mg_err
check_max_tokens(struct mg_call *c, const char *name, struct mg_apierror *e)
{
	json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(c->root, name, &v) || v == NULL)
		return MG_OK;
	if (!json_object_is_type(v, json_type_int)) {
		mg_apierror_set(e, 400, invalid, name, "invalid_type",
		    "'%s' must be an integer", name);
		return MG_ERR_INVALID;
	}
	n = json_object_get_int64(v);
	if (n < 1 || n > MG_MAX_OUTPUT_TOKENS) {
		mg_apierror_set(e, 400, invalid, name, "invalid_value",
		    "'%s' must be between 1 and %d", name, MG_MAX_OUTPUT_TOKENS);
		return MG_ERR_INVALID;
	}
	if (n > c->max_output)
		c->max_output = n;
	return MG_OK;
}

static enum mg_err
check_chat(struct mg_call *c, struct mg_apierror *e)
{
	json_object *msgs, *so;
	size_t i, n;
	enum mg_err rc;

	if (!json_object_object_get_ex(c->root, "messages", &msgs) || msgs == NULL) {
		mg_apierror_set(e, 400, invalid, "messages", "missing_required_parameter",
		    "you must provide a messages parameter");
		return MG_ERR_INVALID;
	}
	if (!json_object_is_type(msgs, json_type_array)) {
		mg_apierror_set(e, 400, invalid, "messages", "invalid_type",
		    "'messages' must be an array of message objects");
		return MG_ERR_INVALID;
	}
	n = json_object_array_length(msgs);
	if (n == 0) {
		mg_apierror_set(e, 400, invalid, "messages", "empty_array",
		    "'messages' must contain at least one message");
		return MG_ERR_INVALID;
	}
	for (i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(msgs, i), *role;

		if (!json_object_is_type(m, json_type_object)) {
			mg_apierror_set(e, 400, invalid, "messages", "invalid_type",
			    "messages[%zu] must be an object", i);
			return MG_ERR_INVALID;
		}
		if (!json_object_object_get_ex(m, "role", &role) ||
		    !json_object_is_type(role, json_type_string)) {
			mg_apierror_set(e, 400, invalid, "messages", "invalid_type",
			    "messages[%zu].role must be a string", i);
			return MG_ERR_INVALID;
		}
	}
	rc = check_max_tokens(c, "max_tokens", e);
	if (rc == MG_OK)
		rc = check_max_tokens(c, "max_completion_tokens", e);
	if (rc != MG_OK)
		return rc;
	rc = check_bool(c->root, "stream", &c->stream, e);
	if (rc != MG_OK)
		return rc;
	if (json_object_object_get_ex(c->root, "stream_options", &so) && so != NULL) {
		if (!json_object_is_type(so, json_type_object)) {
			mg_apierror_set(e, 400, invalid, "stream_options", "invalid_type",
			    "'stream_options' must be an object");
			return MG_ERR_INVALID;
		}
		rc = check_bool(so, "include_usage", &c->include_usage, e);
		if (rc != MG_OK)
			return rc;
	}
	return MG_OK;
}

static int
is_token_array(json_object *a)
{
	size_t i, n = json_object_array_length(a);

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (!json_object_is_type(json_object_array_get_idx(a, i), json_type_int))
			return 0;
	return 1;
}

static enum mg_err
check_embeddings(struct mg_call *c, struct mg_apierror *e)
{
	json_object *in, *fmt;
	size_t i, n;

	if (!json_object_object_get_ex(c->root, "input", &in) || in == NULL) {
		mg_apierror_set(e, 400, invalid, "input", "missing_required_parameter",
		    "you must provide an input parameter");
		return MG_ERR_INVALID;
	}
	if (json_object_is_type(in, json_type_string)) {
		if (json_object_get_string_len(in) == 0)
			goto empty;
	} else if (json_object_is_type(in, json_type_array)) {
		n = json_object_array_length(in);
		if (n == 0)
			goto empty;
		if (n > EMBEDDING_MAX_INPUTS) {
			mg_apierror_set(e, 400, invalid, "input", "invalid_value",
			    "'input' may hold at most %d items", EMBEDDING_MAX_INPUTS);
			return MG_ERR_INVALID;
		}
		if (!is_token_array(in)) {
			/* all strings, or all token arrays: never a mix */
			int strings = json_object_is_type(json_object_array_get_idx(in, 0), json_type_string);

			for (i = 0; i < n; i++) {
				json_object *it = json_object_array_get_idx(in, i);

				if (strings && json_object_is_type(it, json_type_string)) {
					if (json_object_get_string_len(it) == 0)
						goto empty;
				} else if (strings || !json_object_is_type(it, json_type_array) ||
				    !is_token_array(it)) {
					goto badtype;
				}
			}
		}
	} else {
		goto badtype;
	}
	if (json_object_object_get_ex(c->root, "encoding_format", &fmt) && fmt != NULL) {
		const char *f = json_object_get_string(fmt);

		if (!json_object_is_type(fmt, json_type_string) ||
		    (strcmp(f, "float") != 0 && strcmp(f, "base64") != 0)) {
			mg_apierror_set(e, 400, invalid, "encoding_format", "invalid_value",
			    "'encoding_format' must be \"float\" or \"base64\"");
			return MG_ERR_INVALID;
		}
		c->want_base64 = strcmp(f, "base64") == 0;
	}
	return MG_OK;
empty:
	mg_apierror_set(e, 400, invalid, "input", "invalid_value",
	    "'input' must not be empty");
	return MG_ERR_INVALID;
badtype:
	mg_apierror_set(e, 400, invalid, "input", "invalid_type",
	    "'input' must be a string, an array of strings, an array of integers or an array of integer arrays");
	return MG_ERR_INVALID;
}

enum mg_err
mg_request_parse(enum mg_endpoint ep, const char *body, size_t len,
    struct mg_call *c, struct mg_apierror *e)
{
	enum mg_err rc;

	memset(c, 0, sizeof(*c));
	c->max_output = -1;
	c->endpoint = ep;
	c->root = parse_json(body, len);
	if (c->root == NULL) {
		mg_apierror_set(e, 400, invalid, NULL, "invalid_json",
		    "We could not parse the JSON body of your request. The body must be a JSON object "
		    "(send it with Content-Type: application/json).");
		return MG_ERR_JSON;
	}
	if (!json_object_is_type(c->root, json_type_object)) {
		mg_apierror_set(e, 400, invalid, NULL, "invalid_json",
		    "The request body must be a JSON object.");
		rc = MG_ERR_INVALID;
		goto fail;
	}
	rc = check_model(c, e);
	if (rc != MG_OK)
		goto fail;
	rc = ep == MG_EP_CHAT ? check_chat(c, e) : check_embeddings(c, e);
	if (rc != MG_OK)
		goto fail;
	return MG_OK;
fail:
	json_object_put(c->root);
	c->root = NULL;
	c->model = NULL;
	return rc;
}

void
mg_call_free(struct mg_call *c)
{
	if (c == NULL)
		return;
	json_object_put(c->root);
	c->root = NULL;
	c->model = NULL;
}
