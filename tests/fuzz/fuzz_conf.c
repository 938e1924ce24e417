/* fuzz_conf.c -- A configuration file (conf.c, with libconfig): loaded
 * or refused with the file and a reason named; one loaded is dumped
 * (--dump-config), and the dump loads again to the same settings.  The
 * input is written to a temporary file, as the programs read a path;
 * inputs with @include (which reads other files) are left out. */
#include "config.h"

#include <unistd.h>

#include "conf.h"
#include "fuzz.h"
#include "log.h"

static char path[] = "/tmp/fuzz_conf.XXXXXX";
static int fd = -1;

static void
remove_file(void)
{
	if (fd >= 0)
		unlink(path);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fd = mkstemp(path);
	FUZZ_CHECK(fd >= 0);
	atexit(remove_file);
	/* the upstream key's variable: nothing from the environment */
	unsetenv("OPENROUTER_API_KEY");
	return 0;
}

static void
put(const char *text, size_t n)
{
	FUZZ_CHECK(ftruncate(fd, 0) == 0);
	FUZZ_CHECK(pwrite(fd, text, n, 0) == (ssize_t)n);
}

/* The dump of c, malloc'd. */
static char *
dump(const struct mg_conf *c, size_t *n)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, n);

	FUZZ_CHECK(f != NULL);
	mg_conf_dump(c, f);
	FUZZ_CHECK(fclose(f) == 0);
	return text;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mg_conf c, again;
	char err[512], *first, *second;
	size_t n1, n2;

	if (memmem(data, size, "@include", 8) != NULL)
		return 0;
	put((const char *)data, size);
	err[0] = '\0';
	if (mg_conf_load(&c, path, err, sizeof(err)) != MG_OK) {
		FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0);
		return 0;
	}
	FUZZ_CHECK(c.log_level >= 0 && c.up_base_url != NULL);
	first = dump(&c, &n1);
	put(first, n1);
	if (mg_conf_load(&again, path, err, sizeof(err)) != MG_OK) {
		fprintf(stderr, "the dump does not load: %s\n%s", err, first);
		FUZZ_CHECK(0);
	}
	second = dump(&again, &n2);
	FUZZ_CHECK(n1 == n2 && memcmp(first, second, n1) == 0);
	free(first);
	free(second);
	mg_conf_free(&c);
	mg_conf_free(&again);
	return 0;
}
