#include "qiao_keys.h"
#include "qiao_err.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEYFILE_MAX 4096

int qiao_crypto_init(void)
{
	return sodium_init() < 0 ? QIAO_ECRYPTO : 0;
}

static qiao_keys_t *s_alloc(const char *member)
{
	if (!member || strlen(member) >= QIAO_MEMBER_MAX)
		return NULL;
	qiao_keys_t *k = calloc(1, sizeof *k);
	if (!k)
		return NULL;
	k->sign_sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	k->curve_sk = sodium_malloc(crypto_box_SECRETKEYBYTES);
	if (!k->sign_sk || !k->curve_sk) {
		qiao_keys_destroy(&k);
		return NULL;
	}
	snprintf(k->member, sizeof k->member, "%s", member);
	return k;
}

void qiao_keys_destroy(qiao_keys_t **kp)
{
	if (!kp || !*kp)
		return;
	qiao_keys_t *k = *kp;
	sodium_free(k->sign_sk); /* sodium_free wipes before freeing */
	sodium_free(k->curve_sk);
	sodium_memzero(k, sizeof *k);
	free(k);
	*kp = NULL;
}

int qiao_keys_generate(const char *member, qiao_keys_t **out)
{
	*out = NULL;
	if (qiao_crypto_init())
		return QIAO_ECRYPTO;
	if (!member || strlen(member) >= QIAO_MEMBER_MAX)
		return QIAO_EINVAL;
	qiao_keys_t *k = s_alloc(member);
	if (!k)
		return QIAO_ENOMEM;
	crypto_sign_keypair(k->sign_pk, k->sign_sk);
	crypto_box_keypair(k->curve_pk, k->curve_sk);
	*out = k;
	return 0;
}

int qiao_keys_from_seed(const char *member, const uint8_t seed[32], qiao_keys_t **out)
{
	*out = NULL;
	if (qiao_crypto_init())
		return QIAO_ECRYPTO;
	if (!member || strlen(member) >= QIAO_MEMBER_MAX)
		return QIAO_EINVAL;
	qiao_keys_t *k = s_alloc(member);
	if (!k)
		return QIAO_ENOMEM;
	crypto_sign_seed_keypair(k->sign_pk, k->sign_sk, seed);
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)"curve", 5);
	crypto_hash_sha256_update(&st, seed, 32);
	crypto_hash_sha256_final(&st, k->curve_sk);
	sodium_memzero(&st, sizeof st);
	crypto_scalarmult_base(k->curve_pk, k->curve_sk);
	*out = k;
	return 0;
}

void qiao_b64_32(const uint8_t in[32], char out[45])
{
	sodium_bin2base64(out, 45, in, 32, sodium_base64_VARIANT_ORIGINAL);
}

int qiao_b64_decode_exact(const char *in, uint8_t *out, size_t len)
{
	size_t got = 0;
	const char *end = NULL;
	if (sodium_base642bin(out, len, in, strlen(in), NULL, &got, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		return QIAO_EKEYFILE;
	if (got != len || *end != '\0')
		return QIAO_EKEYFILE;
	return 0;
}

int qiao_keys_save(const qiao_keys_t *k, const char *path)
{
	if (!k || !path)
		return QIAO_EINVAL;
	char spk[45], cpk[45], ssk[45], csk[45];
	qiao_b64_32(k->sign_pk, spk);
	qiao_b64_32(k->curve_pk, cpk);
	/* The Ed25519 secret is stored as its 32-byte seed (first half of
	 * libsodium's 64-byte secret key). */
	qiao_b64_32(k->sign_sk, ssk);
	qiao_b64_32(k->curve_sk, csk);

	char *buf = sodium_malloc(KEYFILE_MAX);
	if (!buf)
		return QIAO_ENOMEM;
	int n = snprintf(buf, KEYFILE_MAX,
			 "# Qiao member key file. Secret: keep mode 0600, never copy it off this host.\n"
			 "# Give only the public lines to the gateway operator.\n"
			 "qiao-key-file: 1\n"
			 "member: %s\n"
			 "sign-public: %s\n"
			 "sign-secret: %s\n"
			 "curve-public: %s\n"
			 "curve-secret: %s\n",
			 k->member, spk, ssk, cpk, csk);
	sodium_memzero(ssk, sizeof ssk);
	sodium_memzero(csk, sizeof csk);
	int rc = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = errno == EEXIST ? QIAO_EEXIST : -errno;
		goto out;
	}
	for (int off = 0; off < n;) {
		ssize_t w = write(fd, buf + off, (size_t)(n - off));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		off += (int)w;
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	close(fd);
	if (rc != 0)
		unlink(path);
out:
	sodium_free(buf);
	return rc;
}

static void s_why(char *why, size_t whylen, const char *msg, const char *path, int line)
{
	if (why && whylen)
		snprintf(why, whylen, "%s: line %d: %s", path, line, msg);
}

int qiao_keys_load(const char *path, qiao_keys_t **out, char *why, size_t whylen)
{
	*out = NULL;
	if (why && whylen)
		why[0] = '\0';
	if (qiao_crypto_init())
		return QIAO_ECRYPTO;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		if (why && whylen)
			snprintf(why, whylen, "%s: %s", path, strerror(-e));
		return e;
	}
	struct stat sb;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		if (why && whylen)
			snprintf(why, whylen, "%s: not a regular file", path);
		return QIAO_EKEYFILE;
	}
	if (sb.st_mode & 077) {
		close(fd);
		if (why && whylen)
			snprintf(why, whylen, "%s: mode %03o lets others read the secret keys; run chmod 600 %s",
				 path, (unsigned)(sb.st_mode & 0777), path);
		return QIAO_EKEYPERM;
	}
	char *buf = sodium_malloc(KEYFILE_MAX + 1);
	uint8_t *seed = sodium_malloc(32);
	if (!buf || !seed) {
		close(fd);
		sodium_free(buf);
		sodium_free(seed);
		return QIAO_ENOMEM;
	}
	size_t len = 0;
	int rc = 0;
	for (;;) {
		ssize_t r = read(fd, buf + len, KEYFILE_MAX + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			break;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > KEYFILE_MAX) {
			rc = QIAO_EKEYFILE;
			if (why && whylen)
				snprintf(why, whylen, "%s: larger than %d bytes", path, KEYFILE_MAX);
			break;
		}
	}
	close(fd);
	buf[len < KEYFILE_MAX ? len : KEYFILE_MAX] = '\0';

	char member[QIAO_MEMBER_MAX] = "";
	uint8_t spk[32], cpk[32], csk[32];
	unsigned have = 0; /* bit per field */
	int line = 0;
	char *save = NULL;
	for (char *ln = rc ? NULL : strtok_r(buf, "\n", &save); ln && rc == 0;
	     ln = strtok_r(NULL, "\n", &save)) {
		line++;
		size_t l = strlen(ln);
		if (l && ln[l - 1] == '\r')
			ln[--l] = '\0';
		if (l == 0 || ln[0] == '#')
			continue;
		char *colon = strchr(ln, ':');
		if (!colon) {
			rc = QIAO_EKEYFILE;
			s_why(why, whylen, "expected 'name: value'", path, line);
			break;
		}
		*colon = '\0';
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		const char *name = ln;
		if (strcmp(name, "qiao-key-file") == 0) {
			if (strcmp(v, "1") != 0) {
				rc = QIAO_EKEYFILE;
				s_why(why, whylen, "unsupported key file version", path, line);
			}
			have |= 1;
		} else if (strcmp(name, "member") == 0) {
			if (strlen(v) >= sizeof member) {
				rc = QIAO_EKEYFILE;
				s_why(why, whylen, "member id too long", path, line);
			} else {
				snprintf(member, sizeof member, "%s", v);
				have |= 2;
			}
		} else if (strcmp(name, "sign-public") == 0) {
			rc = qiao_b64_decode_exact(v, spk, 32);
			have |= 4;
		} else if (strcmp(name, "sign-secret") == 0) {
			rc = qiao_b64_decode_exact(v, seed, 32);
			have |= 8;
		} else if (strcmp(name, "curve-public") == 0) {
			rc = qiao_b64_decode_exact(v, cpk, 32);
			have |= 16;
		} else if (strcmp(name, "curve-secret") == 0) {
			rc = qiao_b64_decode_exact(v, csk, 32);
			have |= 32;
		} else {
			rc = QIAO_EKEYFILE;
			s_why(why, whylen, "unknown field", path, line);
		}
		if (rc && why && whylen && !why[0])
			s_why(why, whylen, "value is not base64 of 32 bytes", path, line);
	}
	sodium_free(buf);
	if (rc == 0 && have != 63) {
		rc = QIAO_EKEYFILE;
		if (why && whylen)
			snprintf(why, whylen, "%s: missing field(s); need qiao-key-file, member, "
				 "sign-public, sign-secret, curve-public, curve-secret", path);
	}
	qiao_keys_t *k = NULL;
	if (rc == 0) {
		k = s_alloc(member);
		if (!k)
			rc = QIAO_ENOMEM;
	}
	if (rc == 0) {
		crypto_sign_seed_keypair(k->sign_pk, k->sign_sk, seed);
		memcpy(k->curve_sk, csk, 32);
		crypto_scalarmult_base(k->curve_pk, k->curve_sk);
		if (sodium_memcmp(k->sign_pk, spk, 32) != 0) {
			rc = QIAO_EKEYFILE;
			if (why && whylen)
				snprintf(why, whylen, "%s: sign-public does not match sign-secret", path);
		} else if (sodium_memcmp(k->curve_pk, cpk, 32) != 0) {
			rc = QIAO_EKEYFILE;
			if (why && whylen)
				snprintf(why, whylen, "%s: curve-public does not match curve-secret", path);
		}
	}
	sodium_free(seed);
	sodium_memzero(csk, sizeof csk);
	if (rc) {
		qiao_keys_destroy(&k);
		return rc;
	}
	*out = k;
	return 0;
}
