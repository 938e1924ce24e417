/* log.c -- Logging: one escaped line per call with UTC time, level and request id;
 * the level is checked before formatting.  Thread-safe; used everywhere. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "text.h"


/* The process id for log lines, read once (and again in a child after
 * fork): getpid is a system call. */
static pid_t cached_pid;
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;

/* in the child, whose one thread runs it before any other starts */
static void
pid_forked(void)
{
	cached_pid = getpid();
}

static void
pid_init(void)
{
	cached_pid = getpid();
	pthread_atfork(NULL, NULL, pid_forked);
}

static pid_t
log_pid(void)
{
	pthread_once(&pid_once, pid_init);
	return cached_pid;
}

static int log_level = MG_LOG_INFO;
static int log_fd = STDERR_FILENO;
static int log_tee = -1;

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

void
mg_log_tee(int level)
{
	__atomic_store_n(&log_tee, level, __ATOMIC_RELAXED);
}

int
mg_log_enabled(int level)
{
	return level <= log_level;
}

/* "YYYY-MM-DDTHH:MM:SS" for the second sec, formatted once a second per
 * thread; its length. */
static size_t
put_second(char *dst, time_t sec)
{
	static __thread time_t last = (time_t)-1;
	static __thread char text[32];
	static __thread size_t len;
	struct tm tm;

	if (sec != last) {
		gmtime_r(&sec, &tm);
		len = strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
		last = sec;
	}
	memcpy(dst, text, len);
	return len;
}

void
mg_log_write(int level, const char *reqid, const char *fmt, ...)
{
	char msg[2048], line[4200];
	const char *name = level_names[level < 0 ? 0 : level > MG_LOG_DEBUG ? MG_LOG_DEBUG : level];
	/* room for the message: an escape takes 4 bytes, the newline 1 */
	const size_t limit = sizeof(line) - 5;
	struct timespec ts;
	va_list ap;
	size_t n, i, len;
	long ms;
	int saved = errno;

	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	va_end(ap);
	len = strlen(msg);

	mg_clock_now(CLOCK_REALTIME, &ts);
	n = put_second(line, ts.tv_sec);
	ms = ts.tv_nsec / 1000000L;
	line[n++] = '.';
	line[n++] = (char)('0' + ms / 100);
	line[n++] = (char)('0' + ms / 10 % 10);
	line[n++] = (char)('0' + ms % 10);
	line[n++] = 'Z';
	line[n++] = ' ';
	memcpy(line + n, name, strlen(name));
	n += strlen(name);
	line[n++] = ' ';
	line[n++] = '[';
	n += mg_text_decimal(line + n, (long long)log_pid(), 1);
	line[n++] = ']';
	line[n++] = ' ';
	if (reqid == NULL || reqid[0] == '\0')
		reqid = "-";
	i = strnlen(reqid, 128);
	memcpy(line + n, reqid, i);
	n += i;
	line[n++] = ' ';
	/* escape every byte that is not printable UTF-8 (lib/text): untrusted
	 * text can neither forge lines nor put broken UTF-8 or terminal
	 * controls into the log */
	for (i = 0; i < len && n < limit;) {
		unsigned char c = (unsigned char)msg[i];
		size_t run = mg_text_printable_len(msg + i, len - i);

		if (run > limit - n) {
			/* cut at the limit, not inside a character */
			run = limit - n;
			while (run > 0 && ((unsigned char)msg[i + run] & 0xc0) == 0x80)
				run--;
		}
		if (run > 0) {
			memcpy(line + n, msg + i, run);
			n += run;
			i += run;
			continue;
		}
		line[n++] = '\\';
		line[n++] = 'x';
		n += mg_text_hex(line + n, &c, 1);
		i++;
	}
	line[n++] = '\n';
	if (write(log_fd, line, n) < 0) {
		/* nowhere left to report it */
	}
	if (log_fd != STDERR_FILENO && level <= __atomic_load_n(&log_tee, __ATOMIC_RELAXED) &&
	    write(STDERR_FILENO, line, n) < 0) {
		/* standard error closed: the file has it */
	}
	errno = saved;
}
