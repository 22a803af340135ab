/*
 * qiao status - live state of a running gateway, read from its admin
 * socket: connected adapters, services and their instances, queue depths,
 * counters.  The gateway writes one JSON document per connection and
 * closes it (docs/protocol.md, "Admin socket").
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "gw_config.h"

#define STATUS_MAX (8u << 20)
#define STATUS_TIMEOUT_MS 5000

static void s_usage(FILE *out)
{
	fputs("usage: qiao status (--socket PATH | --config FILE) [--json]\n"
	      "\n"
	      "Shows what a running gateway sees now: adapters connected (member,\n"
	      "instance, services, requests in flight), services with their instances,\n"
	      "queue depths and counters (requests, refusals by code, timeouts, ...).\n"
	      "\n"
	      "  --socket PATH   the gateway's admin socket (gateway.admin_socket)\n"
	      "  --config FILE   read admin_socket from the gateway's configuration\n"
	      "  --json          the gateway's status document, as JSON on one line\n"
	      "\n"
	      "exit codes: 0 shown; 2 usage; 3 the gateway cannot be reached (is it\n"
	      "running? is the path right? may this user open the socket?)\n"
	      "\n"
	      "examples:\n"
	      "  qiao status --config /etc/qiao/qiao-gateway.conf\n"
	      "  qiao status --socket /run/qiao/admin.sock --json | jq .counters\n",
	      out);
}

/* Read the whole document; NULL and a message on failure. */
static char *s_fetch(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path) {
		cli_err("admin socket path too long: %s", path);
		return NULL;
	}
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		cli_err("cannot reach the gateway at %s: %s (is qiao-gateway running, and is this its admin_socket?)",
			path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (buf) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, STATUS_TIMEOUT_MS) <= 0) {
			cli_err("the gateway at %s did not answer within %d ms", path, STATUS_TIMEOUT_MS);
			goto fail;
		}
		if (len + 1 >= cap) {
			if (cap >= STATUS_MAX) {
				cli_err("status document larger than %u bytes", STATUS_MAX);
				goto fail;
			}
			char *nb = realloc(buf, cap * 2);
			if (!nb)
				goto fail;
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + len, cap - len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			cli_err("reading %s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (buf)
		buf[len] = '\0';
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

static json_int_t s_int(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static const char *s_str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static void s_print(json_t *doc)
{
	json_t *gw = json_object_get(doc, "gateway");
	printf("gateway %s  pid %lld  up %llds%s\n  config %s\n", s_str(gw, "member"), (long long)s_int(gw, "pid"),
	       (long long)(s_int(gw, "uptime_ms") / 1000), json_is_true(json_object_get(gw, "draining")) ? "  DRAINING" : "",
	       s_str(gw, "config"));

	json_t *conns = json_object_get(doc, "connections");
	printf("\nadapters connected: %zu\n", json_array_size(conns));
	if (json_array_size(conns))
		printf("  %-34s %-22s %-9s %8s %8s %8s  %s\n", "MEMBER", "INSTANCE", "STATE", "INFLIGHT", "SERVED",
		       "HEARD", "SERVICES");
	size_t i;
	json_t *x;
	json_array_foreach(conns, i, x)
	{
		json_t *sv = json_object_get(x, "services");
		printf("  %-34s %-22.22s %-9s %8lld %8lld %6lldms  %zu\n", s_str(x, "member"), s_str(x, "instance"),
		       s_str(x, "state"), (long long)s_int(x, "inflight"), (long long)s_int(x, "served"),
		       (long long)s_int(x, "last_heard_ms_ago"), json_array_size(sv));
	}

	json_t *svcs = json_object_get(doc, "services");
	printf("\nservices: %zu\n", json_array_size(svcs));
	if (json_array_size(svcs))
		printf("  %-60s %-14s %9s %8s\n", "SERVICE", "CLASS", "INSTANCES", "INFLIGHT");
	json_array_foreach(svcs, i, x)
	{
		printf("  %-60s %-14s %9lld %8lld\n", s_str(x, "id"), s_str(x, "class"), (long long)s_int(x, "instances"),
		       (long long)s_int(x, "inflight"));
	}

	json_t *q = json_object_get(doc, "queues");
	printf("\nqueues: %lld requests pending at providers, %lld in progress (limit %lld), verify queue %lld, "
	       "commit queue %lld\n",
	       (long long)s_int(q, "pending_requests"), (long long)s_int(q, "in_progress"),
	       (long long)s_int(q, "max_pending"), (long long)s_int(q, "verify_queue"),
	       (long long)s_int(q, "commit_queue"));

	json_t *ca = json_object_get(doc, "cache");
	if (ca) {
		printf("\ncache: %lld hits, %lld misses, %lld stale answers, %lld refused (signature did not verify), "
		       "%lld invalidations; %lld licences and %lld credit answers cached; %lld events\n",
		       (long long)s_int(ca, "hits"), (long long)s_int(ca, "misses"), (long long)s_int(ca, "stale_served"),
		       (long long)s_int(ca, "refused_unverified"), (long long)s_int(ca, "invalidations"),
		       (long long)s_int(ca, "licences_cached"), (long long)s_int(ca, "credit_answers_cached"),
		       (long long)s_int(ca, "events"));
		json_t *subs = json_object_get(ca, "subscribers");
		json_array_foreach(subs, i, x)
		{
			printf("  subscriber %-34s delivered up to %lld, %lld behind%s\n", s_str(x, "member"),
			       (long long)s_int(x, "delivered_up_to"), (long long)s_int(x, "behind"),
			       json_is_true(json_object_get(x, "inflight")) ? ", one in flight" : "");
		}
	}

	json_t *k = json_object_get(doc, "counters");
	printf("\ncounters:\n");
	const char *key;
	json_t *v;
	json_object_foreach(k, key, v)
	{
		if (json_is_integer(v))
			printf("  %-18s %lld\n", key, (long long)json_integer_value(v));
	}
	json_t *ref = json_object_get(k, "refused");
	if (json_object_size(ref)) {
		printf("  refused by code:\n");
		json_object_foreach(ref, key, v)
		{
			printf("    %-20s %lld\n", key, (long long)json_integer_value(v));
		}
	}
}

int cli_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'}, {"config", required_argument, NULL, 'f'},
		{"json", no_argument, NULL, 'j'},         {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *sock = NULL, *conf = NULL;
	int json = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:f:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'f':
			conf = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			s_usage(stdout);
			return CLI_OK;
		default:
			s_usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind != argc || (!sock && !conf) || (sock && conf)) {
		cli_err("status needs exactly one of --socket PATH or --config FILE (try --help)");
		return CLI_USAGE;
	}
	struct gw_config *cfg = NULL;
	if (conf) {
		char err[1024];
		if (gw_config_load(conf, &cfg, err, sizeof err) != 0) {
			cli_err("%s", err);
			return CLI_ENV;
		}
		sock = gw_config_gateway(cfg)->admin_socket;
	}
	char *text = s_fetch(sock);
	gw_config_free(&cfg);
	if (!text)
		return CLI_ENV;
	json_error_t je;
	json_t *doc = json_loads(text, 0, &je);
	free(text);
	if (!doc || !json_is_object(doc)) {
		cli_err("the gateway's status is not a JSON object (%s)", je.text);
		json_decref(doc);
		return CLI_ENV;
	}
	if (json)
		cli_json_print(doc);
	else {
		s_print(doc);
		json_decref(doc);
	}
	return CLI_OK;
}
