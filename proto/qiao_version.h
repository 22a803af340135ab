/* qiao_version.h - version of the Qiao build and of the wire protocol. */
#ifndef QIAO_VERSION_H
#define QIAO_VERSION_H

#define QIAO_VERSION_STRING "0.1.0"
/* The wire protocol version carried in Header.version. */
#define QIAO_PROTOCOL_VERSION 1

/* "qiao 0.1.0 (protocol 1)"; static string. */
const char *qiao_version(void);

#endif
