/* apikey.c -- Client keys: generating them from the OS's randomness, checking their
 * shape, their public prefix, their SHA-256 (libcrypto), and finding one
 * in an Authorization header.  Called by the gateway and the CLI. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <openssl/evp.h>

#include "apikey.h"
#include "base64.h"
#include "text.h"

#define KEY_RANDOM_BYTES 24

/* SHA-256 is fetched from libcrypto's default provider once: an implicit
 * fetch per EVP_Digest call would take the provider store's lock on every
 * request.  NULL when the fetch failed (then every hash fails). */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

enum mg_err
mg_random_bytes(void *out, size_t n)
{
	unsigned char *p = out;

	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);

		if (got < 0) {
			if (errno == EINTR)
				continue;
			return MG_ERR_IO;
		}
		p += got;
		n -= (size_t)got;
	}
	return MG_OK;
}

/* Each thread's store of random bytes for ids (see mg_random_id_bytes),
 * emptied in a child after fork so that no two processes share one. */
#define ID_POOL 512
static __thread unsigned char id_pool[ID_POOL];
static __thread size_t id_pool_left;
static pthread_once_t id_pool_once = PTHREAD_ONCE_INIT;

static void
id_pool_forked(void)
{
	id_pool_left = 0;
}

static void
id_pool_init(void)
{
	pthread_atfork(NULL, NULL, id_pool_forked);
}

enum mg_err
mg_random_id_bytes(void *out, size_t n)
{
	pthread_once(&id_pool_once, id_pool_init);
	if (n > ID_POOL)
		return mg_random_bytes(out, n);
	if (id_pool_left < n) {
		enum mg_err e = mg_random_bytes(id_pool, ID_POOL);

		if (e != MG_OK)
			return e;
		id_pool_left = ID_POOL;
	}
	/* taken from the end; what was handed out is wiped */
	id_pool_left -= n;
	memcpy(out, id_pool + id_pool_left, n);
	memset(id_pool + id_pool_left, 0, n);
	return MG_OK;
}

enum mg_err
mg_apikey_generate(char key[MG_APIKEY_LEN + 1])
{
	unsigned char raw[KEY_RANDOM_BYTES];
	enum mg_err e = mg_random_bytes(raw, sizeof(raw));

	if (e != MG_OK)
		return e;
	memcpy(key, "mg-", 3);
	mg_base64_encode(raw, sizeof(raw), key + 3, 1);
	memset(raw, 0, sizeof(raw));
	return MG_OK;
}

int
mg_apikey_valid(const char *s, size_t n)
{
	size_t i;

	if (n != MG_APIKEY_LEN || strncmp(s, "mg-", 3) != 0)
		return 0;
	for (i = 3; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

void
mg_apikey_prefix(const char *key, char out[MG_APIKEY_PREFIX_LEN + 1])
{
	size_t n = strnlen(key, MG_APIKEY_PREFIX_LEN);

	memcpy(out, key, n);
	out[n] = '\0';
}

enum mg_err
mg_apikey_hash_hex(const char *key, size_t n, char out[MG_APIKEY_HASH_HEX_LEN + 1])
{
	unsigned char h[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	out[0] = '\0';
	if (pthread_once(&sha256_once, sha256_fetch) != 0 || sha256_md == NULL)
		return MG_ERR_NOMEM;
	if (EVP_Digest(key, n, h, &len, sha256_md, NULL) != 1 ||
	    len * 2 != MG_APIKEY_HASH_HEX_LEN)
		return MG_ERR_NOMEM;
	out[mg_text_hex(out, h, len)] = '\0';
	return MG_OK;
}

const char *
mg_apikey_from_header(const char *header, size_t *n)
{
	const char *p, *end;

	if (header == NULL)
		return NULL;
	p = header;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
		return NULL;
	p += 6;
	while (*p == ' ' || *p == '\t')
		p++;
	end = p;
	while (*end != '\0' && *end != ' ' && *end != '\t' && *end != '\r' && *end != '\n')
		end++;
	if (end == p)
		return NULL;
	*n = (size_t)(end - p);
	/* one token (RFC 6750): "Bearer KEY junk" is no key, not KEY */
	while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
		end++;
	if (*end != '\0')
		return NULL;
	return p;
}
