#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_err(const char *fmt, ...)
{
	va_list ap;
	fputs("qiao: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_parse_i64(const char *s, int64_t min, int64_t max, const char *what, int64_t *out)
{
	char *end = NULL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || !end || end == s || *end || v < min || v > max) {
		cli_err("%s: '%s' is not a whole number between %lld and %lld", what, s,
			(long long)min, (long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

void cli_json_print(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	if (s) {
		puts(s);
		free(s);
	}
	json_decref(j);
}

int cli_read_file(const char *path, size_t max, uint8_t **buf, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (!f)
		return -errno;
	size_t cap = 4096, n = 0;
	uint8_t *b = malloc(cap);
	if (!b) {
		if (f != stdin)
			fclose(f);
		return -ENOMEM;
	}
	for (;;) {
		if (n == cap) {
			if (cap > max) {
				free(b);
				if (f != stdin)
					fclose(f);
				return -EFBIG;
			}
			uint8_t *nb = realloc(b, cap * 2);
			if (!nb) {
				free(b);
				if (f != stdin)
					fclose(f);
				return -ENOMEM;
			}
			b = nb, cap *= 2;
		}
		size_t r = fread(b + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	int bad = ferror(f);
	if (f != stdin)
		fclose(f);
	if (bad) {
		free(b);
		return -EIO;
	}
	if (n > max) {
		free(b);
		return -EFBIG;
	}
	*buf = b;
	*len = n;
	return 0;
}
