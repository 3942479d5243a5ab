/*
 * The declared seccomp policy, as data.  This table is the single source of
 * the filter built by seccomp.c and of the expected results of the syscall
 * tests.  It is an allowlist: anything not named here gets ENOSYS (so libc
 * and CPython fall back gracefully on syscalls added by future kernels).
 * Calls that are known and dangerous are named with EPERM so a denial is
 * distinguishable from "unknown" in tests and in user tracebacks.
 *
 * What CPython with numpy, pandas and matplotlib, threads, multiprocessing
 * and subprocess needs is allowed; everything that widens the kernel attack
 * surface or crosses the sandbox boundary is denied (../shared threat model
 * rows A-C).
 */
#include "internal.h"

#include <errno.h>

#define A(n) { #n, SC_ALLOW, 0, 0 }
#define D(n, e) { #n, SC_ERRNO, e, 0 }
#define P(n, e) { #n, SC_ARGS, e, 0 }
/* Allowed, except in reduced mode: there the code works on the host's own
 * filesystem, and Landlock has no right for metadata changes, so chmod,
 * chown and utime on the caller's files are refused here instead. */
#define AR(n) { #n, SC_ALLOW, 0, EPERM }

const struct sc_policy_entry sc_policy[] = {
	/* File I/O.  Paths are confined by the mount namespace and Landlock. */
	A(read), A(write), A(open), A(openat), A(openat2), A(close), A(close_range),
	A(stat), A(fstat), A(lstat), A(newfstatat), A(statx), A(lseek),
	A(pread64), A(pwrite64), A(readv), A(writev), A(preadv), A(pwritev),
	A(preadv2), A(pwritev2), A(access), A(faccessat), A(faccessat2),
	A(pipe), A(pipe2), A(dup), A(dup2), A(dup3), A(flock),
	A(fsync), A(fdatasync), A(sync_file_range), A(truncate), A(ftruncate),
	A(fallocate), A(fadvise64), A(readahead), A(getdents), A(getdents64),
	A(getcwd), A(chdir), A(fchdir), A(rename), A(renameat), A(renameat2),
	A(mkdir), A(mkdirat), A(rmdir), A(creat), A(link), A(linkat),
	A(unlink), A(unlinkat), A(symlink), A(symlinkat), A(readlink),
	A(readlinkat), AR(chmod), AR(fchmod), AR(fchmodat), AR(chown), AR(fchown),
	AR(lchown), AR(fchownat), A(umask), AR(utime), AR(utimes), AR(utimensat),
	AR(futimesat), A(statfs), A(fstatfs), A(sendfile), A(copy_file_range),
	A(splice), A(tee), A(getxattr), A(lgetxattr), A(fgetxattr),
	A(listxattr), A(llistxattr), A(flistxattr), A(inotify_init),
	A(inotify_init1), A(inotify_add_watch), A(inotify_rm_watch),
	/* Memory. */
	A(mmap), A(mprotect), A(munmap), A(brk), A(mremap), A(msync),
	A(mincore), A(madvise), A(membarrier),
	/* Polling, time, signals. */
	A(poll), A(ppoll), A(select), A(pselect6), A(epoll_create),
	A(epoll_create1), A(epoll_ctl), A(epoll_wait), A(epoll_pwait),
	A(epoll_pwait2), A(eventfd), A(eventfd2), A(signalfd), A(signalfd4),
	A(timerfd_create), A(timerfd_settime), A(timerfd_gettime),
	A(nanosleep), A(clock_nanosleep), A(clock_gettime), A(clock_getres),
	A(gettimeofday), A(time), A(getitimer), A(setitimer), A(alarm),
	A(timer_create), A(timer_settime), A(timer_gettime),
	A(timer_getoverrun), A(timer_delete), A(pause), A(rt_sigaction),
	A(rt_sigprocmask), A(rt_sigreturn), A(rt_sigpending),
	A(rt_sigtimedwait), A(rt_sigqueueinfo), A(rt_tgsigqueueinfo),
	A(rt_sigsuspend), A(sigaltstack), A(restart_syscall),
	/* Processes and threads.  Signals reach only this pid namespace. */
	A(fork), A(vfork), A(execve), A(exit), A(exit_group), A(wait4),
	A(waitid), A(kill), A(tkill), A(tgkill), A(getpid), A(getppid),
	A(gettid), A(getuid), A(getgid), A(geteuid), A(getegid), A(getresuid),
	A(getresgid), A(getgroups), A(getpgrp), A(getpgid), A(setpgid),
	A(getsid), A(setsid), A(capget), A(set_tid_address), A(set_robust_list),
	A(get_robust_list), A(futex_waitv), A(rseq), A(arch_prctl),
	A(sched_yield), A(sched_getaffinity), A(sched_setaffinity),
	A(sched_getparam), A(sched_setparam), A(sched_getscheduler),
	A(sched_setscheduler), A(sched_get_priority_max),
	A(sched_get_priority_min), A(sched_rr_get_interval), A(getpriority),
	A(setpriority), A(getcpu), A(getrlimit), A(setrlimit),
	A(getrusage), A(times), A(sysinfo), A(uname), A(getrandom),
	A(pidfd_open), A(pidfd_send_signal),
	/* Local sockets only (socket/socketpair are argument-filtered). */
	A(connect), A(accept), A(accept4), A(bind), A(listen), A(shutdown),
	A(sendto), A(recvfrom), A(sendmsg), A(recvmsg), A(sendmmsg),
	A(recvmmsg), A(getsockname), A(getpeername), A(setsockopt),
	A(getsockopt),
	/* Landlock can only add restrictions; nested sandboxes may use it. */
	A(landlock_create_ruleset), A(landlock_add_rule),
	A(landlock_restrict_self),

	/* Argument-filtered (predicates in seccomp.c). */
	/* A value outside an allowed set cannot be given its own errno with
	 * libseccomp (an unconditional rule would override the allows), so
	 * ioctl, prctl and personality mismatches get the default ENOSYS. */
	P(ioctl, ENOSYS),	/* fd and terminal queries only: no TIOCSTI/TIOCLINUX */
	P(socket, EAFNOSUPPORT), /* AF_UNIX only */
	P(socketpair, EAFNOSUPPORT),
	P(clone, EPERM),	/* no namespace flags */
	P(prctl, ENOSYS),	/* a short list of harmless options */
	P(personality, ENOSYS),	/* PER_LINUX and queries only */
	P(prlimit64, EPERM),	/* own limits only: not the sandbox init's */
	/* Commands that act on the file's inode on behalf of others are left
	 * out: leases and dnotify (F_SETLEASE, F_NOTIFY: they block or watch
	 * other openers of the file) and write-life hints (F_SET_RW_HINT,
	 * F_SET_FILE_RW_HINT: they change the inode).  Under --allow-reduced
	 * those inodes are the host's own; otherwise they are the run's. */
	P(fcntl, ENOSYS),
	/* No requeue: FUTEX_REQUEUE and FUTEX_CMP_REQUEUE(_PI) move the
	 * waiters of one futex word to another, and a word in a page of a
	 * host file is shared with every host process and run that maps it:
	 * they could be moved to a word of this run's memory that only it
	 * can wake.  glibc (since 2.25) and CPython never requeue. */
	P(futex, ENOSYS),

	/* clone3 passes its flags in memory that seccomp cannot read; ENOSYS
	 * makes glibc fall back to clone, whose flags are checked. */
	D(clone3, ENOSYS),

	/* Denied: privilege, namespaces and mounts. */
	D(unshare, EPERM), D(setns, EPERM), D(mount, EPERM), D(umount2, EPERM),
	D(pivot_root, EPERM), D(chroot, EPERM), D(fsopen, EPERM),
	D(fsconfig, EPERM), D(fsmount, EPERM), D(fspick, EPERM),
	D(open_tree, EPERM), D(move_mount, EPERM), D(mount_setattr, EPERM),
	D(setuid, EPERM), D(setgid, EPERM), D(setreuid, EPERM),
	D(setregid, EPERM), D(setresuid, EPERM), D(setresgid, EPERM),
	D(setfsuid, EPERM), D(setfsgid, EPERM), D(setgroups, EPERM),
	D(capset, EPERM), D(name_to_handle_at, EPERM),
	D(open_by_handle_at, EPERM), D(mknod, EPERM), D(mknodat, EPERM),
	/* Denied: second syscall paths and kernel attack surface. */
	D(ptrace, EPERM), D(process_vm_readv, EPERM),
	D(process_vm_writev, EPERM), D(pidfd_getfd, EPERM), D(kcmp, EPERM),
	D(bpf, EPERM), D(io_uring_setup, EPERM), D(io_uring_enter, EPERM),
	D(io_uring_register, EPERM), D(userfaultfd, EPERM),
	D(perf_event_open, EPERM), D(keyctl, EPERM), D(add_key, EPERM),
	D(request_key, EPERM), D(seccomp, EPERM), D(memfd_create, EPERM),
	D(memfd_secret, EPERM), D(execveat, EPERM), D(vmsplice, EPERM),
	D(fanotify_init, EPERM), D(fanotify_mark, EPERM),
	D(process_madvise, EPERM), D(move_pages, EPERM),
	D(migrate_pages, EPERM), D(mbind, EPERM), D(set_mempolicy, EPERM),
	D(get_mempolicy, EPERM), D(mlock, EPERM), D(mlock2, EPERM),
	D(mlockall, EPERM), D(munlock, EPERM), D(munlockall, EPERM),
	D(modify_ldt, EPERM), D(set_thread_area, EPERM), D(iopl, EPERM),
	D(ioperm, EPERM), D(lookup_dcookie, EPERM), D(uselib, EPERM),
	D(ustat, EPERM), D(sysfs, EPERM), D(_sysctl, EPERM),
	/* Denied: host administration. */
	D(init_module, EPERM), D(finit_module, EPERM),
	D(delete_module, EPERM), D(kexec_load, EPERM),
	D(kexec_file_load, EPERM), D(reboot, EPERM), D(swapon, EPERM),
	D(swapoff, EPERM), D(acct, EPERM), D(syslog, EPERM),
	D(quotactl, EPERM), D(quotactl_fd, EPERM), D(settimeofday, EPERM),
	D(clock_settime, EPERM), D(clock_adjtime, EPERM), D(adjtimex, EPERM),
	D(sethostname, EPERM), D(setdomainname, EPERM), D(vhangup, EPERM),
	/* Denied: writable xattrs (the collector never copies them anyway). */
	D(setxattr, EPERM), D(lsetxattr, EPERM), D(fsetxattr, EPERM),
	D(removexattr, EPERM), D(lremovexattr, EPERM),
	D(fremovexattr, EPERM),
	/* Denied: System V and POSIX message IPC (issue: no IPC channels). */
	D(shmget, EPERM), D(shmat, EPERM), D(shmctl, EPERM), D(shmdt, EPERM),
	D(semget, EPERM), D(semop, EPERM), D(semctl, EPERM),
	D(semtimedop, EPERM), D(msgget, EPERM), D(msgsnd, EPERM),
	D(msgrcv, EPERM), D(msgctl, EPERM), D(mq_open, EPERM),
	D(mq_unlink, EPERM), D(mq_timedsend, EPERM),
	D(mq_timedreceive, EPERM), D(mq_notify, EPERM),
	D(mq_getsetattr, EPERM),
};

const size_t sc_policy_len = sizeof(sc_policy) / sizeof(sc_policy[0]);
