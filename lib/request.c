/* request.c -- Client request bodies: the checks of chat and embeddings requests and
 * the fields the gateway needs (model, stream, max tokens).  Called by the
 * gateway. */
#include "config.h"

#include <string.h>

#include "jscan.h"
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
	memcpy(c->model, json_object_get_string(v), (size_t)json_object_get_string_len(v) + 1);
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

/*
 * The hot path: a valid body checked in place with lib/jscan, to the same
 * result as the json-c checks above.  It takes on only bodies it can judge
 * alone and gives up (MG_ERR_JSON) on anything else -- every error, a
 * member of interest named twice or with an escaped name, a number it
 * cannot read exactly -- and the checks above then decide, with their
 * messages.
 */

/* messages: a non-empty array of objects, each with a string role. */
static void
scan_messages(struct mg_jscan *s)
{
	struct mg_jscan_value m, role;
	int n = 0;

	while (mg_jscan_element(s)) {
		n++;
		mg_jscan_value(s, &m);
		if (m.type != MG_JSCAN_OBJECT) {
			mg_jscan_fail(s);
			break;
		}
		mg_jscan_pick(s, "role", &role);
		if (role.type != MG_JSCAN_STRING)
			mg_jscan_fail(s);
	}
	if (n == 0)
		mg_jscan_fail(s);
}

/* An optional boolean: absent or null leaves *out alone. */
static void
scan_bool(struct mg_jscan *s, const struct mg_jscan_value *v, int *out)
{
	if (v->type == MG_JSCAN_TRUE || v->type == MG_JSCAN_FALSE)
		*out = v->type == MG_JSCAN_TRUE;
	else if (v->type != MG_JSCAN_NONE && v->type != MG_JSCAN_NULL)
		mg_jscan_fail(s);
}

/* stream_options: an object whose include_usage is absent, null or a
 * boolean. */
static void
scan_stream_options(struct mg_jscan *s, struct mg_call *c)
{
	struct mg_jscan_value v;

	mg_jscan_pick(s, "include_usage", &v);
	scan_bool(s, &v, &c->include_usage);
}

/* max_tokens, max_completion_tokens: absent, null or 1..MG_MAX_OUTPUT_TOKENS */
static void
scan_max_tokens(struct mg_jscan *s, const struct mg_jscan_value *v, struct mg_call *c)
{
	long long n;

	if (v->type == MG_JSCAN_NONE || v->type == MG_JSCAN_NULL)
		return;
	if (mg_jscan_int(v, &n) < 0 || n < 1 || n > MG_MAX_OUTPUT_TOKENS) {
		mg_jscan_fail(s);
		return;
	}
	if (n > c->max_output)
		c->max_output = n;
}

/* input: a non-empty string, or 1..EMBEDDING_MAX_INPUTS of one kind:
 * integers, non-empty strings or non-empty integer arrays. */
static void
scan_input(struct mg_jscan *s, const struct mg_jscan_value *in)
{
	struct mg_jscan_value v, t;
	enum mg_jscan_type kind = MG_JSCAN_NONE;
	int n = 0, tokens;

	if (in->type == MG_JSCAN_STRING) {
		if (in->len == 0)
			mg_jscan_fail(s);
		return;
	}
	if (in->type != MG_JSCAN_ARRAY) {
		mg_jscan_fail(s);
		return;
	}
	while (mg_jscan_element(s)) {
		mg_jscan_value(s, &v);
		if (n++ == 0)
			kind = v.type;
		if (v.type != kind || n > EMBEDDING_MAX_INPUTS) {
			mg_jscan_fail(s);
		} else if (v.type == MG_JSCAN_NUMBER) {
			if (!v.integer)
				mg_jscan_fail(s);
		} else if (v.type == MG_JSCAN_STRING) {
			if (v.len == 0)
				mg_jscan_fail(s);
		} else if (v.type == MG_JSCAN_ARRAY) {
			tokens = 0;
			while (mg_jscan_element(s)) {
				tokens++;
				mg_jscan_value(s, &t);
				if (t.type != MG_JSCAN_NUMBER || !t.integer)
					mg_jscan_fail(s);
			}
			if (tokens == 0)
				mg_jscan_fail(s);
		} else {
			mg_jscan_fail(s);
		}
	}
	if (n == 0)
		mg_jscan_fail(s);
}

/* The members scan_call looks at, in the order of its slots. */
enum field {
	F_OTHER = 0, F_MODEL, F_MESSAGES, F_MAX_TOKENS, F_MAX_COMPLETION, F_STREAM,
	F_STREAM_OPTIONS, F_INPUT, F_FORMAT, F__COUNT
};

static enum mg_err
scan_call(struct mg_call *c, const char *body, size_t len)
{
	static const char *const chat_names[] = { "model", "messages", "max_tokens",
		"max_completion_tokens", "stream", "stream_options", NULL };
	static const char *const embeddings_names[] = { "model", "input", "encoding_format", NULL };
	int chat = c->endpoint == MG_EP_CHAT;
	struct mg_jscan s;
	struct mg_jscan_value root, f[F__COUNT];
	int i;

	memset(f, 0, sizeof(f));
	mg_jscan_init(&s, body, len);
	mg_jscan_value(&s, &root);
	if (root.type != MG_JSCAN_OBJECT)
		return MG_ERR_JSON;
	while ((i = mg_jscan_field(&s, chat ? chat_names : embeddings_names, NULL)) >= 0) {
		enum field k = i == 0 ? F_OTHER : chat ? (enum field)i :
		    i == 1 ? F_MODEL : i == 2 ? F_INPUT : F_FORMAT;

		if (k == F_OTHER) {
			mg_jscan_next(&s);
			continue;
		}
		mg_jscan_take(&s, &f[k]);
		if (k == F_MESSAGES && f[k].type == MG_JSCAN_ARRAY)
			scan_messages(&s);
		else if (k == F_STREAM_OPTIONS && f[k].type == MG_JSCAN_OBJECT)
			scan_stream_options(&s, c);
		else if (k == F_INPUT)
			scan_input(&s, &f[k]);
		else
			mg_jscan_skip(&s, &f[k]);
	}
	mg_jscan_finish(&s);
	if (!mg_jscan_ok(&s) || f[F_MODEL].type != MG_JSCAN_STRING ||
	    mg_jscan_string(&f[F_MODEL], c->model, sizeof(c->model)) <= 0)
		return MG_ERR_JSON;
	if (chat) {
		if (f[F_MESSAGES].type != MG_JSCAN_ARRAY)
			mg_jscan_fail(&s);
		scan_max_tokens(&s, &f[F_MAX_TOKENS], c);
		scan_max_tokens(&s, &f[F_MAX_COMPLETION], c);
		scan_bool(&s, &f[F_STREAM], &c->stream);
		if (f[F_STREAM_OPTIONS].type != MG_JSCAN_NONE &&
		    f[F_STREAM_OPTIONS].type != MG_JSCAN_NULL &&
		    f[F_STREAM_OPTIONS].type != MG_JSCAN_OBJECT)
			mg_jscan_fail(&s);
	} else {
		if (f[F_INPUT].type == MG_JSCAN_NONE)
			mg_jscan_fail(&s);
		if (mg_jscan_is(&f[F_FORMAT], "base64"))
			c->want_base64 = 1;
		else if (f[F_FORMAT].type != MG_JSCAN_NONE && f[F_FORMAT].type != MG_JSCAN_NULL &&
		    !mg_jscan_is(&f[F_FORMAT], "float"))
			mg_jscan_fail(&s);
	}
	return mg_jscan_ok(&s) ? MG_OK : MG_ERR_JSON;
}

static void
call_init(struct mg_call *c, enum mg_endpoint ep)
{
	memset(c, 0, sizeof(*c));
	c->max_output = -1;
	c->endpoint = ep;
}

enum mg_err
mg_request_parse(enum mg_endpoint ep, const char *body, size_t len,
    struct mg_call *c, struct mg_apierror *e)
{
	enum mg_err rc;

	call_init(c, ep);
	if (len > 0 && len <= (size_t)0x7fffffff && scan_call(c, body, len) == MG_OK)
		return MG_OK;
	call_init(c, ep);
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
	c->model[0] = '\0';
	return rc;
}

json_object *
mg_call_tree(struct mg_call *c, const char *body, size_t len)
{
	if (c->root == NULL)
		c->root = parse_json(body, len);
	return c->root;
}

void
mg_call_free(struct mg_call *c)
{
	if (c == NULL)
		return;
	json_object_put(c->root);
	c->root = NULL;
	c->model[0] = '\0';
}
