/* request.c -- Client request bodies: the checks of chat and embeddings
 * requests, the fields the gateway needs (model, stream, max tokens), and
 * the body of a stream rewritten to ask for usage.  Read in one pass in
 * place (lib/jscan), the one reader of a request's members.  Called by the
 * gateway and the stream relay. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"
#include "request.h"
#include "text.h"

#define EMBEDDING_MAX_INPUTS 2048

static const char invalid[] = "invalid_request_error";

const char *
mg_endpoint_name(enum mg_endpoint ep)
{
	return ep == MG_EP_CHAT ? "chat.completions" : "embeddings";
}

/*
 * The pass over the body notes, for each member the checks look at, its
 * last value (a member named twice counts with its last value, as in
 * json-c and in the upstreams) and what the walk through it found; the
 * checks then judge the notes in a fixed order, so the first error named
 * does not depend on the order of the members.
 */

/* What the walk through messages or input found wrong first. */
enum flaw {
	FLAW_NONE = 0,
	FLAW_NOT_OBJECT,        /* messages[i] is not an object */
	FLAW_ROLE,              /* messages[i].role is not a string */
	FLAW_EMPTY,             /* input: an empty string or token array */
	FLAW_TYPE               /* input: an element of the wrong kind */
};

/* The members of a body that the checks look at. */
enum field {
	F_OTHER = 0, F_MODEL, F_MESSAGES, F_MAX_TOKENS, F_MAX_COMPLETION, F_STREAM,
	F_STREAM_OPTIONS, F_MODELS, F_INPUT, F_FORMAT, F__COUNT
};

struct notes {
	struct mg_jscan_value f[F__COUNT];   /* each member's last value */
	const char *options_end;             /* where stream_options' value ends */
	long items;                          /* messages, input: elements */
	long flaw_at;                        /* the element of the first flaw */
	enum flaw flaw;
	int all_ints;                        /* input: every element an integer */
	const char *open;                    /* the body's opening brace */
	int options;                         /* members of stream_options */
	struct mg_jscan_value include_usage; /* stream_options.include_usage */
	const char *include_usage_end;
	const char *models_from, *models_to; /* the models member's bytes */
	int models_named;                    /* how often models was named */
	int models_first;                    /* models is the first member */
	struct mg_jscan_value alt[MG_CALL_MODELS_MAX]; /* models' elements */
	int n_alt;
	int alt_bad;                         /* models: too many, or not strings */
};

/* models: up to MG_CALL_MODELS_MAX strings. */
static void
walk_models(struct mg_jscan *s, struct notes *n)
{
	struct mg_jscan_value v;

	n->n_alt = 0;
	n->alt_bad = 0;
	while (mg_jscan_element(s)) {
		mg_jscan_value(s, &v);
		if (v.type != MG_JSCAN_STRING || n->n_alt == MG_CALL_MODELS_MAX)
			n->alt_bad = 1;
		else
			n->alt[n->n_alt++] = v;
		mg_jscan_skip(s, &v);
	}
}

/* messages: each element an object with a string role (the last role
 * named counts). */
static void
walk_messages(struct mg_jscan *s, struct notes *n)
{
	struct mg_jscan_value m, role;

	while (mg_jscan_element(s)) {
		mg_jscan_value(s, &m);
		if (m.type != MG_JSCAN_OBJECT) {
			if (n->flaw == FLAW_NONE) {
				n->flaw = FLAW_NOT_OBJECT;
				n->flaw_at = n->items;
			}
			mg_jscan_skip(s, &m);
		} else {
			mg_jscan_pick(s, "role", &role);
			if (role.type != MG_JSCAN_STRING && n->flaw == FLAW_NONE) {
				n->flaw = FLAW_ROLE;
				n->flaw_at = n->items;
			}
		}
		n->items++;
	}
}

/* A token array inside input: 1 when it holds integers only, at least
 * one. */
static int
walk_tokens(struct mg_jscan *s)
{
	struct mg_jscan_value t;
	int tokens = 0, ok = 1;

	while (mg_jscan_element(s)) {
		tokens++;
		mg_jscan_value(s, &t);
		if (t.type != MG_JSCAN_NUMBER || !t.integer)
			ok = 0;
		mg_jscan_skip(s, &t);
	}
	return ok && tokens > 0;
}

/* input as an array: one kind throughout, taken from the first element --
 * non-empty strings, or non-empty integer arrays; integers alone are
 * told by all_ints. */
static void
walk_input(struct mg_jscan *s, struct notes *n)
{
	struct mg_jscan_value v;
	enum flaw flaw;
	int strings = 0;

	n->all_ints = 1;
	while (mg_jscan_element(s)) {
		mg_jscan_value(s, &v);
		if (n->items == 0)
			strings = v.type == MG_JSCAN_STRING;
		if (v.type != MG_JSCAN_NUMBER || !v.integer)
			n->all_ints = 0;
		if (strings)
			flaw = v.type != MG_JSCAN_STRING ? FLAW_TYPE : v.len == 0 ? FLAW_EMPTY : FLAW_NONE;
		else if (v.type == MG_JSCAN_ARRAY)
			flaw = walk_tokens(s) ? FLAW_NONE : FLAW_TYPE;
		else
			flaw = FLAW_TYPE;
		if (v.type != MG_JSCAN_ARRAY || strings)
			mg_jscan_skip(s, &v);
		if (flaw != FLAW_NONE && n->flaw == FLAW_NONE) {
			n->flaw = flaw;
			n->flaw_at = n->items;
		}
		n->items++;
	}
}

/* stream_options as an object: its include_usage, and where that ends. */
static void
walk_stream_options(struct mg_jscan *s, struct notes *n)
{
	static const char *const names[] = { "include_usage", NULL };
	int i;

	n->include_usage.type = MG_JSCAN_NONE;
	n->options = 0;
	while ((i = mg_jscan_field(s, names, NULL)) >= 0) {
		n->options++;
		if (i == 0) {
			mg_jscan_next(s);
			continue;
		}
		mg_jscan_value(s, &n->include_usage);
		mg_jscan_skip(s, &n->include_usage);
		n->include_usage_end = mg_jscan_at(s);
	}
}

/* The pass: the body checked whole as JSON, the notes taken.  0 when it
 * is not JSON; *root is the type of the top-level value. */
static int
scan_body(enum mg_endpoint ep, const char *body, size_t len, struct notes *n,
    enum mg_jscan_type *root)
{
	static const char *const chat_names[] = { "model", "messages", "max_tokens",
		"max_completion_tokens", "stream", "stream_options", "models", NULL };
	static const char *const embeddings_names[] = { "model", "input", "encoding_format",
		"models", NULL };
	static const enum field embeddings_fields[] = { F_OTHER, F_MODEL, F_INPUT, F_FORMAT,
		F_MODELS };
	const char *before;
	int members = 0;
	int chat = ep == MG_EP_CHAT;
	struct mg_jscan s;
	struct mg_jscan_value top, *v;
	int i;

	memset(n, 0, sizeof(*n));
	mg_jscan_init(&s, body, len);
	mg_jscan_value(&s, &top);
	*root = top.type;
	n->open = top.text;
	if (top.type != MG_JSCAN_OBJECT) {
		mg_jscan_skip(&s, &top);
		mg_jscan_finish(&s);
		return mg_jscan_ok(&s);
	}
	while (before = mg_jscan_at(&s),
	    (i = mg_jscan_field(&s, chat ? chat_names : embeddings_names, NULL)) >= 0) {
		enum field k = chat ? (enum field)i : embeddings_fields[i];

		if (members++ == 0)
			before = NULL;   /* the first member: the comma after it goes */
		if (k == F_OTHER) {
			mg_jscan_next(&s);
			continue;
		}
		v = &n->f[k];
		mg_jscan_value(&s, v);
		if (k == F_MESSAGES || k == F_INPUT) {
			/* named again: only the last one's walk counts */
			n->items = 0;
			n->flaw = FLAW_NONE;
		}
		if (k == F_MESSAGES && v->type == MG_JSCAN_ARRAY)
			walk_messages(&s, n);
		else if (k == F_INPUT && v->type == MG_JSCAN_ARRAY)
			walk_input(&s, n);
		else if (k == F_STREAM_OPTIONS && v->type == MG_JSCAN_OBJECT)
			walk_stream_options(&s, n);
		else if (k == F_MODELS && v->type == MG_JSCAN_ARRAY)
			walk_models(&s, n);
		else
			mg_jscan_skip(&s, v);
		if (k == F_MODELS) {
			n->models_named++;
			n->models_first = before == NULL;
			n->models_from = before != NULL ? before : n->open + 1;
			n->models_to = mg_jscan_at(&s);
		}
		if (k == F_STREAM_OPTIONS)
			n->options_end = mg_jscan_at(&s);
	}
	mg_jscan_finish(&s);
	return mg_jscan_ok(&s);
}

/* Absent, or null: the same to every check. */
static int
absent(const struct mg_jscan_value *v)
{
	return v->type == MG_JSCAN_NONE || v->type == MG_JSCAN_NULL;
}

static enum mg_err
check_model(struct mg_call *c, const struct mg_jscan_value *v, struct mg_apierror *e)
{
	long len;
	int nul;

	if (absent(v)) {
		mg_apierror_set(e, 400, invalid, "model", "missing_required_parameter",
		    "you must provide a model parameter");
		return MG_ERR_INVALID;
	}
	len = mg_jscan_string(v, c->model, sizeof(c->model), &nul);
	if (len <= 0 || nul) {
		mg_apierror_set(e, 400, invalid, "model", "invalid_type",
		    "'model' must be a non-empty string");
		return MG_ERR_INVALID;
	}
	if ((size_t)len >= sizeof(c->model)) {
		mg_apierror_set(e, 400, invalid, "model", "invalid_value",
		    "'model' is longer than 255 characters");
		return MG_ERR_INVALID;
	}
	/* the model goes into rows, logs and metrics labels: no control
	 * character, no broken UTF-8 (which Postgres refuses) */
	if (!mg_text_printable(c->model, (size_t)len)) {
		mg_apierror_set(e, 400, invalid, "model", "invalid_value",
		    "'model' must be printable UTF-8 text, without control characters");
		return MG_ERR_INVALID;
	}
	return MG_OK;
}

/* An optional boolean; *out is left alone when absent or null. */
static enum mg_err
check_bool(const struct mg_jscan_value *v, const char *name, int *out, struct mg_apierror *e)
{
	if (absent(v))
		return MG_OK;
	if (v->type != MG_JSCAN_TRUE && v->type != MG_JSCAN_FALSE) {
		mg_apierror_set(e, 400, invalid, name, "invalid_type", "'%s' must be a boolean", name);
		return MG_ERR_INVALID;
	}
	*out = v->type == MG_JSCAN_TRUE;
	return MG_OK;
}

/* max_tokens and max_completion_tokens: absent, null or an integer >= 1;
 * the larger of the two bounds the output. */
static enum mg_err
check_max_tokens(struct mg_call *c, const struct mg_jscan_value *v, const char *name,
    struct mg_apierror *e)
{
	long long n;

	if (absent(v))
		return MG_OK;
	if (v->type != MG_JSCAN_NUMBER || !v->integer) {
		mg_apierror_set(e, 400, invalid, name, "invalid_type", "'%s' must be an integer", name);
		return MG_ERR_INVALID;
	}
	/* past the range of long long: out of range whatever its sign */
	if (mg_jscan_int(v, &n) < 0 || n < 1 || n > MG_MAX_OUTPUT_TOKENS) {
		mg_apierror_set(e, 400, invalid, name, "invalid_value",
		    "'%s' must be between 1 and %d", name, MG_MAX_OUTPUT_TOKENS);
		return MG_ERR_INVALID;
	}
	if (n > c->max_output)
		c->max_output = n;
	return MG_OK;
}

static enum mg_err
check_chat(struct mg_call *c, const struct notes *n, struct mg_apierror *e)
{
	const struct mg_jscan_value *msgs = &n->f[F_MESSAGES], *so = &n->f[F_STREAM_OPTIONS];
	enum mg_err rc;

	if (absent(msgs)) {
		mg_apierror_set(e, 400, invalid, "messages", "missing_required_parameter",
		    "you must provide a messages parameter");
		return MG_ERR_INVALID;
	}
	if (msgs->type != MG_JSCAN_ARRAY) {
		mg_apierror_set(e, 400, invalid, "messages", "invalid_type",
		    "'messages' must be an array of message objects");
		return MG_ERR_INVALID;
	}
	if (n->items == 0) {
		mg_apierror_set(e, 400, invalid, "messages", "empty_array",
		    "'messages' must contain at least one message");
		return MG_ERR_INVALID;
	}
	if (n->flaw != FLAW_NONE) {
		mg_apierror_set(e, 400, invalid, "messages", "invalid_type",
		    n->flaw == FLAW_NOT_OBJECT ? "messages[%ld] must be an object" :
		    "messages[%ld].role must be a string", n->flaw_at);
		return MG_ERR_INVALID;
	}
	rc = check_max_tokens(c, &n->f[F_MAX_TOKENS], "max_tokens", e);
	if (rc == MG_OK)
		rc = check_max_tokens(c, &n->f[F_MAX_COMPLETION], "max_completion_tokens", e);
	if (rc == MG_OK)
		rc = check_bool(&n->f[F_STREAM], "stream", &c->stream, e);
	if (rc != MG_OK || absent(so))
		return rc;
	if (so->type != MG_JSCAN_OBJECT) {
		mg_apierror_set(e, 400, invalid, "stream_options", "invalid_type",
		    "'stream_options' must be an object");
		return MG_ERR_INVALID;
	}
	return check_bool(&n->include_usage, "include_usage", &c->include_usage, e);
}

static enum mg_err
check_embeddings(struct mg_call *c, const struct notes *n, struct mg_apierror *e)
{
	const struct mg_jscan_value *in = &n->f[F_INPUT], *fmt = &n->f[F_FORMAT];

	if (absent(in)) {
		mg_apierror_set(e, 400, invalid, "input", "missing_required_parameter",
		    "you must provide an input parameter");
		return MG_ERR_INVALID;
	}
	if (in->type == MG_JSCAN_STRING) {
		if (in->len == 0)
			goto empty;
	} else if (in->type == MG_JSCAN_ARRAY) {
		if (n->items == 0)
			goto empty;
		if (n->items > EMBEDDING_MAX_INPUTS) {
			mg_apierror_set(e, 400, invalid, "input", "invalid_value",
			    "'input' may hold at most %d items", EMBEDDING_MAX_INPUTS);
			return MG_ERR_INVALID;
		}
		/* integers alone, all strings, or all token arrays: never a mix */
		if (!n->all_ints && n->flaw == FLAW_EMPTY)
			goto empty;
		if (!n->all_ints && n->flaw == FLAW_TYPE)
			goto badtype;
	} else {
		goto badtype;
	}
	if (!absent(fmt)) {
		if (!mg_jscan_is(fmt, "float") && !mg_jscan_is(fmt, "base64")) {
			mg_apierror_set(e, 400, invalid, "encoding_format", "invalid_value",
			    "'encoding_format' must be \"float\" or \"base64\"");
			return MG_ERR_INVALID;
		}
		c->want_base64 = mg_jscan_is(fmt, "base64");
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

/* Where the body of a stream is to ask for usage: the bytes at
 * [at, at + cut) become text. */
static void
note_usage_splice(struct mg_call *c, const struct notes *n, const char *body)
{
	const struct mg_jscan_value *so = &n->f[F_STREAM_OPTIONS];
	const char *at, *end;

	if (so->type == MG_JSCAN_OBJECT && n->include_usage.type != MG_JSCAN_NONE) {
		/* "include_usage": false or null, the last one named */
		at = n->include_usage.text;
		end = n->include_usage_end;
		c->usage_text = "true";
	} else if (so->type == MG_JSCAN_OBJECT) {
		/* after its '{': the object may hold other members */
		at = so->text + 1;
		end = at;
		c->usage_text = n->options > 0 ? "\"include_usage\":true," : "\"include_usage\":true";
	} else if (so->type == MG_JSCAN_NULL) {
		at = so->text;
		end = n->options_end;
		c->usage_text = "{\"include_usage\":true}";
	} else {
		/* none: a member first in the body, which has model and
		 * messages after it */
		at = n->open + 1;
		end = at;
		c->usage_text = "\"stream_options\":{\"include_usage\":true},";
	}
	c->usage_at = (size_t)(at - body);
	c->usage_cut = (size_t)(end - at);
}

/* "models": absent, null, or up to MG_CALL_MODELS_MAX model ids (the
 * request's model among them or not); where it and the model are. */
static enum mg_err
check_models(struct mg_call *c, const struct notes *n, const char *body, struct mg_apierror *e)
{
	const struct mg_jscan_value *m = &n->f[F_MODELS], *model = &n->f[F_MODEL];
	const char *to;
	int i, j;

	c->model_at = (size_t)(model->text - 1 - body);
	c->model_cut = model->len + 2;
	if (n->models_named == 0)
		return MG_OK;
	if (n->models_named > 1) {
		mg_apierror_set(e, 400, invalid, "models", "invalid_value", "'models' is named twice");
		return MG_ERR_INVALID;
	}
	if (m->type != MG_JSCAN_NULL && (m->type != MG_JSCAN_ARRAY || n->alt_bad)) {
		mg_apierror_set(e, 400, invalid, "models", "invalid_type",
		    "'models' must be an array of at most %d model ids", MG_CALL_MODELS_MAX);
		return MG_ERR_INVALID;
	}
	for (i = 0; i < n->n_alt; i++) {
		char *alt = c->alt[c->n_alt];
		int nul, dup = 0;
		long len = mg_jscan_string(&n->alt[i], alt, MG_MODEL_ID_MAX, &nul);

		if (len <= 0 || nul || len >= MG_MODEL_ID_MAX || !mg_text_printable(alt, (size_t)len)) {
			mg_apierror_set(e, 400, invalid, "models", "invalid_value",
			    "models[%d] must be a model id: printable UTF-8 text, 1 to 255 bytes", i);
			return MG_ERR_INVALID;
		}
		dup = strcmp(alt, c->model) == 0;
		for (j = 0; j < c->n_alt && !dup; j++)
			dup = strcmp(alt, c->alt[j]) == 0;
		if (!dup)
			c->n_alt++;
	}
	to = n->models_to;
	if (n->models_first) {
		/* the first member: its comma goes with it */
		while (*to == ' ' || *to == '\t' || *to == '\r' || *to == '\n')
			to++;
		if (*to == ',')
			to++;
	}
	c->models_at = (size_t)(n->models_from - body);
	c->models_cut = (size_t)(to - n->models_from);
	return MG_OK;
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
	struct notes n;
	enum mg_jscan_type root;
	enum mg_err rc;

	call_init(c, ep);
	if (len == 0 || !scan_body(ep, body, len, &n, &root)) {
		mg_apierror_set(e, 400, invalid, NULL, "invalid_json",
		    "We could not parse the JSON body of your request. The body must be a JSON object "
		    "(send it with Content-Type: application/json).");
		return MG_ERR_JSON;
	}
	if (root != MG_JSCAN_OBJECT) {
		mg_apierror_set(e, 400, invalid, NULL, "invalid_json",
		    "The request body must be a JSON object.");
		return MG_ERR_INVALID;
	}
	rc = check_model(c, &n.f[F_MODEL], e);
	if (rc == MG_OK)
		rc = check_models(c, &n, body, e);
	if (rc == MG_OK)
		rc = ep == MG_EP_CHAT ? check_chat(c, &n, e) : check_embeddings(c, &n, e);
	if (rc != MG_OK) {
		call_init(c, ep);
		return rc;
	}
	if (ep == MG_EP_CHAT && c->stream && !c->include_usage)
		note_usage_splice(c, &n, body);
	return MG_OK;
}

const char *
mg_call_usage_body(struct mg_call *c, const char *body, size_t *len)
{
	size_t add, n;

	if (c->usage_text == NULL)
		return body;
	if (c->usage_body == NULL) {
		add = strlen(c->usage_text);
		n = *len - c->usage_cut + add;
		c->usage_body = malloc(n + 1);
		if (c->usage_body == NULL)
			return body;    /* sent as it came: the stream has no usage chunk */
		memcpy(c->usage_body, body, c->usage_at);
		memcpy(c->usage_body + c->usage_at, c->usage_text, add);
		memcpy(c->usage_body + c->usage_at + add, body + c->usage_at + c->usage_cut,
		    *len - c->usage_at - c->usage_cut);
		c->usage_body[n] = '\0';
		c->usage_len = n;
	}
	*len = c->usage_len;
	return c->usage_body;
}

/* One change of a body: cut bytes at at become text. */
struct edit {
	size_t at, cut;
	const char *text;
	size_t len;
};

/* Writes sent as a JSON string into out (size bytes, room for every
 * byte escaped); its length. */
static size_t
json_quote(const char *sent, char *out, size_t size)
{
	size_t n = 0;

	out[n++] = '"';
	for (; *sent != '\0' && n + 8 < size; sent++) {
		unsigned char ch = (unsigned char)*sent;

		if (ch == '"' || ch == '\\') {
			out[n++] = '\\';
			out[n++] = (char)ch;
		} else if (ch < 0x20) {
			n += (size_t)snprintf(out + n, size - n, "\\u%04x", ch);
		} else {
			out[n++] = (char)ch;
		}
	}
	out[n++] = '"';
	out[n] = '\0';
	return n;
}

const char *
mg_call_body(struct mg_call *c, const char *body, size_t *len, const char *sent)
{
	char quoted[MG_MODEL_ID_MAX * 6 + 4];
	struct edit ed[3], t;
	size_t n = 0, total, pos = 0, out = 0;
	int i, j;
	char *b;

	if ((sent == NULL || strcmp(sent, c->model) == 0) && c->models_cut == 0)
		return mg_call_usage_body(c, body, len);
	if (c->usage_text != NULL)
		ed[n++] = (struct edit){ c->usage_at, c->usage_cut, c->usage_text,
		    strlen(c->usage_text) };
	if (sent != NULL && strcmp(sent, c->model) != 0)
		ed[n++] = (struct edit){ c->model_at, c->model_cut, quoted,
		    json_quote(sent, quoted, sizeof(quoted)) };
	if (c->models_cut > 0)
		ed[n++] = (struct edit){ c->models_at, c->models_cut, "", 0 };
	/* in order of place; an insertion before a cut at the same place */
	for (i = 1; i < (int)n; i++)
		for (j = i; j > 0 && (ed[j].at < ed[j - 1].at ||
		    (ed[j].at == ed[j - 1].at && ed[j].cut < ed[j - 1].cut)); j--) {
			t = ed[j];
			ed[j] = ed[j - 1];
			ed[j - 1] = t;
		}
	total = *len;
	for (i = 0; i < (int)n; i++)
		total = total - ed[i].cut + ed[i].len;
	b = realloc(c->sent_body, total + 1);
	if (b == NULL)
		return NULL;
	c->sent_body = b;
	for (i = 0; i < (int)n; i++) {
		memcpy(b + out, body + pos, ed[i].at - pos);
		out += ed[i].at - pos;
		memcpy(b + out, ed[i].text, ed[i].len);
		out += ed[i].len;
		pos = ed[i].at + ed[i].cut;
	}
	memcpy(b + out, body + pos, *len - pos);
	out += *len - pos;
	b[out] = '\0';
	c->sent_len = out;
	*len = out;
	return b;
}

void
mg_call_free(struct mg_call *c)
{
	if (c == NULL)
		return;
	free(c->usage_body);
	c->usage_body = NULL;
	free(c->sent_body);
	c->sent_body = NULL;
	c->model[0] = '\0';
}
