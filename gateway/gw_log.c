#include "gw_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

int gw_log_level = GW_LOG_INFO;
static int s_syslog;

static const char *const s_names[] = {"error", "warn", "info", "debug"};

void gw_log_use_syslog(const char *ident)
{
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	s_syslog = 1;
}

void gw_log_at(int level, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (level < 0)
		level = 0;
	if (level > GW_LOG_DEBUG)
		level = GW_LOG_DEBUG;
	if (s_syslog) {
		static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
		syslog(prio[level], "level=%s event=%s", s_names[level], msg);
		return;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[40];
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	/* one fprintf per line so that lines from threads do not interleave */
	fprintf(stderr, "%s.%03ldZ level=%s event=%s\n", when, ts.tv_nsec / 1000000, s_names[level], msg);
}

const char *gw_log_q(const char *s, char *out, unsigned long outlen)
{
	unsigned long n = 0;
	if (!outlen)
		return out;
	for (; s && *s && n + 5 < outlen; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			n += (unsigned long)snprintf(out + n, outlen - n, "\\x%02x", c);
		} else {
			out[n++] = (char)c;
		}
	}
	out[n] = '\0';
	return out;
}
