/* qiao store: low-level access to a Qiao LMDB store (operators, demos). */
#include "cli.h"
#include "qiao_envelope.h"
#include "qiao_err.h"
#include "qiao_store.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLI_TABLE_TYPE 1

static void s_help(FILE *out)
{
	fputs("usage: qiao store --store DIR [--type N] [--json] COMMAND ...\n"
	      "\n"
	      "commands:\n"
	      "  put TABLE KEY VALUE [--ttl SECONDS]   store VALUE (durable on return)\n"
	      "  get TABLE KEY                          print the value (exit 1 if absent)\n"
	      "  del TABLE KEY                          remove the record (exit 1 if absent)\n"
	      "  list TABLE [--prefix P] [--limit N]    records in key order\n"
	      "  backup DEST                            consistent compact copy into DEST (online;\n"
	      "                                         with the audit index key, if any; progress\n"
	      "                                         on stderr when it is a terminal)\n"
	      "  info                                   map size, use, readers\n"
	      "\n"
	      "Tables are created by put with record type N (default 1); reading a table\n"
	      "of another type needs --type.  Values that are not printable text are\n"
	      "shown in hex.  The store may be in use by the gateway meanwhile.\n"
	      "\n"
	      "examples:\n"
	      "  qiao store --store /var/lib/qiao/store put notes greeting 'hello'\n"
	      "  qiao store --store /var/lib/qiao/store --json list notes --prefix gr\n"
	      "  qiao store --store /var/lib/qiao/store backup /backup/qiao-2026-11-22\n",
	      out);
}

struct list_ctx {
	int json;
	int64_t limit, n;
	json_t *arr;
};

static void s_show(const void *v, size_t vl, char **txt, int *is_hex)
{
	int printable = qiao_utf8_chars(v, vl) >= 0 && memchr(v, 0, vl) == NULL;
	*is_hex = !printable;
	*txt = malloc(printable ? vl + 1 : 2 * vl + 1);
	if (!*txt)
		return;
	if (printable) {
		memcpy(*txt, v, vl);
		(*txt)[vl] = '\0';
	} else {
		qiao_hex(v, vl, *txt);
	}
}

static int s_list_cb(void *arg, const void *k, size_t kl, const void *v, size_t vl, int64_t exp)
{
	struct list_ctx *c = arg;
	if (c->limit && c->n >= c->limit)
		return 1;
	c->n++;
	char *ks, *vs;
	int kh, vh;
	s_show(k, kl, &ks, &kh);
	s_show(v, vl, &vs, &vh);
	if (!ks || !vs) {
		free(ks);
		free(vs);
		return QIAO_ENOMEM;
	}
	if (c->json)
		json_array_append_new(c->arr, json_pack("{s:s, s:s, s:s, s:I}", "key", ks,
							kh ? "value_hex" : "value", vs, "encoding",
							vh ? "hex" : "utf-8", "expires_at_ms",
							(json_int_t)exp));
	else
		if (exp) {
			time_t t = (time_t)(exp / 1000);
			struct tm tm;
			char when[32];
			gmtime_r(&t, &tm);
			strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
			printf("%s\t%s\t(expires %s)\n", ks, vs, when);
		} else {
			printf("%s\t%s\n", ks, vs);
		}
	free(ks);
	free(vs);
	return 0;
}

/*
 * The audit log's subject index key (gateway/audit_log.c) lives beside the
 * LMDB file, not in it; a backup without it would restore a log whose
 * subject queries find nothing.  Copied as a secret: 0600, fsync'd, and a
 * failure makes the backup fail.  1 copied, 0 there is none, -1 error.
 */
static int s_copy_index_key(const char *store, const char *dest)
{
	char src[4096], dst[4096], buf[4096];
	if ((size_t)snprintf(src, sizeof src, "%s/audit-index.key", store) >= sizeof src ||
	    (size_t)snprintf(dst, sizeof dst, "%s/audit-index.key", dest) >= sizeof dst) {
		cli_err("store backup: path too long");
		return -1;
	}
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		if (errno == ENOENT)
			return 0;
		cli_err("store backup: cannot read %s: %s", src, strerror(errno));
		return -1;
	}
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		cli_err("store backup: cannot create %s: %s", dst, strerror(errno));
		close(in);
		return -1;
	}
	int ok = 1;
	ssize_t n;
	while (ok && (n = read(in, buf, sizeof buf)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ok = 0;
			break;
		}
		for (ssize_t off = 0; ok && off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w == 0)
				errno = EIO; /* no progress: never loop on it */
			if (w == 0 || (w < 0 && errno != EINTR))
				ok = 0;
			else if (w > 0)
				off += w;
		}
	}
	if (ok && fsync(out) != 0)
		ok = 0;
	if (!ok)
		cli_err("store backup: copying %s to %s: %s", src, dst, strerror(errno));
	close(in);
	if (close(out) != 0 && ok) {
		cli_err("store backup: writing %s: %s", dst, strerror(errno));
		ok = 0;
	}
	if (!ok)
		unlink(dst);
	return ok ? 1 : -1;
}

/* `store backup` progress: a line on stderr redrawn every 200 ms. */
struct bprog {
	const char *dest;
	size_t total;
	pthread_t th;
	int on;
	atomic_int done;
};

static void *s_backup_progress(void *arg)
{
	struct bprog *b = arg;
	char path[4096];
	snprintf(path, sizeof path, "%s/data.mdb", b->dest);
	for (;;) {
		int last = atomic_load(&b->done);
		struct stat sb;
		size_t got = stat(path, &sb) == 0 ? (size_t)sb.st_size : 0;
		if (last && got < b->total)
			got = b->total; /* compacted: smaller than the store's high-water mark */
		int pct = (int)(got >= b->total ? 100 : got * 100 / b->total);
		fprintf(stderr, "\r[%-25.*s] %3d%%  %.1f / %.1f MiB", pct / 4, "#########################", pct,
			(double)got / 1048576.0, (double)b->total / 1048576.0);
		if (last) {
			fputc('\n', stderr);
			return NULL;
		}
		struct timespec ts = {0, 200 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

int cli_store(int argc, char **argv)
{
	static const struct option opts[] = {
		{"store", required_argument, NULL, 's'},
		{"type", required_argument, NULL, 't'},
		{"json", no_argument, NULL, 'j'},
		{"ttl", required_argument, NULL, 'T'},
		{"prefix", required_argument, NULL, 'p'},
		{"limit", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{0, 0, 0, 0},
	};
	const char *dir = NULL, *prefix = "";
	int64_t type = CLI_TABLE_TYPE, ttl = 0, limit = 0;
	int json = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+jh", opts, NULL)) != -1 || optind < argc) {
		if (c == -1) {
			/* a positional argument: keep scanning options after it */
			optind++;
			continue;
		}
		switch (c) {
		case 's': dir = optarg; break;
		case 'j': json = 1; break;
		case 'p': prefix = optarg; break;
		case 't':
			if (cli_parse_i64(optarg, 1, 65535, "--type", &type))
				return CLI_USAGE;
			break;
		case 'T':
			if (cli_parse_i64(optarg, 1, 10L * 365 * 86400, "--ttl", &ttl))
				return CLI_USAGE;
			break;
		case 'l':
			if (cli_parse_i64(optarg, 1, INT64_MAX, "--limit", &limit))
				return CLI_USAGE;
			break;
		case 'h': s_help(stdout); return CLI_OK;
		default: return CLI_USAGE;
		}
	}
	/* Positional arguments, in order, ignoring options and their values. */
	const char *pos[4];
	int np = 0;
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-' && argv[i][1]) {
			if (strcmp(argv[i], "--json") && strcmp(argv[i], "-j") && !strchr(argv[i], '='))
				i++; /* skip the option's value */
			continue;
		}
		if (np == 4) {
			cli_err("store: too many arguments; see 'qiao store --help'");
			return CLI_USAGE;
		}
		pos[np++] = argv[i];
	}
	if (!dir || np == 0) {
		cli_err("store: --store DIR and a command are required; see 'qiao store --help'");
		return CLI_USAGE;
	}
	const char *cmd = pos[0];
	static const struct {
		const char *name;
		int args, write;
	} cmds[] = {{"put", 4, 1}, {"get", 3, 0}, {"del", 3, 1}, {"list", 2, 0}, {"backup", 2, 0}, {"info", 1, 0}};
	int ci = -1;
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (!strcmp(cmd, cmds[i].name))
			ci = (int)i;
	if (ci < 0 || np != cmds[ci].args) {
		cli_err("store: '%s' needs other arguments; see 'qiao store --help'", cmd);
		return CLI_USAGE;
	}
	struct qiao_store_opts so = {0};
	so.read_only = !cmds[ci].write;
	qiao_store_t *st = NULL;
	int rc = qiao_store_open(&st, dir, &so);
	if (rc == QIAO_ENOTFOUND && so.read_only) {
		cli_err("store: %s holds no Qiao store (nothing written yet?)", dir);
		return CLI_ENV;
	}
	if (rc != 0) {
		cli_err("store: cannot open %s: %s", dir, qiao_store_last_error());
		return CLI_ENV;
	}
	int ret = CLI_OK;
	qiao_table_t *tbl = NULL;
	qiao_txn_t *txn = NULL;
	if (!strcmp(cmd, "backup")) {
		/* progress on a terminal: the copy's size against the store's */
		struct bprog bp = {.dest = pos[1]};
		struct qiao_store_info bi;
		if (isatty(2) && !json && qiao_store_info(st, &bi) == 0 && bi.used_bytes) {
			bp.total = bi.used_bytes;
			bp.on = pthread_create(&bp.th, NULL, s_backup_progress, &bp) == 0;
		}
		rc = qiao_store_backup(st, pos[1]);
		if (bp.on) {
			atomic_store(&bp.done, 1);
			pthread_join(bp.th, NULL);
		}
		if (rc != 0) {
			cli_err("store backup: %s", qiao_store_last_error());
			ret = CLI_ENV;
		} else if (s_copy_index_key(dir, pos[1]) < 0) {
			ret = CLI_ENV;
		} else if (json) {
			cli_json_print(json_pack("{s:s, s:s}", "backup", pos[1], "store", dir));
		} else {
			printf("backup of %s written to %s\n", dir, pos[1]);
		}
		goto out;
	}
	if (!strcmp(cmd, "info")) {
		struct qiao_store_info in;
		if ((rc = qiao_store_info(st, &in)) != 0) {
			cli_err("store info: %s", qiao_store_last_error());
			ret = CLI_ENV;
		} else if (json) {
			cli_json_print(json_pack("{s:I, s:I, s:I, s:I, s:i, s:i}", "map_size",
						 (json_int_t)in.map_size, "max_map_size",
						 (json_int_t)in.max_map_size, "used_bytes",
						 (json_int_t)in.used_bytes, "last_txnid",
						 (json_int_t)in.last_txnid, "readers", in.readers,
						 "max_readers", in.max_readers));
		} else {
			printf("map size:   %zu bytes (max %zu)\nused:       %zu bytes\n"
			       "last txn:   %llu\nreaders:    %u of %u\n",
			       in.map_size, in.max_map_size, in.used_bytes,
			       (unsigned long long)in.last_txnid, in.readers, in.max_readers);
		}
		goto out;
	}
	rc = qiao_store_table(st, pos[1], (uint16_t)type, &tbl);
	if (rc != 0) {
		cli_err("store: table %s: %s", pos[1],
			rc == QIAO_ENOTFOUND ? "no such table" : qiao_store_last_error());
		ret = rc == QIAO_ENOTFOUND ? CLI_NO : CLI_ENV;
		goto out;
	}
	const char *key = np > 2 ? pos[2] : NULL;
	if (!strcmp(cmd, "put")) {
		int64_t exp = ttl ? qiao_store_now_ms(st) + ttl * 1000 : 0;
		for (int attempt = 0; attempt < 8; attempt++) {
			if ((rc = qiao_txn_begin(st, 1, &txn)) != 0)
				break;
			rc = qiao_store_put(txn, tbl, key, strlen(key), pos[3], strlen(pos[3]), exp);
			if (rc == 0)
				rc = qiao_txn_commit(&txn);
			else
				qiao_txn_abort(&txn);
			if (rc != QIAO_ESTOREAGAIN)
				break;
		}
		if (rc != 0) {
			cli_err("store put: %s", qiao_store_last_error());
			ret = CLI_ENV;
		} else if (json) {
			cli_json_print(json_pack("{s:s, s:s, s:I}", "table", pos[1], "key", key,
						 "expires_at_ms", (json_int_t)exp));
		} else {
			printf("stored %s/%s (durable)%s\n", pos[1], key, exp ? ", expires in --ttl seconds" : "");
		}
	} else if (!strcmp(cmd, "del")) {
		if ((rc = qiao_txn_begin(st, 1, &txn)) == 0) {
			rc = qiao_store_del(txn, tbl, key, strlen(key));
			if (rc == 0)
				rc = qiao_txn_commit(&txn);
			else
				qiao_txn_abort(&txn);
		}
		if (rc == QIAO_ENOTFOUND) {
			cli_err("store del: no record '%s' in %s", key, pos[1]);
			ret = CLI_NO;
		} else if (rc != 0) {
			cli_err("store del: %s", qiao_store_last_error());
			ret = CLI_ENV;
		}
	} else if (!strcmp(cmd, "get")) {
		void *v = NULL;
		size_t vl = 0;
		int64_t exp = 0;
		if ((rc = qiao_txn_begin(st, 0, &txn)) == 0) {
			rc = qiao_store_get(txn, tbl, key, strlen(key), &v, &vl, &exp);
			qiao_txn_abort(&txn);
		}
		if (rc == QIAO_ENOTFOUND) {
			cli_err("store get: no record '%s' in %s", key, pos[1]);
			ret = CLI_NO;
		} else if (rc != 0) {
			cli_err("store get: %s", qiao_store_last_error());
			ret = CLI_ENV;
		} else {
			struct list_ctx lc = {json, 0, 0, json ? json_array() : NULL};
			s_list_cb(&lc, key, strlen(key), v, vl, exp);
			if (json) {
				json_t *o = json_incref(json_array_get(lc.arr, 0));
				json_decref(lc.arr);
				cli_json_print(o);
			}
		}
		free(v);
	} else { /* list */
		struct list_ctx lc = {json, limit, 0, json ? json_array() : NULL};
		if ((rc = qiao_txn_begin(st, 0, &txn)) == 0) {
			rc = qiao_store_iter_prefix(txn, tbl, prefix, strlen(prefix), s_list_cb, &lc);
			qiao_txn_abort(&txn);
		}
		if (rc < 0) {
			cli_err("store list: %s", qiao_store_last_error());
			ret = CLI_ENV;
			json_decref(lc.arr);
		} else if (json) {
			cli_json_print(lc.arr);
		}
	}
out:
	qiao_store_close(&st);
	return ret;
}
