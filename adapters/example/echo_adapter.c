/*
 * echo_adapter.c - the smallest complete Qiao adapter.  It offers the
 * service "echo.v1", calls it once through the gateway, and with --serve
 * keeps serving until Ctrl-C.  Copy it to start your own adapter;
 * docs/adapter-guide.md walks through every step.
 *
 *   qiao-example-adapter tcp://127.0.0.1:7700 my.key GATEWAY_CURVE_PUBLIC [--serve]
 */
#include "qiao_adapter.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

/* A handler runs on a handler thread for every verified request to the
 * service.  It answers exactly once: qiao_respond() or qiao_respond_error(). */
static void on_echo(void *arg, const struct qiao_request *req, struct qiao_responder *r)
{
	(void)arg;
	printf("request from %s for user %s, purpose \"%s\", %zu bytes\n", req->requester,
	       req->hdr->user_id, req->hdr->purpose, req->body_len);
	if (req->body_len == 0) {
		qiao_respond_error(&r, QIAO__V1__ERROR_CODE__BAD_REQUEST, "nothing to echo", "body");
		return;
	}
	qiao_respond(&r, req->body, req->body_len); /* a real service packs its protobuf reply */
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s ENDPOINT KEY_FILE GATEWAY_CURVE_PUBLIC [--serve]\n", argv[0]);
		return 2;
	}
	/* 1. Configure.  Zero fields take their defaults. */
	struct qiao_adapter_opts opts = {
		.endpoint = argv[1],             /* the gateway */
		.key_file = argv[2],             /* from `qiao keygen`, mode 0600 */
		.gateway_curve_public = argv[3], /* from the gateway operator */
	};
	qiao_adapter_t *a = NULL;
	char err[300];
	int rc = qiao_adapter_new(&opts, &a, err, sizeof err);
	if (rc != 0) {
		fprintf(stderr, "%s: %s\n", qiao_strerror(rc), err);
		return 1;
	}
	/* 2. Offer: the name relative to this member, and the reply's type. */
	qiao_adapter_offer(a, "echo.v1", "example.v1.Text", on_echo, NULL);

	/* 3. Start (connect, READY, WELCOME) and wait until the gateway welcomes us. */
	if ((rc = qiao_adapter_start(a)) != 0 || (rc = qiao_adapter_wait_connected(a, 10000)) != 0) {
		fprintf(stderr, "cannot reach the gateway: %s\n", qiao_strerror(rc));
		qiao_adapter_destroy(&a);
		return 1;
	}
	/* 4. Call a service: our own, by its full id "<member>/echo.v1". */
	char service[200];
	snprintf(service, sizeof service, "%s/echo.v1", qiao_adapter_member(a));
	const char text[] = "hello, Qiao";
	struct qiao_call call = {
		.service = service,
		.user_id = "staff-0001",        /* the person (经办人) you act for */
		.purpose = "adapter self-test", /* 申请事由 */
		.body_type = "example.v1.Text",
		.body = text,
		.body_len = sizeof text - 1,
		.timeout_ms = 5000,
	};
	struct qiao_result *res = NULL;
	rc = qiao_adapter_call(a, &call, &res);
	if (rc != 0) /* no trusted answer: timeout, bad signature, ... */
		fprintf(stderr, "call failed: %s: %s\n", qiao_strerror(rc), res ? res->error.message : "");
	else if (res->kind == QIAO_RESULT_ERROR) /* refused by the provider or the gateway */
		fprintf(stderr, "refused by %s: %s: %s\n", res->error.origin, res->error.name, res->error.message);
	else
		printf("answer from %s: %.*s\n", res->responder, (int)res->body_len, (const char *)res->body);
	qiao_result_free(&res);

	/* 5. Serve until Ctrl-C; the SDK heartbeats and reconnects meanwhile. */
	if (argc > 4 && strcmp(argv[4], "--serve") == 0) {
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		while (!stop)
			sleep(1);
	}
	/* 6. Stop: BYE to the gateway, in-flight requests answered, threads joined. */
	qiao_adapter_destroy(&a);
	return rc == 0 ? 0 : 1;
}
