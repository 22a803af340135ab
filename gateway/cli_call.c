/*
 * qiao call - call one service through the gateway as a member, from the
 * command line: the request body given as JSON (any message type of the
 * contract, proto/qiao_pbjson.h), the answer printed as JSON.  It is an
 * adapter like any other (libqiao-adapter): CURVE to the gateway, the
 * request signed with the member's key, the answer's signature checked.
 * For operators checking a grant, adapter authors trying a service, and
 * ops/demo's 无证明 lookup.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qiao_adapter.h"
#include "qiao_envelope.h"
#include "qiao_err.h"
#include "qiao_id.h"
#include "qiao_pbjson.h"
#include "qiao_types.h"

#define CALL_MAX_JSON (8u << 20)

static void s_usage(FILE *out)
{
	fputs("usage: qiao call SERVICE --key FILE --endpoint EP --gateway-curve B64\n"
	      "                 --type REQUEST_TYPE [--json FILE|-] --user ID\n"
	      "                 [--purpose TEXT] [--legal-basis TEXT] [--case ID]\n"
	      "                 [--subject [RESIDENT_ID:|USCC:]ID]... [--timeout MS] [--raw]\n"
	      "\n"
	      "Calls SERVICE (\"<USCC>/<subsystem>/<name>.v<N>\" or a registered alias) as the\n"
	      "member whose key file is given, through the gateway at EP, and prints the\n"
	      "verified answer as JSON (every field, enums by name, bytes in base64).\n"
	      "\n"
	      "  --key FILE            the calling member's key file (qiao keygen)\n"
	      "  --endpoint EP         the gateway, e.g. tcp://gateway.example:7700\n"
	      "  --gateway-curve B64   the gateway's CURVE public key (curve-public: of its key file)\n"
	      "  --type T              the request message type, e.g. qiao.v1.LicenceByHolderRequest\n"
	      "  --json FILE           the request body as a JSON object (- for stdin; default {})\n"
	      "  --user ID             the person you act for (经办人); required\n"
	      "  --purpose TEXT        申请事由; required when a subject is a person\n"
	      "  --legal-basis TEXT    the legal basis of the request\n"
	      "  --case ID             the case the request belongs to\n"
	      "  --subject S           a data subject: a valid resident id is a person (RESIDENT_ID),\n"
	      "                        anything else a USCC; or say which: RESIDENT_ID:ID, USCC:ID\n"
	      "  --timeout MS          answer deadline (default 10000)\n"
	      "  --raw                 print the answer's JSON on one line\n"
	      "\n"
	      "exit codes: 0 the provider answered; 1 an ERROR answer (its code and message are\n"
	      "printed); 2 usage (bad flag, bad JSON, unknown type); 3 no trusted answer (the\n"
	      "gateway cannot be reached, the key is refused, timeout).\n"
	      "\n"
	      "example (无证明: a bank looks up a company's business licence):\n"
	      "  echo '{\"holder_code\":\"91150602MA0H864248\",\"holder_code_type\":\"HOLDER_CODE_TYPE_USCC\",\n"
	      "        \"purpose\":\"贷款审批\"}' |\n"
	      "  qiao call 11150600MB0E78900J/market/licence-by-holder.v1 --key bank-b.key \\\n"
	      "    --endpoint tcp://127.0.0.1:7700 --gateway-curve \"$(sed -n 's/^curve-public: //p' gateway.key)\" \\\n"
	      "    --type qiao.v1.LicenceByHolderRequest --json - --user clerk-0007 --purpose 贷款审批 \\\n"
	      "    --subject 91150602MA0H864248\n",
	      out);
}

static int s_subject(const char *arg, struct qiao_subject *s)
{
	if (strncmp(arg, "RESIDENT_ID:", 12) == 0) {
		s->type = QIAO_SUBJECT_RESIDENT_ID;
		s->id = arg + 12;
	} else if (strncmp(arg, "USCC:", 5) == 0) {
		s->type = QIAO_SUBJECT_USCC;
		s->id = arg + 5;
	} else {
		/* a valid 居民身份证号码 is a person, anything else an organisation
		 * (the gateway checks it against its type) */
		s->type = qiao_id_check_resident(arg, NULL, 0) == 0 ? QIAO_SUBJECT_RESIDENT_ID : QIAO_SUBJECT_USCC;
		s->id = arg;
	}
	return s->id[0] ? 0 : -1;
}

static void s_quiet(void *arg, enum qiao_log_level level, const char *msg)
{
	(void)arg;
	if (level <= QIAO_LOG_WARN)
		fprintf(stderr, "qiao call: %s\n", msg);
}

int cli_call(int argc, char **argv)
{
	static const struct option opts[] = {
		{"key", required_argument, NULL, 'k'},	     {"endpoint", required_argument, NULL, 'e'},
		{"gateway-curve", required_argument, NULL, 'g'}, {"type", required_argument, NULL, 't'},
		{"json", required_argument, NULL, 'j'},	     {"user", required_argument, NULL, 'u'},
		{"purpose", required_argument, NULL, 'p'},      {"legal-basis", required_argument, NULL, 'l'},
		{"case", required_argument, NULL, 'c'},	     {"subject", required_argument, NULL, 's'},
		{"timeout", required_argument, NULL, 'T'},      {"raw", no_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},	     {NULL, 0, NULL, 0},
	};
	const char *key = NULL, *ep = NULL, *curve = NULL, *type = NULL, *jfile = NULL, *user = NULL,
		   *purpose = NULL, *basis = NULL, *caseid = NULL;
	struct qiao_subject subj[QIAO_MAX_SUBJECTS];
	size_t nsubj = 0;
	int64_t timeout = 10000;
	int raw = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "k:e:g:t:j:u:p:l:c:s:T:rh", opts, NULL)) != -1) {
		switch (c) {
		case 'k': key = optarg; break;
		case 'e': ep = optarg; break;
		case 'g': curve = optarg; break;
		case 't': type = optarg; break;
		case 'j': jfile = optarg; break;
		case 'u': user = optarg; break;
		case 'p': purpose = optarg; break;
		case 'l': basis = optarg; break;
		case 'c': caseid = optarg; break;
		case 's':
			if (nsubj == QIAO_MAX_SUBJECTS || s_subject(optarg, &subj[nsubj]) != 0) {
				cli_err("--subject %s: at most %d subjects, each an identifier", optarg, QIAO_MAX_SUBJECTS);
				return CLI_USAGE;
			}
			nsubj++;
			break;
		case 'T':
			if (cli_parse_i64(optarg, 1, 600000, "--timeout", &timeout) != 0)
				return CLI_USAGE;
			break;
		case 'r': raw = 1; break;
		case 'h': s_usage(stdout); return CLI_OK;
		default: s_usage(stderr); return CLI_USAGE;
		}
	}
	if (optind != argc - 1) {
		cli_err("call: exactly one SERVICE is needed (qiao call --help)");
		return CLI_USAGE;
	}
	const char *service = argv[optind];
	if (!key || !ep || !curve || !type || !user) {
		cli_err("call: --key, --endpoint, --gateway-curve, --type and --user are required (qiao call --help)");
		return CLI_USAGE;
	}
	const ProtobufCMessageDescriptor *d = qiao_type_by_name(type);
	if (!d) {
		cli_err("call: --type %s is not a message type of the contract (e.g. qiao.v1.TitleSummaryRequest)", type);
		return CLI_USAGE;
	}
	json_t *body = NULL;
	if (jfile) {
		json_error_t je;
		if (strcmp(jfile, "-") == 0) {
			body = json_loadf(stdin, 0, &je);
		} else {
			uint8_t *b = NULL;
			size_t bl = 0;
			int rc = cli_read_file(jfile, CALL_MAX_JSON, &b, &bl);
			if (rc != 0) {
				cli_err("call: --json %s: %s", jfile, rc == QIAO_ETOOBIG ? "larger than 8 MiB" : qiao_strerror(rc));
				return CLI_ENV;
			}
			body = json_loadb((const char *)b, bl, 0, &je);
			free(b);
		}
		if (!body) {
			cli_err("call: --json %s: line %d: %s", jfile, je.line, je.text);
			return CLI_USAGE;
		}
	} else {
		body = json_object();
	}
	ProtobufCMessage *m = NULL;
	char err[512];
	if (qiao_pb_from_json(d, body, &m, err, sizeof err) != 0) {
		cli_err("call: the request is not a valid %s: %s", type, err);
		json_decref(body);
		return CLI_USAGE;
	}
	json_decref(body);
	size_t len = 0;
	uint8_t *packed = qiao_pb_pack(m, &len);
	protobuf_c_message_free_unpacked(m, NULL);
	if (!packed) {
		cli_err("call: out of memory");
		return CLI_ENV;
	}
	struct qiao_adapter_opts o = {
		.endpoint = ep,
		.key_file = key,
		.gateway_curve_public = curve,
		.instance = "qiao call",
		.log = s_quiet,
		.log_level = QIAO_LOG_WARN,
	};
	qiao_adapter_t *a = NULL;
	if (qiao_adapter_new(&o, &a, err, sizeof err) != 0) {
		cli_err("call: %s", err);
		free(packed);
		return CLI_ENV;
	}
	int rc = qiao_adapter_start(a);
	if (rc == 0 && (rc = qiao_adapter_wait_connected(a, 5000)) != 0)
		cli_err("call: the gateway at %s did not welcome this member within 5 s (is it running? is the key "
			"registered in its members, and is --gateway-curve its CURVE key?)",
			ep);
	struct qiao_result *r = NULL;
	int out = CLI_ENV;
	if (rc == 0) {
		struct qiao_call call = {
			.service = service,
			.user_id = user,
			.purpose = purpose,
			.legal_basis = basis,
			.case_id = caseid,
			.subjects = subj,
			.n_subjects = nsubj,
			.body_type = type,
			.body = packed,
			.body_len = len,
			.timeout_ms = (uint32_t)timeout,
		};
		rc = qiao_adapter_call(a, &call, &r);
		if (rc == 0 && r->kind == QIAO_RESULT_RESPONSE) {
			const ProtobufCMessageDescriptor *rd = r->body_type ? qiao_type_by_name(r->body_type) : NULL;
			ProtobufCMessage *rm = rd ? protobuf_c_message_unpack(rd, NULL, r->body_len, r->body) : NULL;
			if (rm) {
				json_t *j = qiao_pb_to_json(rm);
				protobuf_c_message_free_unpacked(rm, NULL);
				char *t = json_dumps(j, raw ? JSON_COMPACT : JSON_INDENT(2));
				printf("%s\n", t ? t : "");
				free(t);
				json_decref(j);
				out = CLI_OK;
			} else {
				cli_err("call: %s answered with a body of type %s that does not decode", r->responder,
					r->body_type ? r->body_type : "(none)");
				out = CLI_ENV;
			}
		} else if (rc == 0) {
			fprintf(stderr, "qiao call: ERROR %s from %s: %s%s%s%s%s\n", r->error.name, r->responder,
				r->error.message, r->error.field && r->error.field[0] ? " (field " : "",
				r->error.field ? r->error.field : "", r->error.field && r->error.field[0] ? ")" : "",
				r->error.missing_rule && r->error.missing_rule[0] ? "; no policy rule grants it" : "");
			out = CLI_NO;
		} else {
			cli_err("call: no trusted answer: %s%s%s", qiao_strerror(rc), r && r->error.message ? ": " : "",
				r && r->error.message ? r->error.message : "");
			out = CLI_ENV;
		}
	}
	qiao_result_free(&r);
	qiao_adapter_destroy(&a);
	free(packed);
	return out;
}
