/* gw_unix.c - see gw_unix.h. */
#include "gw_unix.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "qiao_err.h"

int gw_unix_listen(const char *path, const char *what, int *out, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path) {
		snprintf(err, errlen, "%s %s: path too long", what, path);
		return QIAO_EINVAL;
	}
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", what, strerror(errno));
		return -errno;
	}
	/* A socket left by a gateway that died: remove it, unless a live
	 * gateway still answers on it. */
	struct stat sb;
	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			close(fd);
			snprintf(err, errlen, "%s %s exists and is not a socket", what, path);
			return QIAO_EEXIST;
		}
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
			close(probe);
			close(fd);
			snprintf(err, errlen, "%s %s: another gateway is running on it", what, path);
			return QIAO_EEXIST;
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	mode_t old = umask(0117);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc != 0 || listen(fd, 16) != 0) {
		int e = errno;
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
		close(fd);
		return -e;
	}
	*out = fd;
	return 0;
}
