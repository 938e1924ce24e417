#ifndef MG_CLOCK_H
#define MG_CLOCK_H

#include <time.h>

/* Reading the clocks and arithmetic on struct timespec.  CLOCK_MONOTONIC
 * is for durations, deadlines and waits on conditions set to it;
 * CLOCK_REALTIME for what a person reads (log lines) and for waits on
 * conditions left on the default clock.  Thread-safe; no allocation. */

/* The current time of clock (CLOCK_MONOTONIC or CLOCK_REALTIME). */
void mg_clock_now(clockid_t clock, struct timespec *ts);

/* Moves ts ms milliseconds on (ms >= 0), tv_nsec kept below a second. */
void mg_clock_add_ms(struct timespec *ts, long ms);

/* A deadline ms milliseconds (>= 0) from now on clock. */
void mg_clock_deadline(clockid_t clock, long ms, struct timespec *ts);

/* a minus b in milliseconds: the whole seconds' difference plus the
 * nanoseconds' difference cut toward zero. */
long mg_clock_diff_ms(const struct timespec *a, const struct timespec *b);

/* Milliseconds since start (CLOCK_MONOTONIC). */
long mg_clock_ms_since(const struct timespec *start);

/* Microseconds since start (CLOCK_MONOTONIC), 0 if the clock went back. */
unsigned long long mg_clock_us_since(const struct timespec *start);

/* Milliseconds left until deadline (CLOCK_MONOTONIC); <= 0 when past. */
long mg_clock_ms_until(const struct timespec *deadline);

/* 1 when a is earlier than b, else 0. */
int mg_clock_before(const struct timespec *a, const struct timespec *b);

/* Whole seconds of CLOCK_MONOTONIC: for checks made at most once a
 * second and intervals counted in seconds. */
long mg_clock_seconds(void);

/* The UTC time us microseconds after the epoch as ISO 8601 with
 * microseconds, "2026-12-07T02:14:08.354021Z" (MG_CLOCK_ISO_US bytes with
 * the NUL); 0, or -1 for a time gmtime_r cannot read or past year 9999. */
#define MG_CLOCK_ISO_US 28
int mg_clock_iso_us(long long us, char out[MG_CLOCK_ISO_US]);

#endif
