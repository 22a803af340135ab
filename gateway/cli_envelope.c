/*
 * qiao envelope seal|open: build and check signed messages offline.
 *
 * A message file holds the four frames of one message, each as a 4-byte
 * big-endian length followed by the frame bytes (docs/protocol.md,
 * "Message files").  Adapter authors use it to check what their own code
 * produces against the reference implementation.
 */
#include "cli.h"
#include "qiao_envelope.h"
#include "qiao_err.h"
#include "qiao_keys.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSGFILE_MAX (8u * 1024 * 1024)

static void s_help(FILE *out)
{
	fputs("usage: qiao envelope seal --key FILE --service S --user U [--purpose P]\n"
	      "                          [--legal-basis L] [--subject ID]... [--case C]\n"
	      "                          [--body FILE] [--body-type T] [--deadline-ms N] --out MSG\n"
	      "       qiao envelope open (--key FILE | --sign-public B64) [--json] MSG\n"
	      "\n"
	      "seal  signs a REQUEST from the member in the key file; the body (default\n"
	      "      empty) is bound by its SHA-256; --subject takes 居民身份证号码 or USCC.\n"
	      "open  checks frames, header fields, body hash and the signature against\n"
	      "      the sender's public key, then prints the header.  Exit 1 when any\n"
	      "      check fails, with the reason.\n"
	      "\n"
	      "examples:\n"
	      "  qiao envelope seal --key bank-b.key --service title-summary.v1 \\\n"
	      "      --user staff-0042 --purpose '带押过户 贷款审批' \\\n"
	      "      --subject 110105198001010016 --body req.bin --out req.qmsg\n"
	      "  qiao envelope open --key bank-b.key req.qmsg\n",
	      out);
}

static int s_write_msg(const char *path, const struct qiao_frame f[4])
{
	FILE *o = fopen(path, "wb");
	if (!o)
		return -errno;
	for (int i = 0; i < 4; i++) {
		uint8_t l[4] = {(uint8_t)(f[i].len >> 24), (uint8_t)(f[i].len >> 16),
				(uint8_t)(f[i].len >> 8), (uint8_t)f[i].len};
		fwrite(l, 1, 4, o);
		if (f[i].len)
			fwrite(f[i].data, 1, f[i].len, o);
	}
	int bad = ferror(o);
	if (fclose(o) != 0 || bad)
		return QIAO_EIO;
	return 0;
}

/* Split a message file into frames (borrowing `buf`).  -1 when malformed. */
static int s_split(const uint8_t *buf, size_t len, struct qiao_frame *f, size_t maxf, size_t *nf)
{
	size_t off = 0, n = 0;
	while (off < len) {
		if (n == maxf || len - off < 4)
			return -1;
		size_t l = (size_t)buf[off] << 24 | (size_t)buf[off + 1] << 16 |
			   (size_t)buf[off + 2] << 8 | buf[off + 3];
		off += 4;
		if (l > len - off)
			return -1;
		f[n].data = buf + off;
		f[n].len = l;
		n++;
		off += l;
	}
	*nf = n;
	return 0;
}

static int s_seal(int argc, char **argv)
{
	static const struct option opts[] = {
		{"key", required_argument, NULL, 'k'},
		{"service", required_argument, NULL, 's'},
		{"user", required_argument, NULL, 'u'},
		{"purpose", required_argument, NULL, 'p'},
		{"legal-basis", required_argument, NULL, 'L'},
		{"subject", required_argument, NULL, 'S'},
		{"case", required_argument, NULL, 'c'},
		{"body", required_argument, NULL, 'b'},
		{"body-type", required_argument, NULL, 't'},
		{"deadline-ms", required_argument, NULL, 'd'},
		{"out", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0, 0, 0, 0},
	};
	const char *key = NULL, *out = NULL, *bodyf = NULL;
	Qiao__V1__Header h;
	qiao__v1__header__init(&h);
	h.kind = QIAO__V1__MESSAGE_KIND__REQUEST;
	h.body_type = "qiao.v1.Empty";
	Qiao__V1__DataSubject subj[QIAO_MAX_SUBJECTS + 1];
	Qiao__V1__DataSubject *subjp[QIAO_MAX_SUBJECTS + 1];
	int64_t deadline = 30000;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': key = optarg; break;
		case 's': h.service = optarg; break;
		case 'u': h.user_id = optarg; break;
		case 'p': h.purpose = optarg; break;
		case 'L': h.legal_basis = optarg; break;
		case 'c': h.case_id = optarg; break;
		case 'b': bodyf = optarg; break;
		case 't': h.body_type = optarg; break;
		case 'o': out = optarg; break;
		case 'd':
			if (cli_parse_i64(optarg, 1, 86400000, "--deadline-ms", &deadline))
				return CLI_USAGE;
			break;
		case 'S':
			if (h.n_subjects == QIAO_MAX_SUBJECTS + 1) {
				cli_err("seal: too many --subject");
				return CLI_USAGE;
			}
			qiao__v1__data_subject__init(&subj[h.n_subjects]);
			subj[h.n_subjects].type = qiao_id_detect(optarg) == QIAO_ID_RESIDENT
							  ? QIAO__V1__SUBJECT_TYPE__RESIDENT_ID
							  : QIAO__V1__SUBJECT_TYPE__USCC;
			subj[h.n_subjects].id = optarg;
			subjp[h.n_subjects] = &subj[h.n_subjects];
			h.n_subjects++;
			break;
		case 'h': s_help(stdout); return CLI_OK;
		default: return CLI_USAGE;
		}
	}
	h.subjects = subjp;
	if (!key || !out || optind != argc) {
		cli_err("envelope seal: --key and --out are required; see 'qiao envelope --help'");
		return CLI_USAGE;
	}
	char why[256];
	qiao_keys_t *k = NULL;
	int rc = qiao_keys_load(key, &k, why, sizeof why);
	if (rc != 0) {
		cli_err("envelope seal: %s", why[0] ? why : qiao_strerror(rc));
		return CLI_ENV;
	}
	uint8_t *body = NULL;
	size_t blen = 0;
	if (bodyf && (rc = cli_read_file(bodyf, MSGFILE_MAX, &body, &blen)) != 0) {
		cli_err("envelope seal: --body %s: %s", bodyf, qiao_strerror(rc));
		qiao_keys_destroy(&k);
		return CLI_ENV;
	}
	h.sender = k->member;
	h.time_ms = qiao_now_ms();
	h.deadline_ms = h.time_ms + deadline;
	qiao_envelope_t *env = NULL;
	rc = qiao_envelope_seal(&h, body, blen, k->sign_sk, NULL, &env, why, sizeof why);
	qiao_keys_destroy(&k);
	free(body);
	if (rc != 0) {
		cli_err("envelope seal: %s: %s", qiao_strerror(rc), why);
		return CLI_NO;
	}
	struct qiao_frame f[4];
	qiao_envelope_frames(env, f);
	rc = s_write_msg(out, f);
	qiao_envelope_destroy(&env);
	if (rc != 0) {
		cli_err("envelope seal: cannot write %s: %s", out, qiao_strerror(rc));
		return CLI_ENV;
	}
	return CLI_OK;
}

static const char *s_kind(int k)
{
	switch (k) {
	case QIAO__V1__MESSAGE_KIND__REQUEST: return "REQUEST";
	case QIAO__V1__MESSAGE_KIND__RESPONSE: return "RESPONSE";
	case QIAO__V1__MESSAGE_KIND__ERROR: return "ERROR";
	case QIAO__V1__MESSAGE_KIND__EVENT: return "EVENT";
	default: return "?";
	}
}

static int s_open(int argc, char **argv)
{
	static const struct option opts[] = {
		{"key", required_argument, NULL, 'k'},
		{"sign-public", required_argument, NULL, 'p'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{0, 0, 0, 0},
	};
	const char *key = NULL, *pub = NULL;
	int json = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'k': key = optarg; break;
		case 'p': pub = optarg; break;
		case 'j': json = 1; break;
		case 'h': s_help(stdout); return CLI_OK;
		default: return CLI_USAGE;
		}
	}
	if ((!key == !pub) || optind != argc - 1) {
		cli_err("envelope open: give MSG and exactly one of --key or --sign-public");
		return CLI_USAGE;
	}
	uint8_t pk[32];
	char why[256] = "";
	if (key) {
		qiao_keys_t *k = NULL;
		int rc = qiao_keys_load(key, &k, why, sizeof why);
		if (rc != 0) {
			cli_err("envelope open: %s", why[0] ? why : qiao_strerror(rc));
			return CLI_ENV;
		}
		memcpy(pk, k->sign_pk, 32);
		qiao_keys_destroy(&k);
	} else if (qiao_b64_decode_exact(pub, pk, 32) != 0) {
		cli_err("envelope open: --sign-public is not base64 of 32 bytes");
		return CLI_USAGE;
	}
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = cli_read_file(argv[optind], MSGFILE_MAX, &buf, &len);
	if (rc != 0) {
		cli_err("envelope open: %s: %s", argv[optind], qiao_strerror(rc));
		return CLI_ENV;
	}
	struct qiao_frame f[8];
	size_t nf = 0;
	if (s_split(buf, len, f, 8, &nf) != 0) {
		free(buf);
		cli_err("envelope open: %s is not a message file (length-prefixed frames)", argv[optind]);
		return CLI_NO;
	}
	qiao_envelope_t *env = NULL;
	rc = qiao_envelope_open(f, nf, NULL, &env, why, sizeof why);
	free(buf);
	if (rc != 0) {
		cli_err("envelope open: %s: %s", qiao_strerror(rc), why);
		return CLI_NO;
	}
	int sig = qiao_envelope_verify(env, pk);
	const Qiao__V1__Header *h = env->hdr;
	char mid[33], bh[65], hh[65];
	uint8_t hhash[32];
	qiao_hex(h->message_id.data, 16, mid);
	qiao_hex(h->body_hash.data, 32, bh);
	qiao_envelope_header_hash(env, hhash);
	qiao_hex(hhash, 32, hh);
	if (json) {
		json_t *subs = json_array();
		for (size_t i = 0; i < h->n_subjects; i++)
			json_array_append_new(subs, json_string(h->subjects[i]->id));
		cli_json_print(json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:o, s:s, s:s, s:I}",
					 "signature_valid", sig == 0, "kind", s_kind(h->kind),
					 "message_id", mid, "sender", h->sender, "user_id", h->user_id,
					 "service", h->service, "time_ms", (json_int_t)h->time_ms,
					 "deadline_ms", (json_int_t)h->deadline_ms, "case_id", h->case_id,
					 "purpose", h->purpose, "legal_basis", h->legal_basis,
					 "subjects", subs, "body_type", h->body_type, "body_sha256", bh,
					 "body_len", (json_int_t)env->body_len));
	} else {
		printf("signature:   %s\nkind:        %s\nmessage id:  %s\nsender:      %s\n"
		       "user:        %s\nservice:     %s\ntime:        %lld\ndeadline:    %lld\n"
		       "case:        %s\npurpose:     %s\nlegal basis: %s\n",
		       sig == 0 ? "valid (Ed25519)" : "INVALID", s_kind(h->kind), mid, h->sender,
		       h->user_id, h->service, (long long)h->time_ms, (long long)h->deadline_ms,
		       h->case_id, h->purpose, h->legal_basis);
		for (size_t i = 0; i < h->n_subjects; i++)
			printf("subject:     %s\n", h->subjects[i]->id);
		printf("body type:   %s\nbody:        %zu bytes, SHA-256 %s\nheader hash: %s\n",
		       h->body_type, env->body_len, bh, hh);
	}
	qiao_envelope_destroy(&env);
	if (sig != 0) {
		cli_err("envelope open: the signature does not verify with this public key");
		return CLI_NO;
	}
	return CLI_OK;
}

int cli_envelope(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "seal"))
		return s_seal(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "open"))
		return s_open(argc - 1, argv + 1);
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		s_help(stdout);
		return CLI_OK;
	}
	cli_err("envelope: expected 'seal' or 'open'; see 'qiao envelope --help'");
	return CLI_USAGE;
}
