/*
 * check.h - the tiny assertion kit every test uses.
 *
 * CHECK(cond)        fails the test with file:line when cond is false.
 * CHECK_RC(expr)     expr must return 0; prints qiao_strerror() otherwise.
 * CHECK_ERR(expr, e) expr must return exactly e.
 * A failed check prints and counts; check_done() returns the exit status and
 * prints "N passed, N failed".
 */
#ifndef QIAO_TEST_CHECK_H
#define QIAO_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include "qiao_err.h"

static int check_pass_, check_fail_;

#define CHECK(cond)                                                              \
	do {                                                                     \
		if (cond) {                                                      \
			check_pass_++;                                           \
		} else {                                                         \
			check_fail_++;                                           \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,   \
				__LINE__, #cond);                                \
		}                                                                \
	} while (0)

#define CHECK_RC(expr)                                                           \
	do {                                                                     \
		int rc_ = (expr);                                                \
		if (rc_ == 0) {                                                  \
			check_pass_++;                                           \
		} else {                                                         \
			check_fail_++;                                           \
			fprintf(stderr, "%s:%d: %s returned %d (%s)\n", __FILE__, \
				__LINE__, #expr, rc_, qiao_strerror(rc_));       \
		}                                                                \
	} while (0)

#define CHECK_ERR(expr, want)                                                    \
	do {                                                                     \
		int rc_ = (expr), want_ = (want);                                \
		if (rc_ == want_) {                                              \
			check_pass_++;                                           \
		} else {                                                         \
			check_fail_++;                                           \
			fprintf(stderr, "%s:%d: %s returned %d (%s), want %d (%s)\n", \
				__FILE__, __LINE__, #expr, rc_, qiao_strerror(rc_), \
				want_, qiao_strerror(want_));                    \
		}                                                                \
	} while (0)

static inline int check_done(void)
{
	printf("%d passed, %d failed\n", check_pass_, check_fail_);
	return check_fail_ ? 1 : 0;
}

/* ms times QIAO_TIME_SCALE (default 1): the waits of the harnesses and the
 * heartbeats of their configs, so that a run under valgrind memcheck
 * (ops/valgrind sets 10; it is some 20x slower) waits long enough instead of
 * failing for slowness.  The timing assertions themselves are not scaled. */
static inline int check_ms(int ms)
{
	static int scale;
	if (scale == 0) {
		const char *s = getenv("QIAO_TIME_SCALE");
		int v = s ? atoi(s) : 1;
		scale = v >= 1 && v <= 100 ? v : 1;
	}
	return ms * scale;
}

/* The run is slowed on purpose (QIAO_TIME_SCALE > 1, e.g. ops/valgrind):
 * tests with a light mode use it then and say so. */
static inline int check_slowed(void)
{
	return check_ms(1) > 1;
}

#endif
