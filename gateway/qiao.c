/*
 * qiao - the command-line tool for operators, auditors and adapter authors.
 */
#include "cli.h"
#include "qiao_version.h"

#include <stdio.h>
#include <string.h>

static void s_usage(FILE *out)
{
	fputs("usage: qiao COMMAND [ARGS]\n"
	      "\n"
	      "commands:\n"
	      "  id check VALUE...        validate identifiers (ID card, USCC, unit code,\n"
	      "                           certificate / proof number, licence id, member id)\n"
	      "  keygen --member M --out FILE\n"
	      "                           write a member key file (Ed25519 + CURVE), mode 0600\n"
	      "  envelope seal|open ...   build or check a signed message file\n"
	      "  store --store DIR put|get|del|list|backup ...\n"
	      "                           low-level access to a Qiao LMDB store\n"
	      "  audit SUBCOMMAND --store DIR ...\n"
	      "                           query, prove and verify the audit log (qiao audit --help)\n"
	      "  status --config FILE | --socket PATH [--json]\n"
	      "                           live state of a running gateway (adapters, services,\n"
	      "                           queues, counters)\n"
	      "  case SUBCOMMAND [--socket PATH | --config FILE] ...\n"
	      "                           cases of the workflow engine: workflows, start, status,\n"
	      "                           list, timeline, cancel (qiao case --help)\n"
	      "  call SERVICE --key FILE --endpoint EP --gateway-curve B64 --type T ...\n"
	      "                           call one service as a member, JSON body in, JSON\n"
	      "                           answer out (qiao call --help)\n"
	      "  version                  print the version\n"
	      "\n"
	      "Every command takes --help.  Exit codes: 0 success; 1 the answer is no\n"
	      "(invalid identifier, bad signature, record absent); 2 usage error;\n"
	      "3 environment error (file, store, memory; for case: gateway unreachable);\n"
	      "4 case start --wait: the time passed before the case ended.\n"
	      "\n"
	      "examples:\n"
	      "  qiao id check 11010519491231002X 91350200776049653A\n"
	      "  qiao keygen --member 12150600MB0A12342K/realestate --out realestate.key\n"
	      "  qiao status --config /etc/qiao/qiao-gateway.conf\n"
	      "  qiao case start daiya-guohu --input sale.json --wait\n",
	      out);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		s_usage(stderr);
		return CLI_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		s_usage(stdout);
		return CLI_OK;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
		puts(qiao_version());
		return CLI_OK;
	}
	if (!strcmp(cmd, "id"))
		return cli_id(argc - 1, argv + 1);
	if (!strcmp(cmd, "keygen"))
		return cli_keygen(argc - 1, argv + 1);
	if (!strcmp(cmd, "envelope"))
		return cli_envelope(argc - 1, argv + 1);
	if (!strcmp(cmd, "audit"))
		return cli_audit(argc - 1, argv + 1);
	if (!strcmp(cmd, "status"))
		return cli_status(argc - 1, argv + 1);
	if (!strcmp(cmd, "case"))
		return cli_case(argc - 1, argv + 1);
	if (!strcmp(cmd, "call"))
		return cli_call(argc - 1, argv + 1);
	if (!strcmp(cmd, "store"))
		return cli_store(argc - 1, argv + 1);
	cli_err("unknown command '%s'; run 'qiao --help' for the list", cmd);
	return CLI_USAGE;
}
