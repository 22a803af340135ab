/* qiao keygen: write a member key file and print its public parts. */
#include "cli.h"
#include "qiao_err.h"
#include "qiao_id.h"
#include "qiao_keys.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void s_help(FILE *out)
{
	fputs("usage: qiao keygen --member USCC/SUBSYSTEM --out FILE [--json]\n"
	      "\n"
	      "Generates an Ed25519 signing pair and a CURVE (Curve25519) pair for a\n"
	      "member and writes them to FILE (created, mode 0600; an existing file is\n"
	      "never overwritten).  Prints the public parts, which the gateway operator\n"
	      "enters in the member registry; the secret parts never leave FILE.\n"
	      "\n"
	      "exit codes: 0 written; 2 usage (bad member id, missing --out); 3 FILE exists or\n"
	      "cannot be written (choose a new path: a key file is never overwritten).\n"
	      "\n"
	      "examples:\n"
	      "  qiao keygen --member 12150600MB0A12342K/realestate --out realestate.key\n"
	      "  qiao keygen --member 91150600MA0B56780F/bank --out bank-a.key --json\n",
	      out);
}

int cli_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{"member", required_argument, NULL, 'm'},
		{"out", required_argument, NULL, 'o'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{0, 0, 0, 0},
	};
	const char *member = NULL, *out = NULL;
	int json = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "m:o:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			member = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			s_help(stdout);
			return CLI_OK;
		default:
			return CLI_USAGE;
		}
	}
	if (!member || !out || optind != argc) {
		cli_err("keygen: --member and --out are required; see 'qiao keygen --help'");
		return CLI_USAGE;
	}
	char why[200];
	if (qiao_id_check_member(NULL, member, why, sizeof why) != 0) {
		cli_err("keygen: --member %s: %s", member, why);
		return CLI_USAGE;
	}
	qiao_keys_t *k = NULL;
	int rc = qiao_keys_generate(member, &k);
	if (rc != 0) {
		cli_err("keygen: %s", qiao_strerror(rc));
		return CLI_ENV;
	}
	rc = qiao_keys_save(k, out);
	if (rc != 0) {
		cli_err("keygen: cannot write %s: %s%s", out, qiao_strerror(rc),
			rc == QIAO_EEXIST ? " (refusing to overwrite a key file; remove it first or pick another name)" : "");
		qiao_keys_destroy(&k);
		return CLI_ENV;
	}
	char spk[45], cpk[45];
	qiao_b64_32(k->sign_pk, spk);
	qiao_b64_32(k->curve_pk, cpk);
	if (json) {
		cli_json_print(json_pack("{s:s, s:s, s:s, s:s}", "member", member, "file", out,
					 "sign_public", spk, "curve_public", cpk));
	} else {
		printf("member:       %s\nkey file:     %s (mode 0600)\nsign-public:  %s\ncurve-public: %s\n",
		       member, out, spk, cpk);
	}
	qiao_keys_destroy(&k);
	return CLI_OK;
}
