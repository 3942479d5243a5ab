/*
 * Capabilities layer: the setup ran with every capability of the new user
 * namespace; the code gets none.  The bounding and ambient sets are emptied
 * too, and the securebits are locked, so not even an exec of a file with
 * capabilities (which no_new_privs and nosuid already neuter) could regain
 * one.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* open/read, not stdio: this runs in a child cloned from a possibly
 * multi-threaded process, where malloc is off limits. */
static int last_cap(void)
{
	char buf[16] = "";
	int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
	int n = CAP_LAST_CAP;

	if (fd >= 0) {
		if (read(fd, buf, sizeof(buf) - 1) > 0)
			n = atoi(buf);
		close(fd);
	}
	/* Unknown future capabilities are dropped as well (up to 63). */
	return n < 63 ? 63 : n;
}

int sc_caps_drop_all(struct sandcell_error *err)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	int cap, last = last_cap();

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) < 0)
		return sc_err(err, errno, "caps: capget");
	if (!(data[0].permitted & (1u << CAP_SETPCAP))) {
		/* Reduced mode of an unprivileged caller: no capability to
		 * drop the bounding set or lock the securebits with, and none
		 * to lose.  Holding none at all is then the requirement: with
		 * no_new_privs (next step) neither setuid nor file
		 * capabilities can grant one again. */
		if (data[0].permitted | data[1].permitted | data[0].effective | data[1].effective |
		    data[0].inheritable | data[1].inheritable)
			return sc_err(err, EPERM, "caps: capabilities held without CAP_SETPCAP");
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
			return sc_err(err, errno, "caps: clearing the ambient set");
		return 0;
	}
	for (cap = 0; cap <= last; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return sc_err(err, errno, "caps: PR_CAPBSET_DROP %d", cap);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		return sc_err(err, errno, "caps: clearing the ambient set");
	if (prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_SETUID_FIXUP |
				     SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_NOROOT |
				     SECBIT_NOROOT_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
				     SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED, 0, 0, 0) < 0)
		return sc_err(err, errno, "caps: locking securebits");
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0)
		return sc_err(err, errno, "caps: capset");
	return 0;
}
