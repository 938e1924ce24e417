#ifndef MG_SHA256_H
#define MG_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define MG_SHA256_LEN 32

/* SHA-256 (FIPS 180-4) of n bytes into out. */
void mg_sha256(const void *data, size_t n, unsigned char out[MG_SHA256_LEN]);

#endif
