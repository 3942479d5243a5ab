/*
 * Network layer: the sandbox has its own network namespace with nothing but
 * loopback, brought up so local servers in the code (e.g. multiprocessing
 * managers) work.  There is no route anywhere else.
 */
#include "internal.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int sc_net_loopback_up(struct sandcell_error *err)
{
	struct ifreq ifr;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return sc_err(err, errno, "net: socket");
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		int e = errno;
		close(fd);
		return sc_err(err, e, "net: SIOCGIFFLAGS lo");
	}
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) {
		int e = errno;
		close(fd);
		return sc_err(err, e, "net: SIOCSIFFLAGS lo");
	}
	close(fd);
	return 0;
}
