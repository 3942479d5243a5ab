/*
 * seccomp layer.  The filter is compiled with libseccomp in the supervisor
 * before the clone, so the child only installs a ready BPF program: no
 * library code or allocation runs between the final setup step and exec.
 *
 * Foreign ABIs (i386 via int 0x80, x32 via bit 30) kill the process: only the
 * native arch is added, and libseccomp's arch check routes everything else to
 * the bad-arch action.  Arguments are compared on all 64 bits, so garbage in
 * the upper half (CVE-2019-10063 style TIOCSTI|1<<32) never matches an allow.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

/* Namespace-creating clone flags: any of them set is denied. */
#define SC_CLONE_NS_MASK                                                        \
	((uint64_t)(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | \
		    CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET))

/* ioctls that CPython, numpy and friends use to query fds and terminals.
 * TIOCSTI and TIOCLINUX (terminal injection) are absent on purpose. */
static const uint64_t sc_ioctl_allow[] = {
	TCGETS, TIOCGWINSZ, TIOCGPGRP, FIONREAD, FIONBIO, FIOCLEX, FIONCLEX,
	FIOASYNC,
};

/* prctl options with no effect outside the calling process. */
static const uint64_t sc_prctl_allow[] = {
	PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_GET_KEEPCAPS,
	PR_SET_NAME, PR_GET_NAME, PR_GET_SECCOMP, PR_CAPBSET_READ,
	PR_GET_TIMERSLACK, PR_SET_TIMERSLACK, PR_GET_NO_NEW_PRIVS,
	PR_SET_NO_NEW_PRIVS, PR_GET_TID_ADDRESS, PR_GET_THP_DISABLE,
};

/* fcntl commands (arg 1).  Absent on purpose: F_SETLEASE/F_GETLEASE,
 * F_NOTIFY, F_SET_RW_HINT, F_SET_FILE_RW_HINT, and the seals (memfd is
 * denied, so no file here can take one). */
static const uint64_t sc_fcntl_allow[] = {
	F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_GETLK, F_SETLK, F_SETLKW,
	F_SETOWN, F_GETOWN, F_SETSIG, F_GETSIG, F_SETOWN_EX, F_GETOWN_EX,
	F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW, F_DUPFD_CLOEXEC, F_SETPIPE_SZ,
	F_GETPIPE_SZ,
};

/* futex operations (arg 1): every command but the requeues, each with and
 * without FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME (the kernel itself
 * refuses the combinations it does not support). */
#define SC_FUTEX_OPS(cmd) (cmd), (cmd) | 128, (cmd) | 256, (cmd) | 384
static const uint64_t sc_futex_allow[] = {
	SC_FUTEX_OPS(0),  /* FUTEX_WAIT */
	SC_FUTEX_OPS(1),  /* FUTEX_WAKE */
	SC_FUTEX_OPS(5),  /* FUTEX_WAKE_OP */
	SC_FUTEX_OPS(6),  /* FUTEX_LOCK_PI */
	SC_FUTEX_OPS(7),  /* FUTEX_UNLOCK_PI */
	SC_FUTEX_OPS(8),  /* FUTEX_TRYLOCK_PI */
	SC_FUTEX_OPS(9),  /* FUTEX_WAIT_BITSET */
	SC_FUTEX_OPS(10), /* FUTEX_WAKE_BITSET */
	SC_FUTEX_OPS(13), /* FUTEX_LOCK_PI2 */
};

/* All four fields spelled out: libseccomp's SCMP_A*_64 macros leave
 * datum_b implicit, which clang's -Wmissing-field-initializers rejects. */
static struct scmp_arg_cmp cmp(unsigned arg, enum scmp_compare op, uint64_t a, uint64_t b)
{
	struct scmp_arg_cmp c = { arg, op, a, b };
	return c;
}

static int rule(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned n,
		const struct scmp_arg_cmp *cmp, const char *name,
		struct sandcell_error *err)
{
	int rc = seccomp_rule_add_exact_array(ctx, action, nr, n, cmp);
	if (rc < 0)
		return sc_err(err, -rc, "seccomp rule for %s", name);
	return 0;
}

static int add_arg_rules(scmp_filter_ctx ctx, const struct sc_policy_entry *e,
			 int nr, struct sandcell_error *err)
{
	struct scmp_arg_cmp c;
	size_t i;

	if (strcmp(e->name, "ioctl") == 0) {
		for (i = 0; i < sizeof(sc_ioctl_allow) / sizeof(sc_ioctl_allow[0]); i++) {
			c = cmp(1, SCMP_CMP_EQ, sc_ioctl_allow[i], 0);
			if (rule(ctx, SCMP_ACT_ALLOW, nr, 1, &c, e->name, err) < 0)
				return -1;
		}
	} else if (strcmp(e->name, "socket") == 0 || strcmp(e->name, "socketpair") == 0) {
		c = cmp(0, SCMP_CMP_EQ, AF_UNIX, 0);
		if (rule(ctx, SCMP_ACT_ALLOW, nr, 1, &c, e->name, err) < 0)
			return -1;
		c = cmp(0, SCMP_CMP_NE, AF_UNIX, 0);
		return rule(ctx, SCMP_ACT_ERRNO((uint32_t)e->err), nr, 1, &c, e->name, err);
	} else if (strcmp(e->name, "prlimit64") == 0) {
		/* pid 0 (self) only: the code shares a uid with the sandbox
		 * init, and must not lower or read other processes' limits. */
		c = cmp(0, SCMP_CMP_EQ, 0, 0);
		if (rule(ctx, SCMP_ACT_ALLOW, nr, 1, &c, e->name, err) < 0)
			return -1;
		c = cmp(0, SCMP_CMP_NE, 0, 0);
		return rule(ctx, SCMP_ACT_ERRNO((uint32_t)e->err), nr, 1, &c, e->name, err);
	} else if (strcmp(e->name, "clone") == 0) {
		/* Legacy clone reads only the low 32 flag bits; one deny rule
		 * per namespace bit, the rest allowed. */
		for (i = 0; i < 64; i++) {
			uint64_t bit = (uint64_t)1 << i;
			if (!(SC_CLONE_NS_MASK & bit))
				continue;
			c = cmp(0, SCMP_CMP_MASKED_EQ, bit, bit);
			if (rule(ctx, SCMP_ACT_ERRNO((uint32_t)e->err), nr, 1, &c, e->name, err) < 0)
				return -1;
		}
		c = cmp(0, SCMP_CMP_MASKED_EQ, SC_CLONE_NS_MASK, 0);
		return rule(ctx, SCMP_ACT_ALLOW, nr, 1, &c, e->name, err);
	} else if (strcmp(e->name, "fcntl") == 0 || strcmp(e->name, "futex") == 0) {
		const uint64_t *v = e->name[1] == 'c' ? sc_fcntl_allow : sc_futex_allow;
		size_t n = e->name[1] == 'c' ? sizeof(sc_fcntl_allow) / sizeof(sc_fcntl_allow[0])
					     : sizeof(sc_futex_allow) / sizeof(sc_futex_allow[0]);
		for (i = 0; i < n; i++) {
			c = cmp(1, SCMP_CMP_EQ, v[i], 0);
			if (rule(ctx, SCMP_ACT_ALLOW, nr, 1, &c, e->name, err) < 0)
				return -1;
		}
	} else if (strcmp(e->name, "prctl") == 0) {
		for (i = 0; i < sizeof(sc_prctl_allow) / sizeof(sc_prctl_allow[0]); i++) {
			c = cmp(0, SCMP_CMP_EQ, sc_prctl_allow[i], 0);
			if (rule(ctx, SCMP_ACT_ALLOW, nr, 1, &c, e->name, err) < 0)
				return -1;
		}
	} else if (strcmp(e->name, "personality") == 0) {
		/* PER_LINUX, and 0xffffffff which only queries. */
		c = cmp(0, SCMP_CMP_EQ, 0, 0);
		if (rule(ctx, SCMP_ACT_ALLOW, nr, 1, &c, e->name, err) < 0)
			return -1;
		c = cmp(0, SCMP_CMP_EQ, 0xffffffffu, 0);
		if (rule(ctx, SCMP_ACT_ALLOW, nr, 1, &c, e->name, err) < 0)
			return -1;
	} else {
		return sc_err(err, EINVAL, "policy: no argument predicate for %s", e->name);
	}
	/* Values outside the allowed sets fall to the default action. */
	return 0;
}

static int compile(struct sc_bpf *out, bool reduced, struct sandcell_error *err);

#ifndef SANDCELL_TEST_HOOKS
static int copy_program(struct sc_bpf *out, const void *insns, size_t len, struct sandcell_error *err)
{
	out->insns = malloc(len * sizeof(struct sock_filter));
	out->len = len;
	if (out->insns == NULL)
		return sc_err(err, ENOMEM, "seccomp");
	memcpy(out->insns, insns, len * sizeof(struct sock_filter));
	return 0;
}
#endif

int sc_seccomp_compile_fresh(struct sc_bpf *out, bool reduced, struct sandcell_error *err)
{
	return compile(out, reduced, err);
}

/* The policy is fixed, so the program is generated once at build time by
 * the same libseccomp (tools/gen-bpf.c; a unit test keeps it equal to a
 * fresh compilation).  Without it each process compiles once per mode
 * (about 2 ms) and hands out copies.  Test builds (hooks change the
 * program per run) always compile. */
int sc_seccomp_compile(struct sc_bpf *out, bool reduced, struct sandcell_error *err)
{
#ifdef SANDCELL_TEST_HOOKS
	return compile(out, reduced, err);
#else
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static struct sc_bpf cache[2];
	struct sc_bpf *c = &cache[reduced];
	int rc = 0;

	if (sc_bpf_prebuilt[reduced].len > 0)
		return copy_program(out, sc_bpf_prebuilt[reduced].insns, sc_bpf_prebuilt[reduced].len, err);
	pthread_mutex_lock(&lock);
	if (c->len == 0)
		rc = compile(c, reduced, err);
	if (rc == 0)
		rc = copy_program(out, c->insns, c->len, err);
	pthread_mutex_unlock(&lock);
	return rc;
#endif
}

static int compile(struct sc_bpf *out, bool reduced, struct sandcell_error *err)
{
	scmp_filter_ctx ctx;
	struct stat st;
	int fd = -1, rc = -1;
	size_t i;

	memset(out, 0, sizeof(*out));
	ctx = seccomp_init(sc_hook_on(SC_HOOK_MUT_DEFAULT_ALLOW) ? SCMP_ACT_ALLOW
								 : SCMP_ACT_ERRNO(SC_DEFAULT_ERRNO));
	if (ctx == NULL)
		return sc_err(err, ENOMEM, "seccomp_init");
	/* We set no_new_privs ourselves, in its own step of the setup. */
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) < 0 ||
	    seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
			     sc_hook_on(SC_HOOK_MUT_NO_ARCH_CHECK) ? SCMP_ACT_ALLOW : SCMP_ACT_KILL_PROCESS) < 0 ||
	    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2) < 0) {
		sc_err(err, EINVAL, "seccomp attributes");
		goto out;
	}
	for (i = 0; i < sc_policy_len; i++) {
		const struct sc_policy_entry *e = &sc_policy[i];
		int nr = seccomp_syscall_resolve_name(e->name);

		/* Names absent on this arch (e.g. set_thread_area on some) are
		 * covered by the default deny. */
		if (nr == __NR_SCMP_ERROR || nr < 0)
			continue;
		if ((sc_hook_on(SC_HOOK_MUT_CLONE3_ALLOWED) && strcmp(e->name, "clone3") == 0) ||
		    (sc_hook_on(SC_HOOK_MUT_IO_URING_ALLOWED) && strncmp(e->name, "io_uring_", 9) == 0)) {
			if (rule(ctx, SCMP_ACT_ALLOW, nr, 0, NULL, e->name, err) < 0)
				goto out;
			continue;
		}
		/* The default-allow mutant keeps only the explicit denials. */
		if (sc_hook_on(SC_HOOK_MUT_DEFAULT_ALLOW) && e->verdict != SC_ERRNO)
			continue;
		if (reduced && e->reduced_err != 0) {
			if (rule(ctx, SCMP_ACT_ERRNO((uint32_t)e->reduced_err), nr, 0, NULL, e->name, err) < 0)
				goto out;
			continue;
		}
		switch (e->verdict) {
		case SC_ALLOW:
			if (rule(ctx, SCMP_ACT_ALLOW, nr, 0, NULL, e->name, err) < 0)
				goto out;
			break;
		case SC_ERRNO:
			/* libseccomp refuses a rule equal to the default
			 * action; the verdict is the same without it. */
			if (e->err == SC_DEFAULT_ERRNO)
				break;
			if (rule(ctx, SCMP_ACT_ERRNO((uint32_t)e->err), nr, 0, NULL, e->name, err) < 0)
				goto out;
			break;
		case SC_ARGS:
			if (add_arg_rules(ctx, e, nr, err) < 0)
				goto out;
			break;
		}
	}
	if (sc_hook_on(SC_HOOK_MUT_X32_ALLOWED) && seccomp_arch_add(ctx, SCMP_ARCH_X32) < 0) {
		sc_err(err, EINVAL, "seccomp: x32 (mutant)");
		goto out;
	}
	fd = memfd_create("sandcell-bpf", MFD_CLOEXEC);
	if (fd < 0) {
		sc_err(err, errno, "memfd_create");
		goto out;
	}
	rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0) {
		sc_err(err, -rc, "seccomp_export_bpf");
		rc = -1;
		goto out;
	}
	rc = -1;
	if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) != 0) {
		sc_err(err, EINVAL, "seccomp: bad BPF export");
		goto out;
	}
	out->insns = malloc((size_t)st.st_size);
	if (out->insns == NULL) {
		sc_err(err, ENOMEM, "seccomp");
		goto out;
	}
	if (pread(fd, out->insns, (size_t)st.st_size, 0) != st.st_size) {
		sc_err(err, errno, "seccomp: reading BPF");
		sc_seccomp_free(out);
		goto out;
	}
	out->len = (size_t)st.st_size / sizeof(struct sock_filter);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return rc;
}

int sc_seccomp_apply(const struct sc_bpf *bpf, struct sandcell_error *err)
{
	struct sock_fprog prog = {
		.len = (unsigned short)bpf->len,
		.filter = bpf->insns,
	};

	if (bpf->len == 0 || bpf->len > BPF_MAXINSNS)
		return sc_err(err, EINVAL, "seccomp: empty or oversized filter");
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		return sc_err(err, errno, "seccomp(SECCOMP_SET_MODE_FILTER)");
	return 0;
}

void sc_seccomp_free(struct sc_bpf *bpf)
{
	free(bpf->insns);
	bpf->insns = NULL;
	bpf->len = 0;
}

int sandcell_policy_bpf(void **insns, size_t *n_insns, struct sandcell_error *err)
{
	/* Initialised: the failure returns of sc_seccomp_compile come from
	 * sc_err in another file, and gcc -fanalyzer cannot see that they are
	 * all negative. */
	struct sc_bpf b = { 0 };

	sc_hooks_load();
	if (sc_seccomp_compile(&b, false, err) < 0)
		return -1;
	*insns = b.insns;
	*n_insns = b.len;
	return 0;
}

static json_t *u64_array(const uint64_t *v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_integer((json_int_t)v[i]));
	return a;
}

char *sandcell_policy_json(void)
{
	json_t *root = json_object(), *list = json_array(), *args = json_object();
	char *out;
	size_t i;

	json_object_set_new(root, "arch", json_string("x86_64"));
	json_object_set_new(root, "default_errno", json_integer(SC_DEFAULT_ERRNO));
	json_object_set_new(root, "foreign_arch_action", json_string("kill_process"));
	for (i = 0; i < sc_policy_len; i++) {
		const struct sc_policy_entry *e = &sc_policy[i];
		json_t *o = json_object();
		int nr = seccomp_syscall_resolve_name(e->name);

		json_object_set_new(o, "name", json_string(e->name));
		json_object_set_new(o, "nr", nr >= 0 ? json_integer(nr) : json_null());
		json_object_set_new(o, "verdict", json_string(e->verdict == SC_ALLOW   ? "allow"
							      : e->verdict == SC_ERRNO ? "errno"
										   : "args"));
		json_object_set_new(o, "errno", json_integer(e->err));
		if (e->reduced_err)
			json_object_set_new(o, "reduced_mode_errno", json_integer(e->reduced_err));
		json_array_append_new(list, o);
	}
	json_object_set_new(root, "syscalls", list);
	json_object_set_new(args, "ioctl_allowed_requests",
			    u64_array(sc_ioctl_allow, sizeof(sc_ioctl_allow) / sizeof(sc_ioctl_allow[0])));
	json_object_set_new(args, "prctl_allowed_options",
			    u64_array(sc_prctl_allow, sizeof(sc_prctl_allow) / sizeof(sc_prctl_allow[0])));
	json_object_set_new(args, "fcntl_allowed_commands",
			    u64_array(sc_fcntl_allow, sizeof(sc_fcntl_allow) / sizeof(sc_fcntl_allow[0])));
	json_object_set_new(args, "futex_allowed_ops",
			    u64_array(sc_futex_allow, sizeof(sc_futex_allow) / sizeof(sc_futex_allow[0])));
	json_object_set_new(args, "socket_allowed_domains", json_pack("[i]", AF_UNIX));
	json_object_set_new(args, "personality_allowed", json_pack("[i,I]", 0, (json_int_t)0xffffffff));
	json_object_set_new(args, "prlimit64_allowed_pids", json_pack("[i]", 0));
	json_object_set_new(args, "clone_denied_flags", json_integer((json_int_t)SC_CLONE_NS_MASK));
	json_object_set_new(root, "arguments", args);
	out = json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	return out;
}
