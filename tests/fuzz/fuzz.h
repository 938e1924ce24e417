#ifndef MG_FUZZ_H
#define MG_FUZZ_H

/* fuzz.h -- What the fuzz targets share: libFuzzer's entry points, the
 * input as text, and checks of the properties a target asserts. */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Stops the run with the property that failed: libFuzzer keeps the
 * input and names it. */
#define FUZZ_CHECK(cond) do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

/* The input as a malloc'd text with a NUL after its size bytes (the
 * parsers take text so ended); the caller frees it. */
static inline char *
fuzz_text(const uint8_t *data, size_t size)
{
	char *t = malloc(size + 1);

	FUZZ_CHECK(t != NULL);
	if (size > 0)
		memcpy(t, data, size);
	t[size] = '\0';
	return t;
}

/* Takes the input's first byte as a selector (0 when it is empty). */
static inline unsigned
fuzz_byte(const uint8_t **data, size_t *size)
{
	unsigned b;

	if (*size == 0)
		return 0;
	b = **data;
	(*data)++;
	(*size)--;
	return b;
}

/* The configuration's defaults, made once. */
static inline const struct mg_conf *
fuzz_conf(void)
{
	static struct mg_conf conf;
	static int made;

	if (!made) {
		FUZZ_CHECK(mg_conf_defaults(&conf) == MG_OK);
		made = 1;
	}
	return &conf;
}

#endif
