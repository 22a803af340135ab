/*
 * qiao-gateway - the Qiao gateway daemon.
 *
 *   qiao-gateway [-d] [-v] [-f FILE]     run
 *   qiao-gateway -n [-f FILE]            check the configuration and exit
 *
 * SIGTERM / SIGINT: drain (requests in flight are answered), then exit 0.
 * SIGHUP: reload members and policy from the same file; a file that does
 * not load leaves the running configuration in force (logged).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "gw_config.h"
#include "gw_gate.h"
#include "gw_wfdef.h"
#include "gw_log.h"
#include "gw_policy.h"
#include "qiao_err.h"
#include "qiao_keys.h"
#include "qiao_version.h"

#define DEFAULT_CONF "/etc/qiao/qiao-gateway.conf"
#define DRAIN_MS 10000

static volatile sig_atomic_t s_stop, s_reload;

static void s_on_signal(int sig)
{
	if (sig == SIGHUP)
		s_reload = 1;
	else
		s_stop = 1;
}

/* Every adapter connection is a TCP socket: the usual soft limit of 1024
 * descriptors would refuse connections (libzmq logs nothing useful then)
 * long before memory runs out.  Raise the soft limit to the hard one; the
 * operator sets the hard limit (systemd LimitNOFILE=). */
static void s_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == rl.rlim_max)
		return;
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		log_warn("gateway.nofile_limit soft=%llu hard=%llu reason=\"%s\"", (unsigned long long)was,
			 (unsigned long long)rl.rlim_max, strerror(errno));
}

static void s_usage(FILE *out)
{
	fprintf(out,
		"usage: qiao-gateway [-d] [-v] [-n] [-f FILE]\n"
		"\n"
		"  -f, --config FILE  configuration file (default " DEFAULT_CONF ");\n"
		"                     every key is documented in ops/qiao-gateway.conf\n"
		"  -n, --check        check the configuration, print \"configuration OK\" and exit\n"
		"                     (exit 1 and FILE:LINE: reason when it is not)\n"
		"  -d, --foreground   stay in the foreground and log to stderr (default: syslog)\n"
		"  -v, --verbose      log debug events too\n"
		"  -h, --help         this text;  -V, --version  the version\n"
		"\n"
		"signals: SIGTERM drains in-flight exchanges and exits; SIGHUP reloads members\n"
		"and policy (a bad file keeps the running configuration and logs why).\n"
		"\n"
		"examples:\n"
		"  qiao-gateway -n -f /etc/qiao/qiao-gateway.conf\n"
		"  qiao-gateway -d -f ./qiao-gateway.conf\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'f'}, {"check", no_argument, NULL, 'n'},
		{"foreground", no_argument, NULL, 'd'},   {"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *file = DEFAULT_CONF;
	int check = 0, fg = 0, verbose = 0, c;
	while ((c = getopt_long(argc, argv, "f:ndvhV", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			file = optarg;
			break;
		case 'n':
			check = 1;
			break;
		case 'd':
			fg = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			s_usage(stdout);
			return 0;
		case 'V':
			puts(qiao_version());
			return 0;
		default:
			s_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "qiao-gateway: unexpected argument '%s' (try --help)\n", argv[optind]);
		return 2;
	}
	if (qiao_crypto_init() != 0) {
		fprintf(stderr, "qiao-gateway: libsodium cannot be initialised\n");
		return 1;
	}
	struct gw_config *cfg = NULL;
	char err[1024];
	int rc = gw_config_load(file, &cfg, err, sizeof err);
	if (rc != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	size_t nwf = 0;
	const struct gw_workflow *wf = gw_config_workflow(cfg);
	if (check && wf && wf->enabled) {
		struct wf_def **defs = NULL;
		if (gw_wfdef_load_dir(wf->definitions, cfg, &defs, &nwf, err, sizeof err) != 0) {
			fprintf(stderr, "%s\n", err);
			gw_config_free(&cfg);
			return 1;
		}
		gw_wfdef_free_all(&defs, nwf);
	}
	if (check) {
		printf("configuration OK (%zu members, %zu services, %zu policy rules, %zu workflows)\n",
		       gw_config_member_count(cfg), gw_config_service_count(cfg), gw_policy_rule_count(cfg), nwf);
		gw_config_free(&cfg);
		return 0;
	}
	if (verbose)
		gw_log_level = GW_LOG_DEBUG;
	if (!fg)
		gw_log_use_syslog("qiao-gateway");

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = s_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Under a file-size limit (RLIMIT_FSIZE, systemd LimitFSIZE=) a write
	 * past it must fail with EFBIG, a failed commit answered UNAVAILABLE,
	 * instead of the default action killing the gateway mid-commit. */
	signal(SIGXFSZ, SIG_IGN);
	s_raise_nofile();

	gw_gate_t *g = NULL;
	rc = gw_gate_new(&cfg, &g, err, sizeof err);
	if (rc != 0) {
		log_error("gateway.start_failed reason=\"%s\"", err);
		if (!fg)
			fprintf(stderr, "qiao-gateway: %s\n", err);
		gw_config_free(&cfg);
		return 1;
	}
	rc = gw_gate_run(g, &s_stop, &s_reload, DRAIN_MS);
	gw_gate_destroy(&g);
	return rc == 0 ? 0 : 1;
}
