/* qiao id check: validate identifiers from the command line. */
#include "cli.h"
#include "qiao_err.h"
#include "qiao_id.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void s_help(FILE *out)
{
	fputs("usage: qiao id check [--json] [--legacy-uscc CODE]... VALUE...\n"
	      "\n"
	      "Recognises each VALUE's kind from its shape and validates it:\n"
	      "  resident-id  居民身份证号码 (GB 11643: check character, real birth date)\n"
	      "  uscc         统一社会信用代码 (GB 32100 check + embedded GB 11714 code)\n"
	      "  unit         不动产单元代码 (GB/T 37346)\n"
	      "  cert, proof  不动产权证书号 / 不动产登记证明号 (brackets normalised)\n"
	      "  licence      电子证照标识 (GB/T 36904, MOD 37,36)\n"
	      "  member       Qiao member id, USCC/subsystem\n"
	      "Prints one line per value: VALUE KIND valid | invalid: REASON.\n"
	      "Exits 0 only when every value is valid, 1 otherwise.\n"
	      "\n"
	      "  --legacy-uscc CODE  admit a legacy USCC whose check characters fail\n"
	      "  --json              one JSON array: [{value, kind, valid, reason, normalised}]\n"
	      "\n"
	      "examples:\n"
	      "  qiao id check 11010519491231002X\n"
	      "  qiao id check --json 91350200776049653A '皖(2018)合肥市不动产权第10023999号'\n"
	      "  qiao id check --legacy-uscc 91350203M0001QAY9B 91350203M0001QAY9B\n",
	      out);
}

int cli_id(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "check") != 0) {
		if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
			s_help(stdout);
			return CLI_OK;
		}
		cli_err("id: expected 'qiao id check VALUE...'; see 'qiao id --help'");
		return CLI_USAGE;
	}
	argc--, argv++;
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"legacy-uscc", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{0, 0, 0, 0},
	};
	int json = 0, c;
	qiao_id_policy_t *pol = qiao_id_policy_new();
	if (!pol) {
		cli_err("out of memory");
		return CLI_ENV;
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'l':
			if (qiao_id_policy_add_legacy_uscc(pol, optarg) != 0) {
				cli_err("--legacy-uscc: '%s' is not 18 characters of the USCC alphabet", optarg);
				qiao_id_policy_destroy(&pol);
				return CLI_USAGE;
			}
			break;
		case 'h':
			s_help(stdout);
			qiao_id_policy_destroy(&pol);
			return CLI_OK;
		default:
			qiao_id_policy_destroy(&pol);
			return CLI_USAGE;
		}
	}
	if (optind >= argc) {
		cli_err("id check: give at least one VALUE; see 'qiao id check --help'");
		qiao_id_policy_destroy(&pol);
		return CLI_USAGE;
	}
	int all_ok = 1;
	json_t *arr = json ? json_array() : NULL;
	for (int i = optind; i < argc; i++) {
		const char *v = argv[i];
		enum qiao_id_kind kind;
		char why[200] = "", norm[256] = "";
		int rc = qiao_id_check(pol, v, &kind, why, sizeof why);
		if (rc == 0 && kind == QIAO_ID_CERT)
			rc = qiao_id_check_cert(v, norm, sizeof norm, why, sizeof why);
		else if (rc == 0 && kind == QIAO_ID_PROOF)
			rc = qiao_id_check_proof(v, norm, sizeof norm, why, sizeof why);
		if (rc != 0)
			all_ok = 0;
		if (json) {
			json_t *o = json_pack("{s:s, s:s, s:b}", "value", v, "kind",
					      qiao_id_kind_name(kind), "valid", rc == 0);
			if (rc != 0)
				json_object_set_new(o, "reason", json_string(why));
			if (norm[0] && strcmp(norm, v) != 0)
				json_object_set_new(o, "normalised", json_string(norm));
			json_array_append_new(arr, o);
		} else if (rc == 0) {
			if (norm[0] && strcmp(norm, v) != 0)
				printf("%s %s valid (normalised %s)\n", v, qiao_id_kind_name(kind), norm);
			else
				printf("%s %s valid\n", v, qiao_id_kind_name(kind));
		} else {
			printf("%s %s invalid: %s\n", v, qiao_id_kind_name(kind), why);
		}
	}
	if (json)
		cli_json_print(arr);
	qiao_id_policy_destroy(&pol);
	return all_ok ? CLI_OK : CLI_NO;
}
