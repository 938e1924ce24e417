#ifndef MG_MODELS_H
#define MG_MODELS_H

#include <json-c/json.h>

#include "err.h"

/* Appends the models of an upstream list (OpenRouter's {"data":[…]} or an
 * OpenAI {"object":"list","data":[…]}) to list, each in the OpenAI shape:
 * object "model", owned_by (from the id's author part when missing),
 * created; other fields stay.  Models already in list are skipped.
 * MG_ERR_UPSTREAM when upstream has no data array. */
enum mg_err mg_models_merge(json_object *list, json_object *upstream)
	__attribute__((warn_unused_result));
/* A new empty {"object":"list","data":[]}; NULL on allocation failure. */
json_object *mg_models_new_list(void);
/* The model with this id in an OpenAI list (borrowed), or NULL. */
json_object *mg_models_find(json_object *list, const char *id);

/* Keeps in list only the models whose id is in allowed (a JSON array of
 * strings); NULL or an empty array keeps all. */
enum mg_err mg_models_keep(json_object *list, json_object *allowed)
	__attribute__((warn_unused_result));

#endif
