/*
 * audit_fixture DIR N EVERY - write an audit log for the external-verifier
 * test (tests/audit_external.py): in the store directory DIR, the fixture's
 * ADMIN_ACTION entry then N signed exchanges (tests/audit_fixture.h), a
 * checkpoint every EVERY entries and a final one.  Exit 0 on success; a
 * message on stderr and exit 1 otherwise.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "audit_fixture.h"

static int s_num(const char *s, const char *what, uint64_t min, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *s == '-' || *end || errno || v < min) {
		fprintf(stderr, "audit_fixture: %s must be a whole number >= %llu, not '%s'\n", what,
			(unsigned long long)min, s);
		return -1;
	}
	*out = (uint64_t)v;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: audit_fixture DIR N EVERY\n"
				"  writes in the store DIR an audit log of an ADMIN_ACTION entry and N\n"
				"  exchanges, with a checkpoint every EVERY entries and a final one\n");
		return 1;
	}
	uint64_t n, every;
	if (s_num(argv[2], "N", 0, &n) != 0 || s_num(argv[3], "EVERY", 1, &every) != 0)
		return 1;
	struct fx f;
	int rc = fx_open(&f, argv[1], every, 0);
	if (rc != 0) {
		fprintf(stderr, "audit_fixture: cannot open the audit log in %s: %s\n", argv[1], qiao_strerror(rc));
		fx_close(&f);
		return 1;
	}
	rc = fx_fill(&f, n, 50, 1796000000000LL);
	uint64_t written = f.n;
	fx_close(&f);
	if (rc != 0) {
		fprintf(stderr, "audit_fixture: writing the log in %s failed after %llu entries: %s\n", argv[1],
			(unsigned long long)written, qiao_strerror(rc));
		return 1;
	}
	printf("audit_fixture: %llu entries written to %s (checkpoint every %llu)\n", (unsigned long long)written,
	       argv[1], (unsigned long long)every);
	return 0;
}
