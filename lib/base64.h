#ifndef MG_BASE64_H
#define MG_BASE64_H

#include <stddef.h>

/* Length of the encoding of n bytes, without the NUL. */
size_t mg_base64_len(size_t n, int url);
/* Encodes n bytes into out, which must hold mg_base64_len(n)+1 bytes.
 * url = 0: standard alphabet with padding; url = 1: URL-safe, no padding. */
void mg_base64_encode(const unsigned char *in, size_t n, char *out, int url);

#endif
