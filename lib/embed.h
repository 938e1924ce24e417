#ifndef MG_EMBED_H
#define MG_EMBED_H

#include <json-c/json.h>

#include "err.h"

/* In an embeddings response, replaces every data[i].embedding that is an
 * array of numbers by the base64 of its little-endian float32 bytes (what
 * a client that asked for encoding_format "base64" decodes).  Embeddings
 * that are strings already stay.  MG_ERR_UPSTREAM if the shape is wrong. */
enum mg_err mg_embed_to_base64(json_object *resp) __attribute__((warn_unused_result));

#endif
