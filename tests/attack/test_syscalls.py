"""Attack rows A (filter, argument predicates), B (privilege, namespaces,
mounts) and C (kernel attack surface) as raw x86_64 syscalls.

One sandboxed run tries every call below through ctypes (the attacker's
native path, threat model I1) and reports the errno of each; every pytest
case asserts one entry against the declared policy (src/lib/policy.c):
EPERM for the named dangerous calls, ENOSYS for unknown/new numbers, clone3
and ioctl/prctl/personality values outside their allowed sets, EAFNOSUPPORT
for non-AF_UNIX sockets.

Where the kernel itself would answer differently (e.g. setfsuid never
returns -1, adjtimex(modes=0) only reads, reboot with a bad magic gives
EINVAL, TIOCSTI on a pipe gives ENOTTY), the declared errno proves that the
filter, not the kernel, refused the call.  A few positive controls show the
probe mechanism itself reaches the kernel.
"""
import errno

import pytest

from harness import FD0_NOT_A_PIPE, case, probe, skip_in_session

E = errno

# Helpers available to the expressions below (run inside the sandbox).
SETUP = r'''
import struct
buf = ctypes.create_string_buffer(4096)
buf2 = ctypes.create_string_buffer(4096)
ibuf = ctypes.create_string_buffer(64)
AT_FDCWD = -100
def clone_guard(r):
    # A clone that the filter let through returns 0 in a raw child: end it.
    if r[0] == 0:
        os._exit(0)
    if r[0] > 0:
        os.waitpid(r[0], 0)
    return r
def capset_all():
    hdr = ctypes.create_string_buffer(struct.pack("Ii", 0x20080522, 0), 8)
    data = ctypes.create_string_buffer(b"\xff" * 24, 24)
    return sc(126, hdr, data)
def clone3(flags):
    args = ctypes.create_string_buffer(88)
    struct.pack_into("QQQQQ", args, 0, flags, 0, 0, 0, 17)
    return clone_guard(sc(435, args, 88))
def handle_buf():
    h = ctypes.create_string_buffer(8 + 128)
    struct.pack_into("Ii", h, 0, 128, 0)
    return h
def pidfd_getfd():
    pfd = sc(434, 1, 0)
    if pfd[0] < 0:
        return pfd
    r = sc(438, pfd[0], 0, 0)
    os.close(pfd[0])
    return r
def ok_fd(r):
    # positive control: the call succeeded and returned an fd
    if r[0] >= 0:
        os.close(r[0])
        return (0, 0)
    return r
def perf_attr():
    a = ctypes.create_string_buffer(128)
    struct.pack_into("IIQ", a, 0, 1, 128, 0)  # PERF_TYPE_SOFTWARE, size, SW_CPU_CLOCK
    return a
def bpf_map_attr():
    a = ctypes.create_string_buffer(72)
    struct.pack_into("IIII", a, 0, 2, 4, 4, 1)  # BPF_MAP_TYPE_ARRAY, key 4, value 4, 1 entry
    return a
def bpf_prog_attr():
    insns = ctypes.create_string_buffer(struct.pack("BBhI", 0xb7, 0, 0, 0) + struct.pack("BBhI", 0x95, 0, 0, 0))
    lic = ctypes.create_string_buffer(b"GPL")
    a = ctypes.create_string_buffer(128)
    struct.pack_into("IIQQ", a, 0, 1, 2, ctypes.addressof(insns), ctypes.addressof(lic))
    return a, insns, lic
def uring_params():
    return ctypes.create_string_buffer(120)
def ts_now():
    return ctypes.create_string_buffer(struct.pack("qq", 1, 0))
def iovec():
    return ctypes.create_string_buffer(struct.pack("QQ", ctypes.addressof(buf), 16))
'''

# (guarantee, name, expression evaluated in the sandbox, expected errno)
# errno 0 = the call must succeed (positive control).
CASES = [
    # --- A: argument predicates checked on all 64 bits ---------------------
    ("G4", "ioctl-TIOCSTI-stdin", "sc(16, 0, 0x5412, b'x')", E.ENOSYS),
    ("G4", "ioctl-TIOCSTI-stdout", "sc(16, 1, 0x5412, b'x')", E.ENOSYS),
    ("G4", "ioctl-TIOCSTI-hi32-garbage-CVE-2019-10063", "sc(16, 0, 0x5412 | (1 << 32), b'x')", E.ENOSYS),
    ("G4", "ioctl-TIOCLINUX", "sc(16, 0, 0x541C, buf)", E.ENOSYS),
    ("G4", "ioctl-TIOCSCTTY", "sc(16, 0, 0x540E, 1)", E.ENOSYS),
    ("G4", "ioctl-TIOCSETD", "sc(16, 0, 0x5423, ibuf)", E.ENOSYS),
    ("G4", "ioctl-TCGETS-hi32-garbage", "sc(16, 0, 0x5401 | (0xdead << 32), buf)", E.ENOSYS),
    ("G4", "ioctl-FIONREAD-hi32-garbage", "sc(16, 0, 0x541B | (1 << 63), ibuf)", E.ENOSYS),
    ("G4", "control-ioctl-TCGETS-reaches-kernel", "sc(16, 0, 0x5401, buf)", E.ENOTTY),
    ("G4", "control-ioctl-FIONREAD-allowed", "sc(16, 0, 0x541B, ibuf)", 0),
    ("G5", "socket-AF_UNIX-hi32-garbage", "sc(41, 1 | (1 << 32), 1, 0)", E.EAFNOSUPPORT),
    ("G5", "socketpair-AF_UNIX-hi32-garbage", "sc(53, 1 | (1 << 32), 1, 0, ibuf)", E.EAFNOSUPPORT),
    ("G5", "socketpair-AF_INET", "sc(53, 2, 1, 0, ibuf)", E.EAFNOSUPPORT),
    ("G5", "control-socket-AF_UNIX-allowed", "ok_fd(sc(41, 1, 1, 0))", 0),
    ("G4", "personality-READ_IMPLIES_EXEC", "sc(135, 0x0400000)", E.ENOSYS),
    ("G4", "personality-ADDR_NO_RANDOMIZE", "sc(135, 0x0040000)", E.ENOSYS),
    ("G4", "personality-PER_LINUX32", "sc(135, 0x0008)", E.ENOSYS),
    ("G4", "personality-PER_LINUX-hi32-garbage", "sc(135, 1 << 32)", E.ENOSYS),
    ("G4", "control-personality-query", "sc(135, 0xffffffff)", 0),
    ("G3", "prctl-PR_SET_NO_NEW_PRIVS-0-cannot-clear", "sc(157, 38, 0, 0, 0, 0)", E.EINVAL),
    ("G3", "prctl-PR_CAP_AMBIENT_RAISE-SYS_ADMIN", "sc(157, 47, 2, 21, 0, 0)", E.ENOSYS),
    ("G3", "prctl-PR_SET_SECUREBITS", "sc(157, 28, 0, 0, 0, 0)", E.ENOSYS),
    ("G3", "prctl-PR_SET_KEEPCAPS", "sc(157, 8, 1, 0, 0, 0)", E.ENOSYS),
    ("G6", "prctl-PR_SET_DUMPABLE", "sc(157, 4, 1, 0, 0, 0)", E.ENOSYS),
    ("G6", "prctl-PR_SET_PTRACER-any", "sc(157, 0x59616d61, 0xffffffffffffffff, 0, 0, 0)", E.ENOSYS),
    ("G4", "prctl-PR_SET_SECCOMP", "sc(157, 22, 2, buf, 0, 0)", E.ENOSYS),
    ("G4", "prctl-PR_SET_MM", "sc(157, 35, 8, 0, 0, 0)", E.ENOSYS),
    ("G4", "prctl-PR_SET_NAME-hi32-garbage", "sc(157, 15 | (1 << 32), b'x', 0, 0, 0)", E.ENOSYS),
    ("G4", "seccomp-stack-filter-NEW_LISTENER", "sc(317, 1, 8, buf)", E.EPERM),
    ("G4", "seccomp-GET_NOTIF_SIZES", "sc(317, 3, 0, buf)", E.EPERM),
    ("G4", "ptrace-TRACEME", "sc(101, 0, 0, 0, 0)", E.EPERM),
    ("G4", "clone3-plain", "clone3(0)", E.ENOSYS),
    ("G3", "clone3-CLONE_NEWUSER", "clone3(0x10000000)", E.ENOSYS),
    ("G3", "clone-CLONE_NEWUSER", "clone_guard(sc(56, 0x10000000 | 17, 0, 0, 0, 0))", E.EPERM),
    ("G3", "clone-CLONE_NEWNS", "clone_guard(sc(56, 0x00020000 | 17, 0, 0, 0, 0))", E.EPERM),
    ("G3", "clone-CLONE_NEWPID", "clone_guard(sc(56, 0x20000000 | 17, 0, 0, 0, 0))", E.EPERM),
    ("G3", "clone-CLONE_NEWNET", "clone_guard(sc(56, 0x40000000 | 17, 0, 0, 0, 0))", E.EPERM),
    ("G3", "clone-CLONE_NEWIPC", "clone_guard(sc(56, 0x08000000 | 17, 0, 0, 0, 0))", E.EPERM),
    ("G3", "clone-CLONE_NEWUTS", "clone_guard(sc(56, 0x04000000 | 17, 0, 0, 0, 0))", E.EPERM),
    ("G3", "clone-CLONE_NEWCGROUP", "clone_guard(sc(56, 0x02000000 | 17, 0, 0, 0, 0))", E.EPERM),
    ("G3", "clone-CLONE_NEWUSER-hi32-garbage",
     "clone_guard(sc(56, 0xdeadbeef00000000 | 0x10000000 | 17, 0, 0, 0, 0))", E.EPERM),
    ("G3", "clone-all-ns-flags", "clone_guard(sc(56, 0x7e020000 | 17, 0, 0, 0, 0))", E.EPERM),
    # --- A8: default deny for numbers the policy does not name ---------------
    ("G4", "nr-set_mempolicy_home_node-450", "sc(450, 0, 0, 0, 0)", E.ENOSYS),
    ("G4", "nr-cachestat-451", "sc(451, 0, 0, 0, 0)", E.ENOSYS),
    ("G4", "nr-fchmodat2-452", "sc(452, AT_FDCWD, b'/tmp', 0o777, 0)", E.ENOSYS),
    ("G4", "nr-map_shadow_stack-453", "sc(453, 0, 4096, 0)", E.ENOSYS),
    ("G4", "nr-futex_wake-454", "sc(454, 0, 0, 0, 0)", E.ENOSYS),
    ("G4", "nr-statmount-457", "sc(457, 0, 0, 0, 0)", E.ENOSYS),
    ("G4", "nr-listmount-458", "sc(458, 0, 0, 0, 0)", E.ENOSYS),
    ("G4", "nr-lsm_set_self_attr-460", "sc(460, 0, 0, 0, 0)", E.ENOSYS),
    ("G4", "nr-mseal-462", "sc(462, 0, 0, 0)", E.ENOSYS),
    ("G2", "nr-setxattrat-463-bypass-setxattr-deny", "sc(463, AT_FDCWD, b'/tmp', 0, b'user.x', 0, 0)", E.ENOSYS),
    ("G3", "nr-open_tree_attr-467", "sc(467, AT_FDCWD, b'/', 1, 0, 0)", E.ENOSYS),
    ("G2", "nr-file_setattr-469", "sc(469, AT_FDCWD, b'/tmp', 0, 0, 0)", E.ENOSYS),
    ("G4", "nr-0x3fffffff", "sc(0x3fffffff)", E.ENOSYS),
    # --- B: privilege, namespaces, mounts -----------------------------------
    ("G3", "unshare-CLONE_NEWUSER", "sc(272, 0x10000000)", E.EPERM),
    ("G3", "unshare-NEWNS-NEWNET", "sc(272, 0x00020000 | 0x40000000)", E.EPERM),
    ("G3", "unshare-CLONE_NEWTIME", "sc(272, 0x00000080)", E.EPERM),
    ("G1", "setns-bad-fd", "sc(308, 0xffffffff, 0)", E.EPERM),
    ("G3", "fsopen-tmpfs-CVE-2022-0185", "sc(430, b'tmpfs', 0)", E.EPERM),
    ("G3", "fsopen-9p", "sc(430, b'9p', 0)", E.EPERM),
    ("G3", "fsconfig", "sc(431, 0xffffffff, 1, b'\\0', b'x', 0)", E.EPERM),
    ("G3", "fsmount", "sc(432, 0xffffffff, 0, 0)", E.EPERM),
    ("G3", "fspick-root", "sc(433, AT_FDCWD, b'/', 0)", E.EPERM),
    ("G2", "open_tree-clone-recursive-root", "sc(428, AT_FDCWD, b'/', 1 | 0x8000)", E.EPERM),
    ("G2", "move_mount", "sc(429, 0xffffffff, b'', AT_FDCWD, b'/tmp', 4)", E.EPERM),
    ("G2", "mount_setattr-clear-rdonly-input", "sc(442, AT_FDCWD, b'/input', 0x8000, buf, 32)", E.EPERM),
    ("G2", "mount-remount-input-rw", "sc(165, 0, b'/input', 0, 32 | 4096, 0)", E.EPERM),
    ("G2", "mount-remount-root-rw", "sc(165, 0, b'/', 0, 32, 0)", E.EPERM),
    ("G2", "mount-tmpfs-over-tmp", "sc(165, b'tmpfs', b'/tmp', b'tmpfs', 0, 0)", E.EPERM),
    ("G2", "mount-cgroup-v1-release_agent-CVE-2022-0492", "sc(165, b'cgroup', b'/tmp', b'cgroup', 0, b'rdma')", E.EPERM),
    ("G2", "umount2-input-detach", "sc(166, b'/input', 2)", E.EPERM),
    ("G1", "umount2-proc-detach", "sc(166, b'/proc', 2)", E.EPERM),
    ("G1", "chroot-tmp", "sc(161, b'/tmp')", E.EPERM),
    ("G1", "pivot_root-dot-dot", "sc(155, b'.', b'.')", E.EPERM),
    ("G3", "setuid-0", "sc(105, 0)", E.EPERM),
    ("G3", "setgid-0", "sc(106, 0)", E.EPERM),
    ("G3", "setreuid-0", "sc(113, 0, 0)", E.EPERM),
    ("G3", "setresuid-0", "sc(117, 0, 0, 0)", E.EPERM),
    ("G3", "setresgid-0", "sc(119, 0, 0, 0)", E.EPERM),
    ("G3", "setfsuid-0-never-fails-natively", "sc(122, 0)", E.EPERM),
    ("G3", "setgroups-0", "sc(116, 1, ibuf)", E.EPERM),
    ("G3", "capset-all", "capset_all()", E.EPERM),
    ("G1", "name_to_handle_at-shocker", "sc(303, AT_FDCWD, b'/usr/bin', handle_buf(), ibuf, 0)", E.EPERM),
    ("G1", "open_by_handle_at-shocker", "sc(304, AT_FDCWD, handle_buf(), 0)", E.EPERM),
    ("G2", "mknod-char-dev", "sc(133, b'/tmp/mem', 0o20666, (1 << 8) | 1)", E.EPERM),
    ("G2", "mknodat-block-dev", "sc(259, AT_FDCWD, b'/tmp/sda', 0o60666, (8 << 8))", E.EPERM),
    # --- C: kernel attack surface -------------------------------------------
    ("G4", "io_uring_setup", "sc(425, 8, uring_params())", E.EPERM),
    ("G4", "io_uring_enter", "sc(426, 0xffffffff, 1, 0, 0, 0, 0)", E.EPERM),
    ("G4", "io_uring_register", "sc(427, 0xffffffff, 0, 0, 0)", E.EPERM),
    ("G4", "bpf-MAP_CREATE", "sc(321, 0, bpf_map_attr(), 72)", E.EPERM),
    ("G4", "bpf-PROG_LOAD-socket-filter", "sc(321, 5, bpf_prog_attr()[0], 128)", E.EPERM),
    ("G4", "perf_event_open-self", "sc(298, perf_attr(), 0, 0xffffffff, 0xffffffff, 0)", E.EPERM),
    ("G4", "perf_event_open-cpu0-all", "sc(298, perf_attr(), 0xffffffff, 0, 0xffffffff, 0)", E.EPERM),
    ("G4", "userfaultfd", "sc(323, 0o2000000)", E.EPERM),
    ("G6", "keyctl-GET_KEYRING_ID-session", "sc(250, 0, 0xfffffffffffffffd, 0)", E.EPERM),
    ("G6", "add_key-user-session", "sc(248, b'user', b'x', b'y', 1, 0xfffffffffffffffd)", E.EPERM),
    ("G6", "request_key", "sc(249, b'user', b'x', 0, 0)", E.EPERM),
    ("G6", "ptrace-ATTACH-init", "sc(101, 16, 1, 0, 0)", E.EPERM),
    ("G6", "ptrace-SEIZE-init", "sc(101, 0x4206, 1, 0, 0)", E.EPERM),
    ("G6", "ptrace-PEEKDATA-bad-pid", "sc(101, 2, 0x7fffffff, 0, 0)", E.EPERM),
    ("G6", "process_vm_readv-init", "sc(310, 1, iovec(), 1, iovec(), 1, 0)", E.EPERM),
    ("G6", "process_vm_writev-init", "sc(311, 1, iovec(), 1, iovec(), 1, 0)", E.EPERM),
    ("G6", "pidfd_getfd-init-fd3", "pidfd_getfd()", E.EPERM),
    ("G6", "control-pidfd_open-init-allowed", "ok_fd(sc(434, 1, 0))", 0),
    ("G6", "kcmp-init", "sc(312, 1, os.getpid(), 0, 0, 0)", E.EPERM),
    ("G4", "memfd_create-fileless-exec", "sc(319, b'x', 0)", E.EPERM),
    ("G4", "memfd_secret", "sc(447, 0)", E.EPERM),
    ("G4", "execveat-AT_EMPTY_PATH", "sc(322, 0xffffffff, b'', 0, 0, 0x1000)", E.EPERM),
    ("G4", "vmsplice-dirty-pipe-helper", "sc(278, 0xffffffff, iovec(), 1, 0)", E.EPERM),
    ("G4", "fanotify_init", "sc(300, 0, 0)", E.EPERM),
    ("G4", "process_madvise", "sc(440, 0xffffffff, iovec(), 1, 0, 0)", E.EPERM),
    ("G4", "move_pages", "sc(279, 0, 0, 0, 0, 0, 0)", E.EPERM),
    ("G4", "migrate_pages", "sc(256, 0, 0, 0, 0)", E.EPERM),
    ("G4", "mbind", "sc(237, 0, 0, 0, 0, 0, 0)", E.EPERM),
    ("G4", "set_mempolicy", "sc(238, 0, 0, 0)", E.EPERM),
    ("G4", "get_mempolicy", "sc(239, 0, 0, 0, 0, 0)", E.EPERM),
    ("G7", "mlock", "sc(149, ctypes.addressof(buf), 4096)", E.EPERM),
    ("G7", "mlockall", "sc(151, 3)", E.EPERM),
    ("G4", "modify_ldt-write", "sc(154, 1, buf, 16)", E.EPERM),
    ("G4", "set_thread_area", "sc(205, buf)", E.EPERM),
    ("G4", "iopl-3", "sc(172, 3)", E.EPERM),
    ("G4", "ioperm-port80", "sc(173, 0x80, 1, 1)", E.EPERM),
    ("G2", "init_module", "sc(175, buf, 16, b'')", E.EPERM),
    ("G2", "finit_module", "sc(313, 0, b'', 0)", E.EPERM),
    ("G2", "delete_module", "sc(176, b'loop', 0)", E.EPERM),
    ("G2", "kexec_load", "sc(246, 0, 0, 0, 0)", E.EPERM),
    ("G2", "kexec_file_load", "sc(320, 0xffffffff, 0xffffffff, 0, b'', 2)", E.EPERM),
    ("G2", "reboot-bad-magic", "sc(169, 0, 0, 0, 0)", E.EPERM),
    ("G2", "swapon", "sc(167, b'/tmp/swap', 0)", E.EPERM),
    ("G2", "swapoff", "sc(168, b'/tmp/swap')", E.EPERM),
    ("G2", "acct", "sc(163, b'/tmp/acct')", E.EPERM),
    ("G6", "syslog-READ_ALL", "sc(103, 3, buf, 4096)", E.EPERM),
    ("G6", "syslog-SIZE_BUFFER", "sc(103, 10, 0, 0)", E.EPERM),
    ("G2", "quotactl", "sc(179, 0, b'/tmp', 0, 0)", E.EPERM),
    ("G2", "settimeofday", "sc(164, ts_now(), 0)", E.EPERM),
    ("G2", "clock_settime-REALTIME", "sc(227, 0, ts_now())", E.EPERM),
    ("G2", "clock_adjtime", "sc(305, 0, buf)", E.EPERM),
    ("G2", "adjtimex-read-only-mode", "sc(159, buf)", E.EPERM),
    ("G2", "sethostname", "sc(170, b'evil', 4)", E.EPERM),
    ("G2", "setdomainname", "sc(171, b'evil', 4)", E.EPERM),
    ("G5", "vhangup", "sc(153)", E.EPERM),
    ("G4", "lookup_dcookie", "sc(212, 0, buf, 64)", E.EPERM),
    ("G4", "uselib", "sc(134, b'/usr/lib/x86_64-linux-gnu/libc.so.6')", E.EPERM),
    ("G4", "ustat", "sc(136, 0, buf)", E.EPERM),
    ("G4", "sysfs", "sc(139, 3)", E.EPERM),
    ("G4", "_sysctl", "sc(156, buf)", E.EPERM),
    ("G2", "setxattr-user", "sc(188, b'/tmp', b'user.x', b'v', 1, 0)", E.EPERM),
    ("G3", "setxattr-security.capability", "sc(188, b'/tmp', b'security.capability', buf, 20, 0)", E.EPERM),
    ("G2", "lsetxattr", "sc(189, b'/tmp', b'user.x', b'v', 1, 0)", E.EPERM),
    ("G2", "fsetxattr", "sc(190, 0, b'user.x', b'v', 1, 0)", E.EPERM),
    ("G2", "removexattr", "sc(197, b'/tmp', b'user.x')", E.EPERM),
    # --- F4: System V and POSIX IPC -------------------------------------------
    ("G5", "shmget-private", "sc(29, 0, 4096, 0o1600)", E.EPERM),
    ("G5", "shmget-host-key", "sc(29, 0x1234, 0, 0)", E.EPERM),
    ("G5", "shmat", "sc(30, 0, 0, 0)", E.EPERM),
    ("G5", "shmctl-IPC_INFO", "sc(31, 0, 3, buf)", E.EPERM),
    ("G5", "semget", "sc(64, 0x1234, 1, 0o1600)", E.EPERM),
    ("G5", "semctl", "sc(66, 0, 0, 3, buf)", E.EPERM),
    ("G5", "msgget", "sc(68, 0x1234, 0o1600)", E.EPERM),
    ("G5", "msgsnd", "sc(69, 0, buf, 8, 0)", E.EPERM),
    ("G5", "mq_open-create", "sc(240, b'hostq', 0o102, 0o600, 0)", E.EPERM),
    ("G5", "mq_unlink", "sc(241, b'hostq')", E.EPERM),
]

CODE = SETUP + r'''
CASES = %s
res = {}
for gid, name, expr, _ in CASES:
    try:
        r = eval(expr)
        res[name] = err_of(r) if isinstance(r, tuple) else r
    except Exception as e:
        res[name] = "exception: %%r" %% (e,)
# A8: every number from just past the policy's table to 1023
bad = {}
for n in range(450, 1024):
    e = err_of(sc(n, 0, 0, 0, 0, 0, 0))
    if e != errno.ENOSYS:
        bad[n] = e
res["range-450-1023"] = bad
bad = {}
# The unassigned gap of the x86_64 table.  335 (uretprobe, 6.11) and 336
# (uprobe, 6.18) are passed through seccomp by the kernel itself and are
# covered in test_abi.py.
for n in range(337, 424):
    e = err_of(sc(n, 0, 0, 0, 0, 0, 0))
    if e != errno.ENOSYS:
        bad[n] = e
res["range-337-423-unassigned"] = bad
emit(res)
''' % (repr([tuple(c) for c in CASES]),)


# Controls that need fd 0 to be a pipe (as a run's stdin is).
FD0_CASES = ("control-ioctl-TCGETS-reaches-kernel", "control-ioctl-FIONREAD-allowed")


@pytest.fixture(scope="module")
def results():
    r, res = probe(CODE)
    assert r.status == "ok", r
    return res


@pytest.mark.parametrize("name,expected", [case(g, n, n, e, marks=skip_in_session(FD0_NOT_A_PIPE) if n in FD0_CASES else ())
                                           for g, n, _, e in CASES])
def test_syscall_verdict(host_postconditions, results, name, expected):
    got = results[name]
    assert got == expected, "%s: got %s, declared %s" % (
        name, errno.errorcode.get(got, got), errno.errorcode.get(expected, expected))


@pytest.mark.parametrize("key", [
    case("G4", "nr-450-1023-all-ENOSYS", "range-450-1023"),
    case("G4", "nr-337-423-unassigned-all-ENOSYS", "range-337-423-unassigned"),
])
def test_syscall_number_ranges(host_postconditions, results, key):
    """A8: default deny covers syscalls added by future kernels."""
    assert results[key] == {}, "numbers that did not return ENOSYS: %r" % (results[key],)
