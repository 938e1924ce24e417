#ifndef MG_APIKEY_H
#define MG_APIKEY_H

#include <stddef.h>

#include "err.h"

/* Client keys: "mg-" followed by 32 URL-safe base64 characters (192 random
 * bits from the OS).  The public prefix is "mg-" plus the first 8 of them.
 * Only the SHA-256 of the whole key is stored. */
#define MG_APIKEY_LEN 35
#define MG_APIKEY_PREFIX_LEN 11
#define MG_APIKEY_HASH_HEX_LEN 64

/* Fills key (MG_APIKEY_LEN+1 bytes) with a new random key.
 * MG_ERR_IO when the OS has no randomness to give. */
enum mg_err mg_apikey_generate(char key[MG_APIKEY_LEN + 1])
	__attribute__((warn_unused_result));
/* 1 if s has the shape of a key (prefix, length, alphabet), else 0. */
int mg_apikey_valid(const char *s, size_t n);
/* The public prefix of a key (MG_APIKEY_PREFIX_LEN+1 bytes). */
void mg_apikey_prefix(const char *key, char out[MG_APIKEY_PREFIX_LEN + 1]);
/* Lower-case hex SHA-256 of n bytes of key (65 bytes with the NUL), from
 * libcrypto's EVP_Digest.  MG_ERR_NOMEM (out empty) when libcrypto cannot
 * digest; thread-safe. */
enum mg_err mg_apikey_hash_hex(const char *key, size_t n,
    char out[MG_APIKEY_HASH_HEX_LEN + 1]) __attribute__((warn_unused_result));
/* Finds the token in an "Authorization: Bearer TOKEN" value (the scheme
 * in any case, blanks around the token).  Returns a pointer into header
 * and its length in *n, or NULL when absent or followed by more text. */
const char *mg_apikey_from_header(const char *header, size_t *n);
/* Random bytes from the OS; MG_ERR_IO on failure. */
enum mg_err mg_random_bytes(void *out, size_t n)
	__attribute__((warn_unused_result));
/* n random bytes for an id that must be unique, not secret (request ids):
 * as mg_random_bytes, but from a per-thread store refilled 512 bytes at a
 * time, so a request costs no system call. */
enum mg_err mg_random_id_bytes(void *out, size_t n) __attribute__((warn_unused_result));

#endif
