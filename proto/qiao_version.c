#include "qiao_version.h"

#define S_(x) #x
#define S(x) S_(x)

const char *qiao_version(void)
{
	return "qiao " QIAO_VERSION_STRING " (protocol " S(QIAO_PROTOCOL_VERSION) ")";
}
