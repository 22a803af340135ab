/*
 * qiao_err.h - the one error space of Qiao.
 *
 * Every Qiao function that can fail returns 0 on success or a negative code.
 * A code is either a negated errno value (-ENOENT, ...) passed through from
 * the C library, or one of the QIAO_E* codes below, which live in a reserved
 * range (-1000 .. -1999) so the two never collide.  qiao_strerror() names
 * every code.
 *
 * This header depends on nothing, so every folder (proto/, store/, gateway/,
 * adapters/) may include it.
 */
#ifndef QIAO_ERR_H
#define QIAO_ERR_H

enum qiao_err {
	QIAO_OK = 0,

	/* generic */
	QIAO_ENOMEM = -1001,      /* out of memory */
	QIAO_EINVAL = -1002,      /* invalid argument (a caller's bug or bad flag) */
	QIAO_EIO = -1003,         /* input/output error */
	QIAO_ECRYPTO = -1004,     /* the crypto library could not be initialised */
	QIAO_ECLOSED = -1005,     /* the object was closed or is shutting down */
	QIAO_EEXIST = -1006,      /* already exists */
	QIAO_ENOTFOUND = -1007,   /* not found (or expired) */
	QIAO_ECONFIG = -1008,     /* configuration file invalid */

	/* wire: framing, decoding, validation */
	QIAO_ETOOBIG = -1100,     /* a frame or field exceeds its size limit */
	QIAO_EFRAMES = -1101,     /* wrong number of frames or bad command frame */
	QIAO_EDECODE = -1102,     /* bytes are not a valid message (protobuf, signed note, proof) */
	QIAO_EVERSION = -1103,    /* unsupported protocol version */
	QIAO_EALG = -1104,        /* unsupported signature algorithm */
	QIAO_EBADSIG = -1105,     /* signature does not verify */
	QIAO_EBODYHASH = -1106,   /* body does not match the hash in the header */
	QIAO_EFIELD = -1107,      /* a required header field is missing or invalid */
	QIAO_EIDENT = -1108,      /* an identifier is invalid */
	QIAO_ETIME = -1109,       /* time outside the allowed skew, or deadline passed */
	QIAO_EREPLAY = -1110,     /* message id seen before */

	/* keys */
	QIAO_EKEYFILE = -1200,    /* key file malformed */
	QIAO_EKEYPERM = -1201,    /* key file readable by group or others */

	/* store */
	QIAO_ESTORE = -1300,      /* LMDB reported an unexpected error */
	QIAO_ESTOREFULL = -1301,  /* store reached its maximum size */
	QIAO_ESTOREFORMAT = -1302,/* store written by an incompatible format version */
	QIAO_ESTORECORRUPT = -1303,/* a stored record is malformed */
	QIAO_ESTORETYPE = -1304,  /* stored record has another type than asked for */
	QIAO_ESTOREBUSY = -1305,  /* too many readers or writer queue full */
	QIAO_ESTOREAGAIN = -1306, /* txn ran out of map space; map grown: abort and re-run it */
	QIAO_ESTORELIMIT = -1307, /* a store limit was reached (tables, transaction size) */

	/* exchange (gateway) */
	QIAO_EDENIED = -1400,     /* no policy rule allows this call */
	QIAO_EBUSY = -1401,       /* too many requests in flight */
	QIAO_ETIMEOUT = -1402,    /* the provider did not answer before the deadline */
	QIAO_ENOSERVICE = -1403,  /* no instance offers this service */
	QIAO_EUNAVAILABLE = -1404,/* provider went away with the request in flight */
	QIAO_EAUTH = -1405,       /* peer not authenticated as the header's member */
};

/*
 * qiao_strerror - a human-readable name for any code returned by Qiao.
 * The returned string is static and must not be freed.  Unknown codes
 * yield "unknown error".
 */
const char *qiao_strerror(int code);

/*
 * qiao_errname - the symbolic name ("QIAO_EBADSIG", "ENOENT") of a code,
 * for logs and JSON output.  Static string.
 */
const char *qiao_errname(int code);

#endif
