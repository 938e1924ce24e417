#ifndef MG_LOG_H
#define MG_LOG_H

/* Logging: one line per call, UTC time, level, request id, message.
 * Bytes of the message that are not printable UTF-8 (lib/text: control
 * characters, broken UTF-8) are escaped as \xNN.  Thread-safe. */
enum mg_log_level {
	MG_LOG_ERROR = 0, /* something failed that an operator must look at */
	MG_LOG_WARN,      /* something failed and was handled */
	MG_LOG_INFO,      /* one line per request and lifecycle events */
	MG_LOG_DEBUG      /* details for development */
};

/* Parses "error", "warn", "info", "debug"; -1 if unknown. */
int mg_log_level_parse(const char *name);
/* Sets the level and the destination; path NULL or "" means stderr.
 * Returns 0, or -1 with errno set when the file cannot be opened. */
int mg_log_open(int level, const char *path);
void mg_log_close(void);
/* While level is not -1, lines at that level or more severe go to standard
 * error as well when the log is a file: a program that cannot start says
 * why where whoever started it looks.  Thread-safe. */
void mg_log_tee(int level);
int mg_log_enabled(int level);

#define mg_log(level, reqid, ...) \
	do { \
		if (mg_log_enabled(level)) \
			mg_log_write((level), (reqid), __VA_ARGS__); \
	} while (0)

void mg_log_write(int level, const char *reqid, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
