/*
 * C2SP signed notes, checkpoints and tlog proofs (gateway/audit_note.c).
 *
 * The vectors come from the Go reference, golang.org/x/mod/sumdb/note
 * (note.go's package example and note_test.go): the PeterNeumann key pair,
 * whose signed note we must reproduce byte for byte, and the EnochRoot
 * verifier key with its published signature.  The checkpoint example is
 * c2sp.org/tlog-checkpoint's; the tlog-proof encodings are those of
 * transparency-dev/formats' proof tests (tlog_proof_test.go, TestMarshal).
 */
#include "check.h"
#include "audit_merkle.h"
#include "audit_note.h"

#include <sodium.h>
#include <string.h>

static const char *PETER_SKEY64 = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"; /* 0x01 || seed */
static const char *PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
static const char *ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
static const char *TEXT = "If you think cryptography is the answer to your problem,\n"
			  "then you don't know what your problem is.\n";
static const char *PETER_SIG = "\xe2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
static const char *ENOCH_SIG = "\xe2\x80\x94 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

static uint8_t s_peter_pk[32], s_peter_sk[64];

/* A growable string for building test notes. */
struct buf {
	char *p;
	size_t len, cap;
};

static void b_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void b_str(struct buf *b, const char *s)
{
	b_add(b, s, strlen(s));
}

static void b_reset(struct buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

static int s_verify(const char *note, const char *vkey)
{
	const char *te;
	return note_verify(note, strlen(note), vkey, &te);
}

static void test_keys(void)
{
	uint8_t key[33], pk[32];
	size_t kl = 0;
	char name[64], vkey[NOTE_VKEY_LEN(12)];
	uint32_t id;

	CHECK(sodium_base642bin(key, sizeof key, PETER_SKEY64, strlen(PETER_SKEY64), NULL, &kl, NULL,
				sodium_base64_VARIANT_ORIGINAL) == 0 && kl == 33 && key[0] == 1);
	CHECK(crypto_sign_seed_keypair(s_peter_pk, s_peter_sk, key + 1) == 0);

	CHECK(note_key_id("PeterNeumann", s_peter_pk) == 0xc74f20a3);
	CHECK_RC(note_vkey("PeterNeumann", s_peter_pk, vkey, sizeof vkey));
	CHECK(strcmp(vkey, PETER_VKEY) == 0);
	CHECK_ERR(note_vkey("PeterNeumann", s_peter_pk, vkey, sizeof vkey - 1), QIAO_ETOOBIG);
	CHECK_ERR(note_vkey("Peter Neumann", s_peter_pk, vkey, sizeof vkey), QIAO_EINVAL);
	CHECK_ERR(note_vkey("Peter+Neumann", s_peter_pk, vkey, sizeof vkey), QIAO_EINVAL);
	CHECK_ERR(note_vkey("", s_peter_pk, vkey, sizeof vkey), QIAO_EINVAL);

	CHECK_RC(note_vkey_parse(PETER_VKEY, name, sizeof name, &id, pk));
	CHECK(strcmp(name, "PeterNeumann") == 0 && id == 0xc74f20a3);
	CHECK(memcmp(pk, s_peter_pk, 32) == 0);
	CHECK_ERR(note_vkey_parse(PETER_VKEY, name, 12, &id, pk), QIAO_ETOOBIG);
	CHECK(name[0] == '\0' && id == 0 && sodium_is_zero(pk, 32));

	CHECK_RC(note_vkey_parse(ENOCH_VKEY, name, sizeof name, &id, pk));
	CHECK(strcmp(name, "EnochRoot") == 0 && id == 0xaf0cfe78);
	CHECK(note_key_id("EnochRoot", pk) == 0xaf0cfe78);
	char ev[NOTE_VKEY_LEN(9)];
	CHECK_RC(note_vkey("EnochRoot", pk, ev, sizeof ev));
	CHECK(strcmp(ev, ENOCH_VKEY) == 0);

	/* note_test.go TestNewVerifier: every proper substring and every byte
	 * incremented must be refused. */
	char m[128];
	size_t vl = strlen(PETER_VKEY);
	int refused = 0, tried = 0;
	for (size_t i = 0; i <= vl; i++) {
		for (size_t j = i + 1; j <= vl; j++) {
			if (i == 0 && j == vl)
				continue;
			memcpy(m, PETER_VKEY + i, j - i);
			m[j - i] = '\0';
			tried++;
			refused += note_vkey_parse(m, name, sizeof name, &id, pk) != 0;
		}
	}
	for (size_t i = 0; i < vl; i++) {
		memcpy(m, PETER_VKEY, vl + 1);
		m[i]++;
		tried++;
		refused += note_vkey_parse(m, name, sizeof name, &id, pk) != 0;
	}
	CHECK(refused == tried);
	printf("verifier key manglings: %d of %d refused\n", refused, tried);
	/* Wrong key length and unknown algorithm, each with an adjusted key ID. */
	CHECK_ERR(note_vkey_parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
				  name, sizeof name, &id, pk),
		  QIAO_EDECODE);
	CHECK_ERR(note_vkey_parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
				  name, sizeof name, &id, pk),
		  QIAO_EALG);
	/* The key ID's hex digits may be upper case, as Go's ParseUint reads. */
	CHECK_RC(note_vkey_parse("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
				 name, sizeof name, &id, pk));
	CHECK_ERR(note_vkey_parse(NULL, name, sizeof name, &id, pk), QIAO_EINVAL);
	char *huge = malloc(8192);
	memset(huge, 'a', 8191);
	huge[8191] = '\0';
	CHECK_ERR(note_vkey_parse(huge, name, sizeof name, &id, pk), QIAO_ETOOBIG);
	free(huge);
}

static void test_go_vectors(void)
{
	struct buf b = {0};
	char *out = NULL;
	const char *te;

	/* note_test.go TestSign: byte for byte. */
	CHECK_RC(note_sign(TEXT, strlen(TEXT), "PeterNeumann", s_peter_sk, &out));
	b_str(&b, TEXT);
	b_str(&b, "\n");
	b_str(&b, PETER_SIG);
	CHECK(out && strcmp(out, b.p) == 0);
	free(out);

	CHECK_RC(note_verify(b.p, b.len, PETER_VKEY, &te));
	CHECK(te == b.p + strlen(TEXT));
	CHECK_ERR(note_verify(b.p, b.len, ENOCH_VKEY, &te), QIAO_ENOTFOUND);
	CHECK(te == NULL);

	/* TestOpen: one signature verified and one ignored, either way. */
	b_reset(&b);
	b_str(&b, TEXT);
	b_str(&b, "\n");
	b_str(&b, PETER_SIG);
	b_str(&b, ENOCH_SIG);
	CHECK_RC(s_verify(b.p, PETER_VKEY));
	CHECK_RC(s_verify(b.p, ENOCH_VKEY));

	/* Too many signatures. */
	b_reset(&b);
	b_str(&b, TEXT);
	b_str(&b, "\n");
	for (int i = 0; i < 100; i++)
		b_str(&b, PETER_SIG);
	CHECK_RC(s_verify(b.p, PETER_VKEY));
	b_str(&b, PETER_SIG);
	CHECK_ERR(s_verify(b.p, PETER_VKEY), QIAO_EDECODE);
	CHECK_ERR(s_verify(b.p, ENOCH_VKEY), QIAO_EDECODE);

	/* Invalid signature: 3 more bytes inside it. */
	char bad[256];
	snprintf(bad, sizeof bad, "%.60sABCD%s", PETER_SIG, PETER_SIG + 60);
	b_reset(&b);
	b_str(&b, TEXT);
	b_str(&b, "\n");
	b_str(&b, bad);
	CHECK_ERR(s_verify(b.p, PETER_VKEY), QIAO_EBADSIG);

	/* Duplicated verified and unverified signatures (the bad Enoch one is
	 * not Peter's business). */
	snprintf(bad, sizeof bad, "%.60sABCD%s", ENOCH_SIG, ENOCH_SIG + 60);
	b_reset(&b);
	b_str(&b, TEXT);
	b_str(&b, "\n");
	b_str(&b, PETER_SIG);
	b_str(&b, PETER_SIG);
	b_str(&b, ENOCH_SIG);
	b_str(&b, ENOCH_SIG);
	b_str(&b, bad);
	CHECK_RC(s_verify(b.p, PETER_VKEY));
	CHECK_ERR(s_verify(b.p, ENOCH_VKEY), 0);

	/* Invalid encoded message syntax (TestOpen's badMsgs). */
	struct buf m = {0};
	const char *bare = "\xe2\x80\x94 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";
	for (int k = 0; k < 7; k++) {
		b_reset(&m);
		switch (k) {
		case 0: b_str(&m, TEXT); break;
		case 1: b_str(&m, TEXT), b_str(&m, "\n"); break;
		case 2: b_str(&m, TEXT), b_str(&m, "\n"), b_add(&m, PETER_SIG, strlen(PETER_SIG) - 1); break;
		case 3: b_str(&m, "\x01"), b_str(&m, TEXT), b_str(&m, "\n"), b_str(&m, PETER_SIG); break;
		case 4: b_str(&m, "\xff"), b_str(&m, TEXT), b_str(&m, "\n"), b_str(&m, PETER_SIG); break;
		case 5: b_str(&m, TEXT), b_str(&m, "\n"), b_str(&m, bare); break;
		case 6: b_str(&m, TEXT), b_str(&m, "\n"), b_str(&m, PETER_SIG), b_str(&m, "Unexpected line.\n"); break;
		}
		CHECK_ERR(note_verify(m.p, m.len, PETER_VKEY, &te), QIAO_EDECODE);
	}

	/* Wrong name or key ID: not our key, so ignored, so no signature. */
	b_reset(&b);
	b_str(&b, TEXT);
	b_str(&b, "\n");
	b_str(&b, "\xe2\x80\x94 CarmenSandiego x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n");
	CHECK_ERR(s_verify(b.p, PETER_VKEY), QIAO_ENOTFOUND);
	b_reset(&b);
	b_str(&b, TEXT);
	b_str(&b, "\n");
	b_str(&b, "\xe2\x80\x94 PeterNeumann xxxxo/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n");
	CHECK_ERR(s_verify(b.p, PETER_VKEY), QIAO_ENOTFOUND);
	free(b.p);
	free(m.p);
}

static void test_sign_verify(void)
{
	uint8_t pk[32], sk[64], pk2[32], sk2[64];
	char vkey[NOTE_VKEY_LEN(64)], vkey2[NOTE_VKEY_LEN(64)], why[200];
	char *out = NULL, *out2 = NULL;
	const char *te;
	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(pk2, sk2);
	CHECK_RC(note_vkey("gw.qiao.example/audit", pk, vkey, sizeof vkey));
	CHECK_RC(note_vkey("witness.example", pk2, vkey2, sizeof vkey2));

	/* Texts may hold empty lines, even end in one; UTF-8 is fine. */
	static const char *texts[] = {"a\n", "\n", "a\n\nb\n", "a\n\nb\n\n", "审计日志\n第二行\n"};
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		const char *t = texts[i];
		CHECK_RC(note_sign(t, strlen(t), "gw.qiao.example/audit", sk, &out));
		CHECK_RC(note_verify(out, strlen(out), vkey, &te));
		CHECK(te == out + strlen(t));
		CHECK_ERR(note_verify(out, strlen(out), vkey2, &te), QIAO_ENOTFOUND);
		free(out);
	}

	/* A cosigned note: our line and a witness's, and 16 other keys. */
	const char *t = "qiao.example/log\n42\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
	struct buf b = {0};
	CHECK_RC(note_sign(t, strlen(t), "gw.qiao.example/audit", sk, &out));
	CHECK_RC(note_sign(t, strlen(t), "witness.example", sk2, &out2));
	b_str(&b, out2);
	b_str(&b, out + strlen(t) + 1); /* our signature line */
	free(out2);
	out2 = NULL;
	for (int i = 0; i < 16; i++) {
		uint8_t opk[32], osk[64];
		char *o = NULL, nm[32];
		crypto_sign_keypair(opk, osk);
		snprintf(nm, sizeof nm, "other%d.example", i);
		CHECK_RC(note_sign(t, strlen(t), nm, osk, &o));
		b_str(&b, o + strlen(t) + 1);
		free(o);
	}
	CHECK_RC(note_verify(b.p, b.len, vkey, &te));
	CHECK(te == b.p + strlen(t));
	CHECK_RC(note_verify(b.p, b.len, vkey2, &te));

	/* Tampering: a text byte, a signature byte, the name, the key ID. */
	size_t tl = strlen(t);
	char *n1 = strdup(out);
	n1[3] ^= 1;
	CHECK_ERR(note_verify_why(n1, strlen(n1), vkey, &te, why, sizeof why), QIAO_EBADSIG);
	CHECK(strstr(why, "does not verify") != NULL);
	free(n1);
	/* The line is "— gw.qiao.example/audit <92 base64 chars>\n"; base64
	 * character 20 is inside the Ed25519 signature, 2 inside the key ID. */
	const char *b64 = out + tl + 1 + 4 + strlen("gw.qiao.example/audit") + 1;
	for (int pos = 0; pos < 2; pos++) {
		int at = pos == 0 ? 20 : 2;
		n1 = strdup(out);
		char *c = n1 + (b64 - out) + at;
		*c = *c == 'A' ? 'B' : 'A';
		int want = pos == 0 ? QIAO_EBADSIG : QIAO_ENOTFOUND;
		CHECK_ERR(note_verify(n1, strlen(n1), vkey, &te), want);
		free(n1);
	}
	n1 = strdup(out);
	n1[tl + 1 + 4] = 'G'; /* "gw..." -> "Gw...": another name */
	CHECK_ERR(note_verify_why(n1, strlen(n1), vkey, &te, why, sizeof why), QIAO_ENOTFOUND);
	CHECK(strstr(why, "no signature by gw.qiao.example/audit+") != NULL);
	free(n1);

	/* A signature of the wrong length under our name and key ID. */
	uint8_t raw[4 + 63];
	uint32_t id = note_key_id("gw.qiao.example/audit", pk);
	raw[0] = (uint8_t)(id >> 24), raw[1] = (uint8_t)(id >> 16), raw[2] = (uint8_t)(id >> 8), raw[3] = (uint8_t)id;
	memset(raw + 4, 7, 63);
	char enc[sodium_base64_ENCODED_LEN(sizeof raw, sodium_base64_VARIANT_ORIGINAL)];
	sodium_bin2base64(enc, sizeof enc, raw, sizeof raw, sodium_base64_VARIANT_ORIGINAL);
	b_reset(&b);
	b_str(&b, t);
	b_str(&b, "\n\xe2\x80\x94 gw.qiao.example/audit ");
	b_str(&b, enc);
	b_str(&b, "\n");
	CHECK_ERR(note_verify(b.p, b.len, vkey, &te), QIAO_EBADSIG);

	/* Malformed notes: pieces joined, "sig" standing for our signature line. */
	const char *sigline = out + tl + 1;
	struct {
		const char *piece[4];
		int want;
	} bad[] = {
		{{"a\rb\n\n", "sig"}, QIAO_EDECODE},
		{{"a\tb\n\n", "sig"}, QIAO_EDECODE},
		{{"\xc0\xaf\n\n", "sig"}, QIAO_EDECODE},     /* overlong '/' */
		{{"\xed\xa0\x80\n\n", "sig"}, QIAO_EDECODE}, /* a surrogate */
		{{"\xf4\x90\x80\x80\n\n", "sig"}, QIAO_EDECODE}, /* above U+10FFFF */
		{{t, "\n\xe2\x80\x94 gw\xc2\xa0qiao x08go/ZJk=\n"}, QIAO_EDECODE}, /* NBSP in the name */
		{{t, "\n\xe2\x80\x94 a+b x08go/ZJk=\n"}, QIAO_EDECODE},
		{{t, "\n\xe2\x80\x94  x08go/ZJk=\n"}, QIAO_EDECODE},     /* empty name */
		{{t, "\n\xe2\x80\x94 name \n"}, QIAO_EDECODE},           /* empty base64 */
		{{t, "\n\xe2\x80\x94 name\n"}, QIAO_EDECODE},            /* no space */
		{{t, "\n\xe2\x80\x94 name AAAA\n"}, QIAO_EDECODE},       /* 3 bytes < 5 */
		{{t, "\n\xe2\x80\x94 name AAAAAR==\n"}, QIAO_EDECODE},   /* non-canonical */
		{{t, "\n\xe2\x80\x94 name AAAAAA\n"}, QIAO_EDECODE},     /* unpadded */
		{{t, "\n\xe2\x80\x94 name AAAAAA== x\n"}, QIAO_EDECODE}, /* trailing word */
		{{t, "\n\xe2\x80\x94name AAAAAAA=\n"}, QIAO_EDECODE},    /* no space after dash */
		{{t, "\n- name AAAAAAA=\n"}, QIAO_EDECODE},              /* not an em dash */
		{{t, "\n\xe2\x80\x94"}, QIAO_EDECODE},                   /* cut short */
		{{t, "\n", "sig", "\n"}, QIAO_EDECODE},                  /* blank line after sigs */
		{{t, "sig"}, QIAO_EDECODE},                              /* no blank line */
		{{t, "\n", "sig", "Unexpected line.\n"}, QIAO_EDECODE},
		{{""}, QIAO_EDECODE},
		{{"\n\n"}, QIAO_EDECODE},
		{{"\n\n\n"}, QIAO_EDECODE},
	};
	for (size_t i = 0; i <= sizeof bad / sizeof bad[0]; i++) {
		b_reset(&b);
		if (i == sizeof bad / sizeof bad[0]) {
			b_add(&b, "a\0b\n\n", 5); /* a NUL */
			b_str(&b, sigline);
		} else {
			for (int k = 0; k < 4 && bad[i].piece[k]; k++)
				b_str(&b, strcmp(bad[i].piece[k], "sig") == 0 ? sigline : bad[i].piece[k]);
		}
		int want = i == sizeof bad / sizeof bad[0] ? QIAO_EDECODE : bad[i].want;
		int rc = note_verify_why(b.p, b.len, vkey, &te, why, sizeof why);
		if (rc != want)
			fprintf(stderr, "malformed note %zu: %d (%s) %s\n", i, rc, qiao_strerror(rc), why);
		CHECK_ERR(rc, want);
		CHECK(why[0] != '\0' && te == NULL);
	}
	/* A note over the size cap, and an unusable verifier key. */
	char *big = malloc(NOTE_MAX_LEN + 2);
	memset(big, 'a', NOTE_MAX_LEN + 1);
	big[NOTE_MAX_LEN + 1] = '\0';
	CHECK_ERR(note_verify(big, NOTE_MAX_LEN + 1, vkey, &te), QIAO_ETOOBIG);
	/* The largest note: text + "\n— n " + 92 base64 characters + "\n". */
	big[NOTE_MAX_LEN - 101] = '\n';
	CHECK_RC(note_sign(big, NOTE_MAX_LEN - 100, "n", sk, &out2));
	CHECK(out2 && strlen(out2) == NOTE_MAX_LEN);
	char vn[NOTE_VKEY_LEN(1)];
	CHECK_RC(note_vkey("n", pk, vn, sizeof vn));
	CHECK_RC(note_verify(out2, NOTE_MAX_LEN, vn, &te));
	free(out2);
	out2 = NULL;
	big[NOTE_MAX_LEN - 101] = 'a';
	big[NOTE_MAX_LEN - 100] = '\n';
	CHECK_ERR(note_sign(big, NOTE_MAX_LEN - 99, "n", sk, &out2), QIAO_ETOOBIG);
	CHECK(out2 == NULL);
	free(big);
	CHECK_ERR(note_verify(out, strlen(out), "nope", &te), QIAO_EDECODE);

	/* Texts and names note_sign refuses. */
	CHECK_ERR(note_sign("abc", 3, "n", sk, &out2), QIAO_EINVAL);
	CHECK_ERR(note_sign("a\tb\n", 4, "n", sk, &out2), QIAO_EINVAL);
	CHECK_ERR(note_sign("\xff\n", 2, "n", sk, &out2), QIAO_EINVAL);
	CHECK_ERR(note_sign("a\0b\n", 4, "n", sk, &out2), QIAO_EINVAL);
	CHECK_ERR(note_sign("", 0, "n", sk, &out2), QIAO_EINVAL);
	CHECK_ERR(note_sign("a\n", 2, "a b", sk, &out2), QIAO_EINVAL);
	CHECK_ERR(note_sign("a\n", 2, "a+b", sk, &out2), QIAO_EINVAL);
	CHECK_ERR(note_sign("a\n", 2, "", sk, &out2), QIAO_EINVAL);
	CHECK_ERR(note_sign("a\n", 2, "a\xe3\x80\x80" "b", sk, &out2), QIAO_EINVAL); /* U+3000 */
	CHECK(out2 == NULL);
	free(out);
	free(b.p);
}

static void test_checkpoint(void)
{
	/* c2sp.org/tlog-checkpoint's example. */
	static const char *spec = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
	uint8_t root[32], r2[32];
	size_t rl = 0;
	char *out = NULL, origin[CHECKPOINT_ORIGIN_MAX + 1], why[200];
	uint64_t size;

	CHECK(sodium_base642bin(root, sizeof root, "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=", 44, NULL,
				&rl, NULL, sodium_base64_VARIANT_ORIGINAL) == 0 && rl == 32);
	CHECK_RC(checkpoint_format("example.com/behind-the-sofa", 20852163, root, &out));
	CHECK(out && strcmp(out, spec) == 0);
	free(out);
	CHECK_RC(checkpoint_parse(spec, strlen(spec), origin, sizeof origin, &size, r2));
	CHECK(strcmp(origin, "example.com/behind-the-sofa") == 0 && size == 20852163);
	CHECK(memcmp(root, r2, 32) == 0);

	/* Round trips at the edges of the size range. */
	uint64_t sizes[] = {0, 1, 10, UINT64_MAX};
	for (size_t i = 0; i < 4; i++) {
		CHECK_RC(checkpoint_format("o", sizes[i], root, &out));
		CHECK_RC(checkpoint_parse(out, strlen(out), origin, sizeof origin, &size, r2));
		CHECK(size == sizes[i] && strcmp(origin, "o") == 0 && memcmp(root, r2, 32) == 0);
		free(out);
	}
	/* Extension lines are allowed (and ignored). */
	const char *ext = "example.com/behind-the-sofa\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\next one\next two\n";
	CHECK_RC(checkpoint_parse(ext, strlen(ext), origin, sizeof origin, &size, r2));
	CHECK(size == 5);

	static const char *bad[] = {
		"",
		"o\n",
		"o\n5\n",
		"o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",        /* no final newline */
		"\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",       /* empty origin */
		"o\x7f\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  /* DEL in origin */
		"o\tx\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
		"o\n05\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",     /* leading zero */
		"o\n00\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
		"o\n+5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
		"o\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
		"o\n 5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
		"o\n5 \nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
		"o\n\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
		"o\n18446744073709551616\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
		"o\n99999999999999999999\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
		"o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n",       /* non-canonical */
		"o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",        /* unpadded */
		"o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=AAAA\n",   /* 35 bytes */
		"o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxqw==\n",       /* 31 bytes */
		"o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n",     /* empty extension */
		"o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\next",    /* unterminated */
		"o\r\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
		"\xff\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = checkpoint_parse_why(bad[i], strlen(bad[i]), origin, sizeof origin, &size, r2, why,
					      sizeof why);
		if (rc != QIAO_EDECODE)
			fprintf(stderr, "bad checkpoint %zu: %d\n", i, rc);
		CHECK_ERR(rc, QIAO_EDECODE);
		CHECK(why[0] != '\0' && origin[0] == '\0' && size == 0 && sodium_is_zero(r2, 32));
	}
	/* An origin of 256 bytes; a buffer too small. */
	char o256[400];
	memset(o256, 'o', 256);
	strcpy(o256 + 256, "\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n");
	CHECK_ERR(checkpoint_parse(o256, strlen(o256), origin, sizeof origin, &size, r2), QIAO_EDECODE);
	CHECK_ERR(checkpoint_parse(spec, strlen(spec), origin, 10, &size, r2), QIAO_ETOOBIG);
	/* checkpoint_format refuses origins it could not parse back. */
	o256[256] = '\0';
	CHECK_ERR(checkpoint_format(o256, 1, root, &out), QIAO_EINVAL);
	CHECK_ERR(checkpoint_format("", 1, root, &out), QIAO_EINVAL);
	CHECK_ERR(checkpoint_format("a\nb", 1, root, &out), QIAO_EINVAL);
	CHECK(out == NULL);
	o256[255] = '\0';
	CHECK_RC(checkpoint_format(o256, 1, root, &out));
	CHECK_RC(checkpoint_parse(out, strlen(out), origin, sizeof origin, &size, r2));
	free(out);
}

/* A small node store for the end-to-end proof test. */
struct store {
	uint8_t node[5][16][32];
	uint64_t limit;
};

static int s_emit(void *arg, unsigned level, uint64_t index, const uint8_t h[32])
{
	struct store *s = arg;
	if (level >= 5 || index >= 16)
		return QIAO_EINVAL;
	memcpy(s->node[level][index], h, 32);
	return 0;
}

static int s_get(void *arg, unsigned level, uint64_t index, uint8_t out[32])
{
	struct store *s = arg;
	if (level >= 5 || index >= 16 || ((index + 1) << level) > s->limit)
		return QIAO_ENOTFOUND;
	memcpy(out, s->node[level][index], 32);
	return 0;
}

static void test_tlog_proof(void)
{
	uint8_t h1[32], h2[32], hs[2][32];
	char e1[45], e2[45], want[512], why[200];
	char *out = NULL;
	struct tlog_proof p;

	/* transparency-dev/formats proof TestMarshal. */
	crypto_hash_sha256(h1, (const unsigned char *)"hash1", 5);
	crypto_hash_sha256(h2, (const unsigned char *)"hash2", 5);
	memcpy(hs[0], h1, 32), memcpy(hs[1], h2, 32);
	sodium_bin2base64(e1, sizeof e1, h1, 32, sodium_base64_VARIANT_ORIGINAL);
	sodium_bin2base64(e2, sizeof e2, h2, 32, sodium_base64_VARIANT_ORIGINAL);

	snprintf(want, sizeof want, "c2sp.org/tlog-proof@v1\nindex 5\n%s\n%s\n\ntest checkpoint\n", e1, e2);
	CHECK_RC(tlog_proof_format(5, (const uint8_t (*)[32])hs, 2, "test checkpoint\n", &out));
	CHECK(out && strcmp(out, want) == 0);
	CHECK_RC(tlog_proof_parse(out, strlen(out), &p, why, sizeof why));
	CHECK(p.index == 5 && p.n == 2 && !p.has_extra);
	CHECK(memcmp(p.proof, hs, 64) == 0);
	CHECK(p.checkpoint_len == 16 && memcmp(p.checkpoint, "test checkpoint\n", 16) == 0);
	free(out);

	char xb[64];
	sodium_bin2base64(xb, sizeof xb, (const unsigned char *)"extra information", 17,
			  sodium_base64_VARIANT_ORIGINAL);
	snprintf(want, sizeof want, "c2sp.org/tlog-proof@v1\nextra %s\nindex 10\n%s\n\ncheckpoint data\n", xb, e1);
	CHECK_RC(tlog_proof_format_extra(10, "extra information", 17, (const uint8_t (*)[32])hs, 1,
					 "checkpoint data\n", &out));
	CHECK(out && strcmp(out, want) == 0);
	CHECK_RC(tlog_proof_parse(out, strlen(out), &p, why, sizeof why));
	CHECK(p.index == 10 && p.n == 1 && p.has_extra);
	CHECK(p.extra_b64_len == strlen(xb) && memcmp(p.extra_b64, xb, p.extra_b64_len) == 0);
	free(out);

	CHECK_RC(tlog_proof_format(0, NULL, 0, "checkpoint\n", &out));
	CHECK(out && strcmp(out, "c2sp.org/tlog-proof@v1\nindex 0\n\ncheckpoint\n") == 0);
	free(out);
	/* An empty extra is a present, empty "extra " line; the largest index. */
	CHECK_RC(tlog_proof_format_extra(UINT64_MAX, NULL, 0, (const uint8_t (*)[32])hs, 0, "cp\n", &out));
	CHECK(out && strcmp(out, "c2sp.org/tlog-proof@v1\nextra \nindex 18446744073709551615\n\ncp\n") == 0);
	CHECK_RC(tlog_proof_parse(out, strlen(out), &p, why, sizeof why));
	CHECK(p.has_extra && p.extra_b64_len == 0 && p.index == UINT64_MAX);
	free(out);
	/* Blank lines inside the checkpoint are the checkpoint's. */
	const char *blank = "c2sp.org/tlog-proof@v1\nindex 1\n\na\n\nb\n";
	CHECK_RC(tlog_proof_parse(blank, strlen(blank), &p, why, sizeof why));
	CHECK(p.checkpoint_len == 5 && memcmp(p.checkpoint, "a\n\nb\n", 5) == 0);

	/* Refused: formats/proof TestUnmarshalErrors, and where C2SP asks for
	 * more than Go checks (no leading zeros, canonical base64, "\n" only,
	 * a checkpoint present). */
	char h64[200], hlong[100];
	uint8_t z[64] = {0};
	sodium_bin2base64(hlong, sizeof hlong, z, 64, sodium_base64_VARIANT_ORIGINAL);
	snprintf(h64, sizeof h64, "c2sp.org/tlog-proof@v1\nindex 0\n%s\n\ncheckpoint\n", hlong);
	const char *bad[] = {
		"wrong-header\nindex 0\n\ncheckpoint\n",
		"c2sp.org/tlog-proof@v1\nextra !!notbase64!!\nindex 0\n\ncheckpoint\n",
		"c2sp.org/tlog-proof@v1\n\n\ncheckpoint\n",
		"c2sp.org/tlog-proof@v1\nindex notanumber\n\ncheckpoint\n",
		"c2sp.org/tlog-proof@v1\nindex -5\n\ncheckpoint\n",
		"c2sp.org/tlog-proof@v1\nindex 0\n!!notbase64!!\n\ncheckpoint\n",
		h64,
		"",
		"c2sp.org/tlog-proof@v1\n",
		"c2sp.org/tlog-proof@v1\nextra\nindex 0\n\ncp\n",
		"c2sp.org/tlog-proof@v1\nindex +1\n\ncp\n",
		"c2sp.org/tlog-proof@v1\nindex 18446744073709551616\n\ncp\n",
		"c2sp.org/tlog-proof@v1\nindex  1\n\ncp\n",
		"c2sp.org/tlog-proof@v1\nindex 007\n\ncp\n",
		"c2sp.org/tlog-proof@v1\r\nindex 5\r\n\r\ncp line\r\n",
		"c2sp.org/tlog-proof@v1\nindex 1\n",
		"c2sp.org/tlog-proof@v1\nindex 1\n\n",
		"c2sp.org/tlog-proof@v1\nindex 0\nypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLt=\n\ncp\n",
		"c2sp.org/tlog-proof@v1\nindex 0\nypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/u\rSLs=\n\ncp\n",
		"c2sp.org/tlog-proof@v1\nextra YR==\nindex 0\n\ncp\n",
		"c2sp.org/tlog-proof@v2\nindex 0\n\ncp\n",
		"c2sp.org/tlog-proof@v1 \nindex 0\n\ncp\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = tlog_proof_parse(bad[i], strlen(bad[i]), &p, why, sizeof why);
		if (rc != QIAO_EDECODE)
			fprintf(stderr, "bad tlog proof %zu: %d\n", i, rc);
		CHECK_ERR(rc, QIAO_EDECODE);
		CHECK(why[0] != '\0' && p.n == 0 && p.index == 0 && p.checkpoint == NULL);
	}
	/* The one Go port vector that holds a valid hash: it parses. */
	const char *okh = "c2sp.org/tlog-proof@v1\nindex 0\nypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs=\n\ncp\n";
	CHECK_RC(tlog_proof_parse(okh, strlen(okh), &p, why, sizeof why));
	/* 65 hashes: more than any tree has. */
	struct buf b = {0};
	b_str(&b, "c2sp.org/tlog-proof@v1\nindex 0\n");
	for (int i = 0; i < 65; i++)
		b_str(&b, e1), b_str(&b, "\n");
	b_str(&b, "\ncp\n");
	CHECK_ERR(tlog_proof_parse(b.p, b.len, &p, why, sizeof why), QIAO_ETOOBIG);
	CHECK_ERR(tlog_proof_format(0, (const uint8_t (*)[32])hs, 65, "cp\n", &out), QIAO_EINVAL);
	CHECK_ERR(tlog_proof_format(0, NULL, 0, "", &out), QIAO_EINVAL);
	CHECK_ERR(tlog_proof_format(0, NULL, 0, "no newline", &out), QIAO_EINVAL);
	CHECK(out == NULL);

	/* End to end: a log of 11 entries, its signed checkpoint, a proof per
	 * entry; then a wrong leaf, origin, key, index and a tampered hash. */
	static struct store st;
	struct merkle_frontier f;
	uint8_t leaves[11][32], root[32], pk[32], sk[64], pk2[32], sk2[64];
	char vkey[NOTE_VKEY_LEN(64)], vkey2[NOTE_VKEY_LEN(64)];
	const char *origin = "gw.qiao.example/audit";
	merkle_frontier_init(&f);
	for (int i = 0; i < 11; i++) {
		char e[32];
		snprintf(e, sizeof e, "entry %d", i);
		merkle_leaf_hash(e, strlen(e), leaves[i]);
		CHECK_RC(merkle_frontier_append(&f, leaves[i], s_emit, &st));
	}
	st.limit = 11;
	merkle_frontier_root(&f, root);
	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(pk2, sk2);
	CHECK_RC(note_vkey(origin, pk, vkey, sizeof vkey));
	CHECK_RC(note_vkey(origin, pk2, vkey2, sizeof vkey2));
	char *cp = NULL, *signed_cp = NULL;
	CHECK_RC(checkpoint_format(origin, 11, root, &cp));
	CHECK_RC(note_sign(cp, strlen(cp), origin, sk, &signed_cp));
	int all_ok = 1;
	for (uint64_t i = 0; i < 11; i++) {
		uint8_t proof[MERKLE_PROOF_MAX][32];
		size_t n;
		uint64_t idx = 99;
		CHECK_RC(merkle_inclusion_proof(s_get, &st, i, 11, proof, MERKLE_PROOF_MAX, &n));
		CHECK_RC(tlog_proof_format(i, (const uint8_t (*)[32])proof, n, signed_cp, &out));
		if (tlog_proof_verify(out, strlen(out), vkey, origin, leaves[i], &idx, why, sizeof why) != 0 ||
		    idx != i) {
			fprintf(stderr, "tlog proof %llu: %s\n", (unsigned long long)i, why);
			all_ok = 0;
		}
		CHECK_ERR(tlog_proof_verify(out, strlen(out), vkey, origin, leaves[(i + 1) % 11], &idx, why,
					    sizeof why),
			  QIAO_EBADSIG);
		CHECK(idx == 0);
		CHECK_ERR(tlog_proof_verify(out, strlen(out), vkey, "other.example/log", leaves[i], NULL,
					    why, sizeof why),
			  QIAO_EBADSIG);
		/* Another key under the same name has another key ID: the
		 * checkpoint carries no signature by it. */
		CHECK_ERR(tlog_proof_verify(out, strlen(out), vkey2, origin, leaves[i], NULL, why, sizeof why),
			  QIAO_ENOTFOUND);
		free(out);
		if (n > 0) {
			proof[0][0] ^= 1;
			CHECK_RC(tlog_proof_format(i, (const uint8_t (*)[32])proof, n, signed_cp, &out));
			CHECK_ERR(tlog_proof_verify(out, strlen(out), vkey, origin, leaves[i], NULL, why,
						    sizeof why),
				  QIAO_EBADSIG);
			free(out);
			proof[0][0] ^= 1;
			/* One hash short: proves nothing. */
			CHECK_RC(tlog_proof_format(i, (const uint8_t (*)[32])proof, n - 1, signed_cp, &out));
			CHECK_ERR(tlog_proof_verify(out, strlen(out), vkey, origin, leaves[i], NULL, why,
						    sizeof why),
				  QIAO_EBADSIG);
			free(out);
		}
	}
	CHECK(all_ok);
	/* An index past the tree. */
	CHECK_RC(tlog_proof_format(11, NULL, 0, signed_cp, &out));
	CHECK_ERR(tlog_proof_verify(out, strlen(out), vkey, origin, leaves[0], NULL, why, sizeof why),
		  QIAO_EBADSIG);
	CHECK(strstr(why, "do not fit") != NULL);
	free(out);
	free(cp);
	free(signed_cp);
	free(b.p);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	test_keys();
	test_go_vectors();
	test_sign_verify();
	test_checkpoint();
	test_tlog_proof();
	return check_done();
}
