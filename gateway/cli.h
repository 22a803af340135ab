/*
 * cli.h - shared pieces of the qiao command-line tool.
 *
 * Exit codes (documented in `qiao --help` and docs/operations.md):
 *   0  success
 *   1  the command ran and the answer is "no" (an identifier invalid, a
 *      signature bad, a record absent)
 *   2  usage error (unknown command or flag, missing argument)
 *   3  environment error (file unreadable, store cannot open, out of memory;
 *      for `qiao case`: the gateway cannot be reached)
 *   4  `qiao case start --wait`: the time passed before the case ended
 */
#ifndef QIAO_CLI_H
#define QIAO_CLI_H

#include <jansson.h>
#include <stdint.h>

enum { CLI_OK = 0, CLI_NO = 1, CLI_USAGE = 2, CLI_ENV = 3, CLI_TIMEOUT = 4 };

/* Subcommand entry points: argv[0] is the subcommand name. */
int cli_id(int argc, char **argv);
int cli_keygen(int argc, char **argv);
int cli_envelope(int argc, char **argv);
int cli_store(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_audit(int argc, char **argv);
int cli_case(int argc, char **argv);
int cli_call(int argc, char **argv);

/* Print an error "qiao: <what>" to stderr, printf-style. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse a decimal integer in [min, max]; 0 or -1 (and an error printed
 * naming `what`). */
int cli_parse_i64(const char *s, int64_t min, int64_t max, const char *what, int64_t *out);

/* Print `j` as one line of compact JSON to stdout and drop the reference. */
void cli_json_print(json_t *j);

/* Read a whole file (at most `max` bytes) into a malloc'd buffer. */
int cli_read_file(const char *path, size_t max, uint8_t **buf, size_t *len);

#endif
