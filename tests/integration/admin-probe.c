/* admin-probe -- one call of lib/admin.c, its answer as JSON, for
 * test-admin.sh: the operations layer seen the way a face other than the
 * CLI sees it.
 *
 *   admin-probe CONF OP [ARGS...]
 *
 * OP is project-create NAME [LIMIT=VALUE...], project-set NAME
 * [LIMIT=VALUE...], project-list, key-create PROJECT [LABEL], key-list
 * PROJECT, key-revoke WHICH, catalog-sync, catalog-list or reap GRACE;
 * a LIMIT is rpm, tpm, spend_cap, period or models.  Prints one object:
 * {"rc": mg_strerror of the result, "detail": the error's detail or
 * null, and the operation's data: "rows" for a list (as the CLI's --json
 * names them), "key" and "prefix", "prefix", or "n"}.  Exits 0 when the
 * call was made, whatever it answered; 2 on a usage error. */
#include "config.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "conf.h"

/* LIMIT=VALUE words into l; -1 on an unknown one. */
static int
limits(int argc, char **argv, struct mg_admin_limits *l)
{
	int i, k;

	memset(l, 0, sizeof(*l));
	for (i = 0; i < argc; i++) {
		for (k = 0; k < MG_LIMIT__COUNT; k++) {
			const char *name = mg_admin_limit_name((enum mg_admin_limit)k);
			size_t n = strlen(name);

			if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=') {
				l->value[k] = argv[i] + n + 1;
				break;
			}
		}
		if (k == MG_LIMIT__COUNT)
			return -1;
	}
	return 0;
}

static json_object *
text(const char *s)
{
	return s != NULL ? json_object_new_string(s) : NULL;
}

static json_object *
number(long long v)
{
	return v >= 0 ? json_object_new_int64(v) : NULL;
}

/* The rows of a list, with the names the CLI's --json gives them. */
static json_object *
rows_json(const struct mg_admin_list *l)
{
	json_object *arr = json_object_new_array();
	size_t i;

	for (i = 0; i < l->n; i++) {
		json_object *o = json_object_new_object();

		if (l->projects != NULL) {
			const struct mg_admin_project *p = &l->projects[i];

			json_object_object_add(o, "name", text(p->name));
			json_object_object_add(o, "created_at", text(p->created_at));
			json_object_object_add(o, "keys", number(p->keys));
			json_object_object_add(o, "rpm", number(p->rpm));
			json_object_object_add(o, "tpm", number(p->tpm));
			json_object_object_add(o, "spend_cap", text(p->spend_cap));
			json_object_object_add(o, "period", text(p->period));
			json_object_object_add(o, "period_start", text(p->period_start));
			json_object_object_add(o, "spent", text(p->spent));
			json_object_object_add(o, "reserved", text(p->reserved));
			json_object_object_add(o, "models", text(p->models));
		} else if (l->keys != NULL) {
			json_object_object_add(o, "prefix", text(l->keys[i].prefix));
			json_object_object_add(o, "name", text(l->keys[i].name));
			json_object_object_add(o, "created_at", text(l->keys[i].created_at));
			json_object_object_add(o, "revoked_at", text(l->keys[i].revoked_at));
		} else {
			const struct mg_admin_model *m = &l->models[i];

			json_object_object_add(o, "id", text(m->id));
			json_object_object_add(o, "kind", text(m->kind));
			json_object_object_add(o, "context_length", number(m->context_length));
			json_object_object_add(o, "prompt_price", text(m->prompt_price));
			json_object_object_add(o, "completion_price", text(m->completion_price));
			json_object_object_add(o, "synced_at", text(m->synced_at));
		}
		json_object_array_add(arr, o);
	}
	return arr;
}

/* Runs op on a; adds its data to out.  -1 when op is unknown. */
static int
run(struct mg_admin *a, const char *op, int argc, char **argv, json_object *out,
    enum mg_err *rc, char *err, size_t errlen)
{
	struct mg_admin_limits l;
	struct mg_admin_list list;
	struct mg_admin_new_key k;
	char prefix[MG_APIKEY_PREFIX_LEN + 1];
	int n = 0;

	mg_admin_list_init(&list);
	if (strcmp(op, "project-create") == 0 && argc >= 1 && limits(argc - 1, argv + 1, &l) == 0) {
		*rc = mg_admin_project_create(a, argv[0], &l, err, errlen);
	} else if (strcmp(op, "project-set") == 0 && argc >= 1 && limits(argc - 1, argv + 1, &l) == 0) {
		*rc = mg_admin_project_set(a, argv[0], &l, err, errlen);
	} else if (strcmp(op, "project-list") == 0 && argc == 0) {
		*rc = mg_admin_project_list(a, &list, err, errlen);
	} else if (strcmp(op, "key-create") == 0 && (argc == 1 || argc == 2)) {
		*rc = mg_admin_key_create(a, argv[0], argc == 2 ? argv[1] : NULL, &k, err, errlen);
		if (*rc == MG_OK) {
			json_object_object_add(out, "key", text(k.key));
			json_object_object_add(out, "prefix", text(k.prefix));
		}
	} else if (strcmp(op, "key-list") == 0 && argc == 1) {
		*rc = mg_admin_key_list(a, argv[0], &list, err, errlen);
	} else if (strcmp(op, "key-revoke") == 0 && argc == 1) {
		*rc = mg_admin_key_revoke(a, argv[0], prefix, err, errlen);
		if (*rc == MG_OK)
			json_object_object_add(out, "prefix", text(prefix));
	} else if (strcmp(op, "catalog-sync") == 0 && argc == 0) {
		*rc = mg_admin_catalog_sync(a, &n, err, errlen);
		if (*rc == MG_OK)
			json_object_object_add(out, "n", json_object_new_int(n));
	} else if (strcmp(op, "catalog-list") == 0 && argc == 0) {
		*rc = mg_admin_catalog_list(a, &list, err, errlen);
	} else if (strcmp(op, "reap") == 0 && argc == 1) {
		*rc = mg_admin_reap(a, (int)strtol(argv[0], NULL, 10), &n, err, errlen);
		if (*rc == MG_OK)
			json_object_object_add(out, "n", json_object_new_int(n));
	} else {
		return -1;
	}
	if (*rc == MG_OK && strstr(op, "-list") != NULL)
		json_object_object_add(out, "rows", rows_json(&list));
	mg_admin_list_free(&list);
	return 0;
}

int
main(int argc, char **argv)
{
	char err[MG_ERR_DETAIL_LEN];
	struct mg_conf conf;
	struct mg_admin *a = NULL;
	json_object *out;
	enum mg_err rc;
	int status = 0;

	if (argc < 3) {
		fputs("usage: admin-probe CONF OP [ARGS...]\n", stderr);
		return 2;
	}
	if (mg_conf_load(&conf, argv[1], err, sizeof(err)) != MG_OK) {
		fprintf(stderr, "admin-probe: %s\n", err);
		return 2;
	}
	out = json_object_new_object();
	rc = mg_admin_new(&conf, "modelgate-admin-probe", &a, err, sizeof(err));
	if (rc == MG_OK && run(a, argv[2], argc - 3, argv + 3, out, &rc, err, sizeof(err)) < 0) {
		fprintf(stderr, "admin-probe: unknown operation or wrong arguments: %s\n", argv[2]);
		status = 2;
	}
	if (status == 0) {
		json_object_object_add(out, "rc", json_object_new_string(mg_strerror(rc)));
		json_object_object_add(out, "detail", rc == MG_OK ? NULL : json_object_new_string(err));
		printf("%s\n", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN));
	}
	json_object_put(out);
	mg_admin_free(a);
	mg_conf_free(&conf);
	return status;
}
