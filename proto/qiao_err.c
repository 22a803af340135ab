#define _GNU_SOURCE
#include "qiao_err.h"

#include <string.h>

struct err_row {
	int code;
	const char *name;
	const char *text;
};

static const struct err_row s_errs[] = {
	{QIAO_OK, "QIAO_OK", "success"},
	{QIAO_ENOMEM, "QIAO_ENOMEM", "out of memory"},
	{QIAO_EINVAL, "QIAO_EINVAL", "invalid argument"},
	{QIAO_EIO, "QIAO_EIO", "input/output error"},
	{QIAO_ECRYPTO, "QIAO_ECRYPTO", "crypto library could not be initialised"},
	{QIAO_ECLOSED, "QIAO_ECLOSED", "object is closed or shutting down"},
	{QIAO_EEXIST, "QIAO_EEXIST", "already exists"},
	{QIAO_ENOTFOUND, "QIAO_ENOTFOUND", "not found"},
	{QIAO_ECONFIG, "QIAO_ECONFIG", "configuration invalid"},
	{QIAO_ETOOBIG, "QIAO_ETOOBIG", "frame or field exceeds its size limit"},
	{QIAO_EFRAMES, "QIAO_EFRAMES", "wrong number of frames or unknown command"},
	{QIAO_EDECODE, "QIAO_EDECODE", "malformed message (protobuf, note, checkpoint or proof)"},
	{QIAO_EVERSION, "QIAO_EVERSION", "unsupported protocol version"},
	{QIAO_EALG, "QIAO_EALG", "unsupported signature algorithm"},
	{QIAO_EBADSIG, "QIAO_EBADSIG", "signature does not verify"},
	{QIAO_EBODYHASH, "QIAO_EBODYHASH", "body does not match the header's body hash"},
	{QIAO_EFIELD, "QIAO_EFIELD", "required header field missing or invalid"},
	{QIAO_EIDENT, "QIAO_EIDENT", "invalid identifier"},
	{QIAO_ETIME, "QIAO_ETIME", "message time outside allowed skew or deadline passed"},
	{QIAO_EREPLAY, "QIAO_EREPLAY", "message id already seen (replay)"},
	{QIAO_EKEYFILE, "QIAO_EKEYFILE", "key file malformed"},
	{QIAO_EKEYPERM, "QIAO_EKEYPERM", "key file is readable by group or others (chmod 600)"},
	{QIAO_ESTORE, "QIAO_ESTORE", "store (LMDB) error"},
	{QIAO_ESTOREFULL, "QIAO_ESTOREFULL", "store reached its maximum size"},
	{QIAO_ESTOREFORMAT, "QIAO_ESTOREFORMAT", "store was written by an incompatible format version"},
	{QIAO_ESTORECORRUPT, "QIAO_ESTORECORRUPT", "stored record is malformed"},
	{QIAO_ESTORETYPE, "QIAO_ESTORETYPE", "stored record has another type than requested"},
	{QIAO_ESTOREBUSY, "QIAO_ESTOREBUSY", "store busy (too many readers or writer queue full)"},
	{QIAO_ESTOREAGAIN, "QIAO_ESTOREAGAIN", "transaction ran out of store space; the map was grown: abort and run it again"},
	{QIAO_ESTORELIMIT, "QIAO_ESTORELIMIT", "store limit reached (too many tables or transaction too large)"},
	{QIAO_EDENIED, "QIAO_EDENIED", "no policy rule allows this call"},
	{QIAO_EBUSY, "QIAO_EBUSY", "too many requests in flight"},
	{QIAO_ETIMEOUT, "QIAO_ETIMEOUT", "provider did not answer before the deadline"},
	{QIAO_ENOSERVICE, "QIAO_ENOSERVICE", "no instance offers this service"},
	{QIAO_EUNAVAILABLE, "QIAO_EUNAVAILABLE", "provider went away with the request in flight"},
	{QIAO_EAUTH, "QIAO_EAUTH", "peer is not authenticated as the member it names"},
};

static const struct err_row *s_find(int code)
{
	for (size_t i = 0; i < sizeof s_errs / sizeof s_errs[0]; i++)
		if (s_errs[i].code == code)
			return &s_errs[i];
	return NULL;
}

const char *qiao_strerror(int code)
{
	const struct err_row *r = s_find(code);
	if (r)
		return r->text;
	if (code < 0 && code > -1000)
		return strerror(-code);
	return "unknown error";
}

const char *qiao_errname(int code)
{
	const struct err_row *r = s_find(code);
	if (r)
		return r->name;
	if (code < 0 && code > -1000) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
		const char *n = strerrorname_np(-code);
		if (n)
			return n;
#endif
		return "ERRNO";
	}
	return "UNKNOWN";
}
