/* clock.c -- The one owner of time arithmetic: reading the monotonic and
 * the wall clock, deadlines, differences in milliseconds and ordering of
 * struct timespec.  Called by the gateway (latency, time to first token),
 * the store (statement deadlines), the ledger (batch waits), the responder
 * (naps and shutdown) and the log (time stamps). */
#include "config.h"

#include <time.h>

#include "clock.h"

#define NSEC_PER_SEC 1000000000L
#define NSEC_PER_MSEC 1000000L

void
mg_clock_now(clockid_t clock, struct timespec *ts)
{
	/* fails only for a clock the system lacks, and both are POSIX */
	if (clock_gettime(clock, ts) != 0) {
		ts->tv_sec = 0;
		ts->tv_nsec = 0;
	}
}

void
mg_clock_add_ms(struct timespec *ts, long ms)
{
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += ms % 1000 * NSEC_PER_MSEC;
	if (ts->tv_nsec >= NSEC_PER_SEC) {
		ts->tv_sec++;
		ts->tv_nsec -= NSEC_PER_SEC;
	}
}

void
mg_clock_deadline(clockid_t clock, long ms, struct timespec *ts)
{
	mg_clock_now(clock, ts);
	mg_clock_add_ms(ts, ms);
}

long
mg_clock_diff_ms(const struct timespec *a, const struct timespec *b)
{
	return (long)(a->tv_sec - b->tv_sec) * 1000L + (a->tv_nsec - b->tv_nsec) / NSEC_PER_MSEC;
}

long
mg_clock_ms_since(const struct timespec *start)
{
	struct timespec now;

	mg_clock_now(CLOCK_MONOTONIC, &now);
	return mg_clock_diff_ms(&now, start);
}

unsigned long long
mg_clock_us_since(const struct timespec *start)
{
	struct timespec now;
	long long us;

	mg_clock_now(CLOCK_MONOTONIC, &now);
	us = (long long)(now.tv_sec - start->tv_sec) * 1000000 +
	    (now.tv_nsec - start->tv_nsec) / 1000;
	return us > 0 ? (unsigned long long)us : 0;
}

long
mg_clock_ms_until(const struct timespec *deadline)
{
	struct timespec now;

	mg_clock_now(CLOCK_MONOTONIC, &now);
	return mg_clock_diff_ms(deadline, &now);
}

int
mg_clock_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

long
mg_clock_seconds(void)
{
	struct timespec now;

	mg_clock_now(CLOCK_MONOTONIC, &now);
	return (long)now.tv_sec;
}

/* The n decimal digits of v (zero-padded) at p. */
static void
digits(char *p, long long v, int n)
{
	while (n-- > 0) {
		p[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

int
mg_clock_iso_us(long long us, char out[MG_CLOCK_ISO_US])
{
	long long frac = (us % 1000000 + 1000000) % 1000000;
	time_t sec = (time_t)((us - frac) / 1000000);
	struct tm tm;

	if (gmtime_r(&sec, &tm) == NULL || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
		return -1;
	/* YYYY-MM-DDTHH:MM:SS.uuuuuuZ */
	digits(out, tm.tm_year + 1900, 4);
	out[4] = '-';
	digits(out + 5, tm.tm_mon + 1, 2);
	out[7] = '-';
	digits(out + 8, tm.tm_mday, 2);
	out[10] = 'T';
	digits(out + 11, tm.tm_hour, 2);
	out[13] = ':';
	digits(out + 14, tm.tm_min, 2);
	out[16] = ':';
	digits(out + 17, tm.tm_sec, 2);
	out[19] = '.';
	digits(out + 20, frac, 6);
	out[26] = 'Z';
	out[27] = '\0';
	return 0;
}
