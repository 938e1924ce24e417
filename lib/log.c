#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int log_level = MG_LOG_INFO;
static int log_fd = STDERR_FILENO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int
mg_log_level_parse(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

int
mg_log_open(int level, const char *path)
{
	int fd;

	log_level = level;
	if (path == NULL || path[0] == '\0') {
		mg_log_close();
		return 0;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	mg_log_close();
	log_fd = fd;
	return 0;
}

void
mg_log_close(void)
{
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	log_fd = STDERR_FILENO;
}

int
mg_log_enabled(int level)
{
	return level <= log_level;
}

void
mg_log_write(int level, const char *reqid, const char *fmt, ...)
{
	char msg[2048], line[4200];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	size_t n, i;
	int saved = errno;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s [%d] %s ",
	    ts.tv_nsec / 1000000L,
	    level_names[level < 0 ? 0 : level > MG_LOG_DEBUG ? MG_LOG_DEBUG : level],
	    (int)getpid(), reqid != NULL && reqid[0] != '\0' ? reqid : "-");
	/* escape control characters so untrusted text cannot forge lines */
	for (i = 0; msg[i] != '\0' && n + 5 < sizeof(line); i++) {
		unsigned char c = (unsigned char)msg[i];

		if (c < 0x20 || c == 0x7f)
			n += (size_t)snprintf(line + n, sizeof(line) - n, "\\x%02x", c);
		else
			line[n++] = (char)c;
	}
	line[n++] = '\n';
	if (write(log_fd, line, n) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}
