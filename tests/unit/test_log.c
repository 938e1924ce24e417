#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "text.h"

/* Writes with fn to a fresh log file and returns what the file holds. */
static char *
logged(void (*fn)(void))
{
	char path[] = "/tmp/mg-test-log.XXXXXX";
	int fd = mkstemp(path);
	FILE *f;
	char *text = calloc(1, 65536);
	size_t n;

	ck_assert_int_ge(fd, 0);
	ck_assert_ptr_nonnull(text);
	ck_assert_int_eq(mg_log_open(MG_LOG_INFO, path), 0);
	fn();
	mg_log_close();
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(text, 1, 65535, f);
	text[n] = '\0';
	fclose(f);
	close(fd);
	unlink(path);
	return text;
}

/* The part of a line after its time stamp and pid: "LEVEL REQID MESSAGE\n". */
static const char *
after_prefix(const char *line, const char *level)
{
	char want[64];
	int i;

	/* 2026-01-02T03:04:05.678Z */
	for (i = 0; i < 24; i++) {
		const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";

		if (shape[i] == 'd')
			ck_assert_msg(line[i] >= '0' && line[i] <= '9', "time: %s", line);
		else
			ck_assert_msg(line[i] == shape[i], "time: %s", line);
	}
	snprintf(want, sizeof(want), " %s [%d] ", level, (int)getpid());
	ck_assert_msg(strncmp(line + 24, want, strlen(want)) == 0, "prefix: %s", line);
	return line + 24 + strlen(want);
}

static void
write_plain(void)
{
	mg_log(MG_LOG_INFO, "req_0123", "chat project=%s status=%d", "p1", 200);
	mg_log(MG_LOG_DEBUG, "req_0123", "not written at level info");
	mg_log(MG_LOG_ERROR, NULL, "no request");
	mg_log(MG_LOG_WARN, "", "empty request id");
}

START_TEST(lines_and_levels)
{
	char *text = logged(write_plain), *second, *third;

	second = strchr(text, '\n') + 1;
	third = strchr(second, '\n') + 1;
	second[-1] = '\0';
	third[-1] = '\0';
	ck_assert_str_eq(after_prefix(text, "info"), "req_0123 chat project=p1 status=200");
	ck_assert_str_eq(after_prefix(second, "error"), "- no request");
	ck_assert_str_eq(after_prefix(third, "warn"), "- empty request id\n");
	free(text);
}
END_TEST

static void
write_control(void)
{
	mg_log(MG_LOG_INFO, "r", "a\nb\rc\x01\x1f\x7f d\te");
}

/* Untrusted text cannot forge a line: control characters are escaped. */
START_TEST(control_escaped)
{
	char *text = logged(write_control);

	ck_assert_str_eq(after_prefix(text, "info"), "r a\\x0ab\\x0dc\\x01\\x1f\\x7f d\\x09e\n");
	free(text);
}
END_TEST

static void
write_utf8(void)
{
	mg_log(MG_LOG_INFO, "r", "caf\xc3\xa9 \xe2\x80\xa6 \xf0\x9f\x98\x80|\xff|\xc3\x28|\xc0\xaf|"
	    "\xed\xa0\x80|\xc2\x9b[2J|\xe2\x80\xa8|\xe2\x80");
}

/* Valid UTF-8 stays as it is; broken UTF-8, C1 controls and the line
 * separators are escaped byte by byte. */
START_TEST(utf8_escaped)
{
	char *text = logged(write_utf8);

	ck_assert_str_eq(after_prefix(text, "info"),
	    "r caf\xc3\xa9 \xe2\x80\xa6 \xf0\x9f\x98\x80|\\xff|\\xc3(|\\xc0\\xaf|"
	    "\\xed\\xa0\\x80|\\xc2\\x9b[2J|\\xe2\\x80\\xa8|\\xe2\\x80\n");
	free(text);
}
END_TEST

static void
write_mixed(void)
{
	mg_log(MG_LOG_INFO, "r", "x\xc2\x80y \xc2\xa0z\xe2\x80\xa9\xe2\x80\xaa end \xf0\x9f\x98");
}

/* ASCII runs next to characters of two and three bytes, controls among
 * them, and a character cut by the end of the message. */
START_TEST(mixed_escaped)
{
	char *text = logged(write_mixed);

	ck_assert_str_eq(after_prefix(text, "info"),
	    "r x\\xc2\\x80y \xc2\xa0z\\xe2\\x80\\xa9\xe2\x80\xaa end \\xf0\\x9f\\x98\n");
	free(text);
}
END_TEST

static void
write_cut_utf8(void)
{
	char m[2048];
	size_t i, n = 0;

	/* escapes fill most of the line, two-byte characters the rest: the
	 * cut falls on one of them, at an odd or even place */
	for (i = 0; i < 1001; i++)
		m[n++] = 1;
	while (n + 2 < sizeof(m)) {
		m[n++] = (char)0xc3;
		m[n++] = (char)0xa9;
	}
	m[n] = '\0';
	mg_log(MG_LOG_INFO, "r", "%s", m);
	mg_log(MG_LOG_INFO, "rr", "%s", m);
}

/* A line cut at its limit is not cut inside a character. */
START_TEST(cut_not_inside_a_character)
{
	char *text = logged(write_cut_utf8), *line = text, *end;
	int lines = 0;

	while ((end = strchr(line, '\n')) != NULL) {
		const char *msg = after_prefix(line, "info");

		ck_assert_int_gt(end - msg, 4000);
		ck_assert_msg(mg_text_printable(msg, (size_t)(end - msg)), "line %d: broken UTF-8", lines);
		lines++;
		line = end + 1;
	}
	ck_assert_int_eq(lines, 2);
	free(text);
}
END_TEST

static void
write_long(void)
{
	char *m = malloc(3001);
	size_t i;

	ck_assert_ptr_nonnull(m);
	for (i = 0; i < 3000; i++)
		m[i] = (char)(i % 3 == 0 ? 1 : 'x');
	m[3000] = '\0';
	mg_log(MG_LOG_INFO, "r", "%s", m);
	memset(m, 'y', 3000);
	mg_log(MG_LOG_INFO, "r", "%s", m);
	free(m);
}

/* A long message is cut to the line's room: one line each, whole escapes. */
START_TEST(long_messages_cut)
{
	char *text = logged(write_long), *line = text, *end;
	int lines = 0;

	while ((end = strchr(line, '\n')) != NULL) {
		const char *msg = after_prefix(line, "info");

		ck_assert_int_le(end - line + 1, 4200);
		ck_assert_int_gt(end - msg, 2000);
		if (lines == 0)
			ck_assert_msg(end[-1] == 'x' || end[-4] == '\\', "cut inside an escape");
		else
			ck_assert_int_eq(end - msg, 2 + 2047);    /* "r " and the 2047 bytes kept */
		lines++;
		line = end + 1;
	}
	ck_assert_int_eq(lines, 2);
	ck_assert_str_eq(line, "");
	free(text);
}
END_TEST

START_TEST(level_names)
{
	ck_assert_int_eq(mg_log_level_parse("error"), MG_LOG_ERROR);
	ck_assert_int_eq(mg_log_level_parse("warn"), MG_LOG_WARN);
	ck_assert_int_eq(mg_log_level_parse("info"), MG_LOG_INFO);
	ck_assert_int_eq(mg_log_level_parse("debug"), MG_LOG_DEBUG);
	ck_assert_int_eq(mg_log_level_parse("trace"), -1);
}
END_TEST

static void
write_teed(void)
{
	mg_log_tee(MG_LOG_WARN);
	mg_log(MG_LOG_INFO, NULL, "starting");
	mg_log(MG_LOG_WARN, NULL, "the database does not answer");
	mg_log(MG_LOG_ERROR, NULL, "cannot start");
	mg_log_tee(-1);
	mg_log(MG_LOG_ERROR, "req_1", "after the start");
}

/* Until the tee is turned off, warnings and errors written to the log
 * file also reach standard error (a responder that cannot start). */
START_TEST(tee_to_stderr)
{
	char path[] = "/tmp/mg-test-stderr.XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	char err[4096], *text;
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	text = logged(write_teed);
	ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	n = pread(fd, err, sizeof(err) - 1, 0);
	ck_assert_int_ge(n, 0);
	err[n] = '\0';
	close(fd);
	unlink(path);
	ck_assert_ptr_nonnull(strstr(text, "starting"));
	ck_assert_ptr_nonnull(strstr(text, "after the start"));
	ck_assert_ptr_null(strstr(err, "starting"));
	ck_assert_ptr_nonnull(strstr(err, "warn"));
	ck_assert_ptr_nonnull(strstr(err, "the database does not answer\n"));
	ck_assert_ptr_nonnull(strstr(err, "cannot start\n"));
	ck_assert_ptr_null(strstr(err, "after the start"));
	free(text);
}
END_TEST

static Suite *
log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");

	tcase_add_test(tc, lines_and_levels);
	tcase_add_test(tc, control_escaped);
	tcase_add_test(tc, utf8_escaped);
	tcase_add_test(tc, mixed_escaped);
	tcase_add_test(tc, cut_not_inside_a_character);
	tcase_add_test(tc, long_messages_cut);
	tcase_add_test(tc, level_names);
	tcase_add_test(tc, tee_to_stderr);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(log_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
