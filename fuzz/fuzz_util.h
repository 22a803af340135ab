/*
 * fuzz_util.h - helpers shared by the libFuzzer targets (docs/fuzzing.md).
 *
 * fz_tmpfile(): the loaders under test read a path, so each input is
 * written to a new temp file (/tmp/qiao-fuzz-<tag>-XXXXXX<suffix>, unique
 * by mkstemps), which fz_tmpdone() removes right after the load.
 * fz_cstr(): the input as a NUL-terminated copy (caller frees).
 */
#ifndef QIAO_FUZZ_UTIL_H
#define QIAO_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fz_path[64];

/* Remove the temp file of the current input (call after every fz_tmpfile;
 * libFuzzer ends with _Exit, so atexit() would not run). */
static inline void fz_tmpdone(void)
{
	if (fz_path[0])
		unlink(fz_path);
	fz_path[0] = '\0';
}

/* Write data to a new temp file /tmp/qiao-fuzz-<tag>-XXXXXX<suffix>; its
 * path, or NULL (then the input is skipped).  Call fz_tmpdone() after. */
static inline const char *fz_tmpfile(const char *tag, const char *suffix, const uint8_t *data, size_t size)
{
	fz_tmpdone();
	snprintf(fz_path, sizeof fz_path, "/tmp/qiao-fuzz-%s-XXXXXX%s", tag, suffix);
	int fd = mkstemps(fz_path, (int)strlen(suffix));
	if (fd < 0) {
		fz_path[0] = '\0';
		return NULL;
	}
	FILE *f = fdopen(fd, "wb");
	if (!f) {
		close(fd);
		fz_tmpdone();
		return NULL;
	}
	int bad = size && fwrite(data, 1, size, f) != size;
	if (fclose(f) != 0 || bad) {
		fz_tmpdone();
		return NULL;
	}
	return fz_path;
}

static inline char *fz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return NULL;
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
