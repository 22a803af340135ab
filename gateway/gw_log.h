/*
 * gw_log.h - one line per event, key=value, with a level.
 *
 *   2026-11-22T08:30:01.123Z level=warn event=zap.refused peer=127.0.0.1 reason="unknown CURVE key"
 *
 * The first words of the message are the event; callers add key=value pairs
 * in the format string.  Logging goes to stderr (foreground, -d) or syslog.
 * The level is checked before anything is formatted.
 */
#ifndef GW_LOG_H
#define GW_LOG_H

enum gw_log_level { GW_LOG_ERROR = 0, GW_LOG_WARN, GW_LOG_INFO, GW_LOG_DEBUG };

extern int gw_log_level;

/* Send lines to syslog (daemon facility) instead of stderr. */
void gw_log_use_syslog(const char *ident);

void gw_log_at(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) gw_log_at(GW_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)                                                            \
	do {                                                                     \
		if (gw_log_level >= GW_LOG_WARN)                                 \
			gw_log_at(GW_LOG_WARN, __VA_ARGS__);                     \
	} while (0)
#define log_info(...)                                                            \
	do {                                                                     \
		if (gw_log_level >= GW_LOG_INFO)                                 \
			gw_log_at(GW_LOG_INFO, __VA_ARGS__);                     \
	} while (0)
#define log_debug(...)                                                           \
	do {                                                                     \
		if (gw_log_level >= GW_LOG_DEBUG)                                \
			gw_log_at(GW_LOG_DEBUG, __VA_ARGS__);                    \
	} while (0)

/* Escape `s` for a key="value" pair (quotes, backslashes, control bytes)
 * into out[outlen]; returns out. */
const char *gw_log_q(const char *s, char *out, unsigned long outlen);

#endif
