/*
 * gw_unix.h - the gateway's local control sockets (the admin socket, the
 * workflow engine's case socket).
 */
#ifndef GW_UNIX_H
#define GW_UNIX_H

#include <stddef.h>

/*
 * Listen on the unix stream socket `path` (mode 0660, non-blocking).  A
 * socket left by a gateway that died is removed, unless a live one still
 * answers on it.  `what` names the setting in errors ("admin_socket").
 * 0 and *fd, or an error with err set.
 */
int gw_unix_listen(const char *path, const char *what, int *fd, char *err, size_t errlen);

#endif
