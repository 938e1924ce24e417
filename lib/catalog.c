/* catalog.c -- The model catalog's input: fetching the upstream's model lists and
 * turning them into the rows mg_catalog_replace stores.  Called by
 * `modelgate models sync` and the responders' scheduled refresh. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "models.h"
#include "money.h"
#include "route.h"

/* A price as exact decimal text, or NULL: absent, negative, not a number. */
static json_object *
price(json_object *pricing, const char *name)
{
	json_object *v;
	const char *text;

	if (pricing == NULL || !json_object_object_get_ex(pricing, name, &v) || v == NULL)
		return NULL;
	if (!json_object_is_type(v, json_type_string) && !json_object_is_type(v, json_type_int) &&
	    !json_object_is_type(v, json_type_double))
		return NULL;
	/* json-c keeps a parsed number's own text, so this is exact */
	text = json_object_get_string(v);
	if (text == NULL || !mg_money_valid(text, MG_MONEY_NUMBER))
		return NULL;
	return json_object_new_string(text);
}

static json_object *
row(json_object *m, const char *kind)
{
	json_object *r = json_object_new_object(), *v, *pricing = NULL;

	if (r == NULL)
		return NULL;
	json_object_object_get_ex(m, "id", &v);
	json_object_object_add(r, "id", json_object_get(v));
	json_object_object_add(r, "kind", json_object_new_string(kind));
	json_object_object_add(r, "name", json_object_object_get_ex(m, "name", &v) &&
	    json_object_is_type(v, json_type_string) ? json_object_get(v) : NULL);
	json_object_object_add(r, "context_length", json_object_object_get_ex(m, "context_length", &v) &&
	    json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0 &&
	    json_object_get_int64(v) <= 2147483647 ? json_object_get(v) : NULL);
	if (json_object_object_get_ex(m, "pricing", &pricing) &&
	    !json_object_is_type(pricing, json_type_object))
		pricing = NULL;
	json_object_object_add(r, "prompt_price", price(pricing, "prompt"));
	json_object_object_add(r, "completion_price", price(pricing, "completion"));
	json_object_object_add(r, "object", json_object_get(m));
	return r;
}

enum mg_err
mg_catalog_rows(json_object *chat, json_object *embeddings, json_object **rows)
{
	json_object *list = mg_models_new_list(), *data, *out;
	size_t i, n, n_chat;
	enum mg_err rc;

	*rows = NULL;
	if (list == NULL)
		return MG_ERR_NOMEM;
	rc = mg_models_merge(list, chat);
	if (rc != MG_OK)
		goto fail;
	json_object_object_get_ex(list, "data", &data);
	n_chat = json_object_array_length(data);
	if (embeddings != NULL && mg_models_merge(list, embeddings) == MG_ERR_NOMEM) {
		rc = MG_ERR_NOMEM;
		goto fail;
	}
	out = json_object_new_array();
	if (out == NULL) {
		rc = MG_ERR_NOMEM;
		goto fail;
	}
	n = json_object_array_length(data);
	for (i = 0; i < n; i++) {
		json_object *r = row(json_object_array_get_idx(data, i), i < n_chat ? "chat" : "embedding");

		if (r == NULL || json_object_array_add(out, r) != 0) {
			json_object_put(r);
			json_object_put(out);
			rc = MG_ERR_NOMEM;
			goto fail;
		}
	}
	json_object_put(list);
	*rows = out;
	return MG_OK;
fail:
	json_object_put(list);
	return rc;
}

/* GETs path into reply: the parsed 2xx JSON object in *json.  On failure
 * err says why: rc of the call, or MG_ERR_UPSTREAM with *refused the
 * status of an answer outside 2xx, or MG_ERR_JSON. */
static enum mg_err
get_json(struct mg_upstream *up, struct mg_upstream_reply *reply, const char *path,
    json_object **json, long *refused, char *err, size_t errlen)
{
	enum mg_err rc = mg_upstream_call(up, path, NULL, 0, reply);

	*json = NULL;
	*refused = 0;
	if (rc != MG_OK) {
		mg_err_detail(err, errlen, "GET %s: %s (%s)", path, mg_strerror(rc),
		    mg_upstream_last_error(up));
		return rc;
	}
	if (reply->status < 200 || reply->status > 299) {
		mg_err_detail(err, errlen, "GET %s: HTTP %ld", path, reply->status);
		*refused = reply->status;
		return MG_ERR_UPSTREAM;
	}
	*json = json_tokener_parse(mg_buf_str(&reply->body));
	if (*json == NULL || !json_object_is_type(*json, json_type_object)) {
		json_object_put(*json);
		*json = NULL;
		mg_err_detail(err, errlen, "GET %s: the answer is not a JSON object", path);
		return MG_ERR_JSON;
	}
	return MG_OK;
}

/* The chat model list, and the embedding model list or NULL (OpenRouter
 * lists embedding models apart; other upstreams answer 404). */
static enum mg_err
get_lists(struct mg_upstream *up, struct mg_upstream_reply *reply, json_object **chat,
    json_object **emb, long *refused, char *err, size_t errlen)
{
	long ignored_status;
	enum mg_err rc = get_json(up, reply, "/models", chat, refused, err, errlen);

	*emb = NULL;
	if (rc != MG_OK)
		return rc;
	if (get_json(up, reply, "/embeddings/models", emb, &ignored_status, NULL, 0) != MG_OK)
		*emb = NULL;
	return MG_OK;
}

enum mg_err
mg_catalog_models(struct mg_upstream *up, struct mg_upstream_reply *reply, json_object **list,
    long *refused, char *err, size_t errlen)
{
	json_object *chat, *emb;
	enum mg_err rc = get_lists(up, reply, &chat, &emb, refused, err, errlen);

	*list = NULL;
	if (rc != MG_OK)
		return rc;
	*list = mg_models_new_list();
	rc = *list == NULL ? MG_ERR_NOMEM : mg_models_merge(*list, chat);
	if (rc == MG_OK && emb != NULL && mg_models_merge(*list, emb) == MG_ERR_NOMEM)
		rc = MG_ERR_NOMEM;
	if (rc != MG_OK) {
		mg_err_detail(err, errlen, "GET /models: %s", rc == MG_ERR_NOMEM ? "out of memory"
		    : "the answer has no data array");
		json_object_put(*list);
		*list = NULL;
		if (rc != MG_ERR_NOMEM)
			rc = MG_ERR_JSON;
	}
	json_object_put(chat);
	json_object_put(emb);
	return rc;
}

enum mg_err
mg_catalog_fetch(struct mg_upstream *up, size_t max_response, char **json_text, int *count,
    char *err, size_t errlen)
{
	struct mg_upstream_reply reply;
	json_object *chat, *emb, *rows = NULL;
	long refused;
	enum mg_err rc;

	*json_text = NULL;
	*count = 0;
	mg_upstream_reply_init(&reply, max_response);
	rc = get_lists(up, &reply, &chat, &emb, &refused, err, errlen);
	if (rc != MG_OK)
		goto out;
	rc = mg_catalog_rows(chat, emb, &rows);
	json_object_put(chat);
	json_object_put(emb);
	if (rc != MG_OK) {
		mg_err_detail(err, errlen, "GET /models: %s", rc == MG_ERR_NOMEM ? "out of memory"
		    : "the answer has no data array");
		goto out;
	}
	*count = (int)json_object_array_length(rows);
	if (*count == 0) {
		mg_err_detail(err, errlen, "GET /models: the upstream lists no models");
		rc = MG_ERR_UPSTREAM;
		goto out;
	}
	*json_text = strdup(json_object_to_json_string_ext(rows, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE));
	rc = *json_text != NULL ? MG_OK : MG_ERR_NOMEM;
	if (rc != MG_OK)
		mg_err_detail(err, errlen, "out of memory");
out:
	json_object_put(rows);
	mg_upstream_reply_free(&reply);
	return rc;
}

/* The prefix upstream d's ids get back: that of its first pattern with
 * one, when it strips it; "" otherwise. */
static void
strip_prefix_of(const struct mg_updef *d, char *out, size_t size)
{
	int j;

	out[0] = '\0';
	if (!d->strip_prefix)
		return;
	for (j = 0; j < d->n_patterns; j++) {
		size_t n = strlen(d->patterns[j]);

		if (n > 1 && d->patterns[j][n - 1] == '*') {
			snprintf(out, size, "%.*s", (int)(n - 1), d->patterns[j]);
			return;
		}
	}
}

/* Marks upstream i's rows (parsed) and moves them into all. */
static enum mg_err
mark_rows(const struct mg_conf *c, int i, json_object *rows, json_object *all)
{
	const struct mg_updef *d = &c->ups[i];
	char prefix[MG_MODEL_ID_MAX], id[MG_MODEL_ID_MAX * 2];
	size_t k, n = json_object_array_length(rows);

	strip_prefix_of(d, prefix, sizeof(prefix));
	for (k = 0; k < n; k++) {
		json_object *r = json_object_array_get_idx(rows, k), *v, *obj;
		const char *raw;

		if (!json_object_object_get_ex(r, "id", &v) || (raw = json_object_get_string(v)) == NULL)
			continue;
		/* put the prefix back unless a pattern of this upstream takes
		 * the id as it is */
		snprintf(id, sizeof(id), "%s%s", prefix, raw);
		if (prefix[0] != '\0' && strncmp(raw, prefix, strlen(prefix)) == 0)
			snprintf(id, sizeof(id), "%s", raw);
		if (strlen(id) >= MG_MODEL_ID_MAX)
			continue;
		json_object_object_add(r, "id", json_object_new_string(id));
		if (json_object_object_get_ex(r, "object", &obj) && json_object_is_type(obj, json_type_object))
			json_object_object_add(obj, "id", json_object_new_string(id));
		json_object_object_add(r, "upstream", json_object_new_string(d->name));
		json_object_object_add(r, "routed", json_object_new_boolean(mg_route_find(c, id, NULL) == i));
		if (d->prices == MG_PRICES_CONFIG) {
			json_object_object_add(r, "prompt_price", json_object_new_string(d->prompt_price));
			json_object_object_add(r, "completion_price",
			    json_object_new_string(d->completion_price));
		}
		if (json_object_array_add(all, json_object_get(r)) != 0) {
			json_object_put(r);
			return MG_ERR_NOMEM;
		}
	}
	return MG_OK;
}

/* Appends name to the Postgres array text in out ("{a,b}" once closed);
 * names are letters, digits and "_-." (conf.c), so nothing is quoted. */
static void
array_add(char *out, size_t size, const char *name)
{
	size_t n = strlen(out);

	snprintf(out + n, size - n, "%s%s", n > 1 ? "," : "", name);
}

static void
array_close(char *out, size_t size)
{
	size_t n = strlen(out);

	snprintf(out + n, size - n, "}");
}

enum mg_err
mg_catalog_fetch_all(const struct mg_conf *c, char **json_text, char **upstreams, char **synced,
    int *count, char *err, size_t errlen)
{
	char names[MG_UPSTREAMS_MAX * MG_UPSTREAM_NAME_MAX + 4] = "{";
	char done[sizeof(names)] = "{";
	char why[MG_ERR_DETAIL_LEN], fails[MG_ERR_DETAIL_LEN] = "";
	json_object *all = json_object_new_array();
	enum mg_err rc = MG_OK, failed = MG_OK; /* the failures' error when they share one */
	int i, ok = 0, n_failed = 0;

	*json_text = *upstreams = *synced = NULL;
	*count = 0;
	if (all == NULL)
		return MG_ERR_NOMEM;
	for (i = 0; i < c->n_ups && rc != MG_ERR_NOMEM; i++) {
		struct mg_upstream *up = mg_upstream_new_def(c, &c->ups[i]);
		json_object *rows;
		char *text = NULL;
		int n = 0;

		array_add(names, sizeof(names), c->ups[i].name);
		if (up == NULL) {
			rc = MG_ERR_NOMEM;
			break;
		}
		rc = mg_catalog_fetch(up, (size_t)c->up_max_response, &text, &n, why, sizeof(why));
		mg_upstream_free(up);
		if (rc != MG_OK) {
			/* its rows stay as the last sync left them */
			size_t f = strlen(fails);

			failed = n_failed++ == 0 || failed == rc ? rc : MG_ERR_UPSTREAM;
			if (c->n_ups == 1)
				snprintf(fails, sizeof(fails), "model list from %.300s: %.400s",
				    c->ups[i].base_url, why);
			else
				snprintf(fails + f, sizeof(fails) - f, "%supstream %s (%.200s): %.300s",
				    f > 0 ? "; " : "", c->ups[i].name, c->ups[i].base_url, why);
			rc = MG_OK;
			continue;
		}
		rows = json_tokener_parse(text);
		free(text);
		rc = rows != NULL ? mark_rows(c, i, rows, all) : MG_ERR_NOMEM;
		json_object_put(rows);
		if (rc == MG_OK) {
			array_add(done, sizeof(done), c->ups[i].name);
			ok++;
		}
	}
	mg_err_detail(err, errlen, "%s", rc == MG_ERR_NOMEM ? "out of memory" : fails);
	if (rc == MG_OK && ok == 0)
		rc = failed != MG_OK ? failed : MG_ERR_UPSTREAM; /* unreachable, refused, ... */
	if (rc == MG_OK) {
		array_close(names, sizeof(names));
		array_close(done, sizeof(done));
		*count = (int)json_object_array_length(all);
		*json_text = strdup(json_object_to_json_string_ext(all, JSON_C_TO_STRING_PLAIN |
		    JSON_C_TO_STRING_NOSLASHESCAPE));
		*upstreams = strdup(names);
		*synced = strdup(done);
		if (*json_text == NULL || *upstreams == NULL || *synced == NULL) {
			free(*json_text);
			free(*upstreams);
			free(*synced);
			*json_text = *upstreams = *synced = NULL;
			rc = MG_ERR_NOMEM;
		}
	}
	json_object_put(all);
	return rc;
}
