/*
 * The template of the warm server (server.h): the one process that never
 * runs user code, and whose copies serve every request.  Here are its
 * heap on huge pages, the copies of its command line (and respawn's
 * re-exec, which uses them), the view it imports in, and CPython: the only
 * file of the server that calls the interpreter, from its start (the
 * steps of src/py/_sandcell_template.py, the warm-up, gc.freeze) to the
 * run's bootstrap (src/py/_sandcell_warm.py) in the code's process.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "asan.h"
#include "server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- the heap ---- */

/*
 * The template's heap on transparent huge pages.  Every run copies the
 * template three times (spare worker, sandbox init, code); a fork copies
 * one page-table entry per 4 KiB page, and an exit tears them down, so a
 * heap of ~60 MiB in 4 KiB pages (pymalloc's arenas, one mapping each)
 * costs ~10 ms of CPU per fork and exit here, and a heap on 2 MiB pages a
 * PMD per 2 MiB (docs/warm.md, Performance).  So, when the kernel offers
 * THP (enabled: always or madvise), the template's Python objects come
 * from glibc's malloc (PYMEM_ALLOCATOR_MALLOC, not pymalloc's arenas),
 * and glibc's malloc is tuned before it starts: hugetlb=1 madvises its
 * heap for THP and aligns its growth to 2 MiB, and a 32 MiB mmap
 * threshold keeps large blocks (numpy's) in that heap rather than in
 * mappings of their own.  Tunables are read by the dynamic loader only,
 * so the template re-executes itself once with GLIBC_TUNABLES set (a
 * respawn sets it again); the variable is gone (clearenv in main, main.c) before
 * the interpreter starts, so neither it nor PYTHONMALLOC reaches a run's
 * environment.  What a run can observe is the allocator itself
 * (sys.getallocatedblocks() is 0 under malloc), documented.
 */
static const char heap_tunables[] = "glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432";
static bool heap_thp;

/* THP is available to an madvise()d heap: "always" or "madvise" is the
 * bracketed mode. */
static bool thp_available(void)
{
	char buf[128] = "";
	int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, "[always]") != NULL || strstr(buf, "[madvise]") != NULL;
}

/* Called first in main: re-executes the template with heap_tunables
 * unless they are in force (a respawn sets them: template_reexec).  Returns
 * only if no re-exec is needed or possible: without THP, or if the
 * tunables are already set, the template keeps what it has (pymalloc
 * without them: a slower template, never a wrong one). */
void heap_on_huge_pages(char **argv)
{
	const char *t = getenv("GLIBC_TUNABLES");
	char self[4096];
	ssize_t n;

	if (!thp_available())
		return;
	if (t != NULL && strcmp(t, heap_tunables) == 0) {
		heap_thp = true;
		return;
	}
	/* A loader that rewrote the variable would bring us back here: one
	 * re-exec at most (the marker), then the template starts as it is. */
	if (getenv("SANDCELL_WARM_REEXEC") != NULL)
		return;
	if (setenv("GLIBC_TUNABLES", heap_tunables, 1) < 0 || setenv("SANDCELL_WARM_REEXEC", "1", 1) < 0)
		return;
	/* The binary's path, not /proc/self/exe: the process keeps its name
	 * (comm) for ps and the logs. */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		execv(self, argv);
	}
	logmsg("cannot re-execute with the heap on huge pages: %s (continuing without)", strerror(errno));
	unsetenv("GLIBC_TUNABLES");
}

/*
 * glibc's malloc keeps what the imports and the warm-up freed as free
 * chunks scattered over the heap.  Every worker and every run's code would
 * take its first allocations from them: each one, and the list and bin
 * walks that find it, writes (and so copies) a page of the template's,
 * hundreds per process, more than the rest of a trivial run writes.  So
 * the template takes every free chunk out of glibc's hands once, before
 * it forks anything, and keeps them: requests from 16 MiB down to 16
 * bytes, each size repeated until it is served from the top of the heap
 * (an address at or above where the top began), which is given back.
 * Children then allocate from the top: fresh, contiguous memory.  The
 * chunks held cost no memory that was not resident already; they hold
 * what the template freed while it started (its own data, never a
 * request's: no request reaches the template).  Only when the template's
 * objects are in glibc's heap (heap_thp).
 */
void drain_free_chunks(void)
{
	struct mallinfo2 mi;
	char *top0, *p;
	size_t s, held = 0;

	if (!heap_thp)
		return;
	/* mallopt consolidates the fast bins first thing. */
	mallopt(M_MXFAST, 64 * (int)sizeof(size_t) / 4); /* glibc's default */
	mi = mallinfo2();
	top0 = (char *)sbrk(0) - mi.keepcost;
	for (s = 16u << 20; s >= 16; s = s > 1024 ? s - s / 16 : s - 16) {
		for (;;) {
			p = malloc(s);
			if (p == NULL)
				return;
			if (p >= top0) {
				free(p);
				break;
			}
			/* Never more than was free: should the heap not be
			 * one brk area (where top0 means nothing), this ends. */
			held += malloc_usable_size(p);
			if (held > mi.fordblks)
				return;
		}
	}
}


/* ---- the template's copies of its command line ---- */

/* The template's own copies of its command line: host paths (the socket)
 * that no worker needs, so every worker frees them (drop_template_args). */
static char *self_path, **respawn_argv, *socket_path, *cgroup_parent;
/* The listening socket a previous template handed over, open before the
 * factory is forked: the factory closes it (factory_fork). */
static int inherited_ls = -1;

/* Every run is a fork of this process: nothing of the launcher's command
 * line or environment may stay in its memory.  Copies of what we need are
 * kept (the caller zeroes the original pages), and the fds a previous
 * template handed over (template_reexec) are taken. */
int keep_copies(int argc, char **argv, struct opts *o, int *listen_fd, int *state_fd)
{
	const char *inherited = getenv("SANDCELL_WARM_LISTEN_FD"), *state = getenv("SANDCELL_WARM_STATE_FD");
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int k;

	if (n <= 0)
		return -1;
	self[n] = '\0';
	self_path = strdup(self);
	respawn_argv = calloc((size_t)argc + 1, sizeof(char *));
	if (self_path == NULL || respawn_argv == NULL)
		return -1;
	for (k = 0; k < argc; k++)
		respawn_argv[k] = strdup(argv[k]);
	o->socket = socket_path = strdup(o->socket);
	o->python = strdup(o->python);
	o->preload = strdup(o->preload);
	if (getenv("SANDCELL_CGROUP_PARENT") && *getenv("SANDCELL_CGROUP_PARENT"))
		o->cgroup_parent = cgroup_parent = strdup(getenv("SANDCELL_CGROUP_PARENT"));
	*listen_fd = inherited_ls = inherited ? atoi(inherited) : -1;
	*state_fd = state ? atoi(state) : -1;
	/* Returning from main ends the process: the copies that did succeed
	 * are not leaked. */
	return o->socket && o->python && o->preload ? 0 : -1;
}

/* In a worker: the template's copies of its command line. */
void drop_template_args(void)
{
	size_t k;

	for (k = 0; respawn_argv && respawn_argv[k]; k++)
		free(respawn_argv[k]);
	free(respawn_argv);
	free(self_path);
	free(socket_path);
	free(cgroup_parent);
	respawn_argv = NULL;
	self_path = socket_path = cgroup_parent = NULL;
}

/* Respawn (dispatch.c) ends here: the listening socket and the table's
 * memfd stay open across the execv, and the new template finds them in
 * its environment (keep_copies). */
void template_reexec(int ls, int state)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%d", ls);
	fcntl(ls, F_SETFD, 0);
	setenv("SANDCELL_WARM_LISTEN_FD", buf, 1);
	snprintf(buf, sizeof(buf), "%d", state);
	setenv("SANDCELL_WARM_STATE_FD", buf, 1);
	/* The environment was cleared (main.c): what the launcher's said
	 * and the new template must know again comes back here.  Without
	 * its cgroup parent an unprivileged server's spares would try the
	 * default parent, be refused, and every run would go to a worker. */
	if (cgroup_parent)
		setenv("SANDCELL_CGROUP_PARENT", cgroup_parent, 1);
	/* The new template's heap as this one's (heap_on_huge_pages): the
	 * loader reads the tunables before main. */
	if (heap_thp)
		setenv("GLIBC_TUNABLES", heap_tunables, 1);
	execv(self_path, respawn_argv);
	logmsg("respawn failed: %s", strerror(errno));
	exit(SANDCELL_EXIT_SANDBOX);
}

/* ---- the view it imports in ---- */

/*
 * The template's view.  What the template computes while it imports (the
 * uname cache of platform, matplotlib's config and cache directories,
 * os.environ, the locale) every run inherits, and freed copies would stay
 * in its memory even if a run reset the caches.  So it imports seeing
 * what a sandbox sees: the sandbox's fixed environment (HOME=/tmp,
 * MPLCONFIGDIR=/tmp/.matplotlib, ...), an empty private tmpfs on /tmp as
 * its cwd, and a uts namespace of its own named "sandcell".  The host name
 * never enters it, and nothing it writes or reads goes through the host's
 * shared /tmp (where anyone could plant a /tmp/.matplotlib/matplotlibrc).
 *
 * As root: private mount and uts namespaces; the mount namespace is left
 * again after the imports (setns back to the host's), so the server sees
 * host mounts as before.  Unprivileged: a user namespace mapping the
 * server's own uid and gid to themselves gives the rights; a user
 * namespace cannot be left, so the template stays in it (in a copy of the
 * host's mounts, receiving the host's mount events when / is shared), and
 * keeps CAP_SYS_ADMIN in it as an ambient capability so that a respawn
 * can mount its private /tmp again.  The sandbox init drops every
 * capability, ambient ones included (caps.c).
 */
static int host_mnt_fd = -1;

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int keep_sys_admin(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) < 0)
		return -1;
	d[CAP_TO_INDEX(CAP_SYS_ADMIN)].inheritable |= CAP_TO_MASK(CAP_SYS_ADMIN);
	if (syscall(SYS_capset, &h, d) < 0)
		return -1;
	return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0);
}

static int template_view_enter(bool respawned, const char **step)
{
	if (geteuid() == 0) {
		*step = "unshare(CLONE_NEWNS|CLONE_NEWUTS)";
		host_mnt_fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
		if (host_mnt_fd < 0 || unshare(CLONE_NEWNS | CLONE_NEWUTS) < 0)
			return -1;
	} else if (!respawned) {
		char map[64];
		uid_t u = geteuid();
		gid_t g = getegid();

		*step = "unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWUTS)";
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWUTS) < 0)
			return -1;
		*step = "mapping the server's uid and gid";
		snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)u, (unsigned)u);
		if (write_text("/proc/self/setgroups", "deny\n") < 0 ||
		    write_text("/proc/self/uid_map", map) < 0)
			return -1;
		snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)g, (unsigned)g);
		if (write_text("/proc/self/gid_map", map) < 0)
			return -1;
		*step = "keeping CAP_SYS_ADMIN for respawns";
		if (keep_sys_admin() < 0)
			return -1;
	}
	*step = "making the mounts private";
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return -1;
	*step = "sethostname";
	if (sethostname("sandcell", 8) < 0 || setdomainname("sandcell", 8) < 0)
		return -1;
	*step = "mounting a private /tmp";
	if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700,size=64m") < 0 ||
	    chdir("/tmp") < 0)
		return -1;
	return 0;
}

static int template_view_leave(const char **step)
{
	*step = "leaving the private /tmp";
	if (chdir("/") < 0)
		return -1;
	if (host_mnt_fd >= 0) {
		int rc = setns(host_mnt_fd, CLONE_NEWNS);
		close(host_mnt_fd);
		host_mnt_fd = -1;
		return rc;
	}
	return umount2("/tmp", MNT_DETACH);
}

/* ---- CPython ---- */

/* Runs an embedded file's text (tools/embed.sh warm) in a namespace of its
 * own, as "<string>": that namespace (a new reference), or NULL with the
 * Python error set.  The files only define functions. */
static PyObject *run_py_file(const char *name)
{
	const struct sc_py_file *f = sc_warm_py_files;
	PyObject *ns, *r;

	while (f->name && strcmp(f->name, name) != 0)
		f++;
	if (f->name == NULL) {
		PyErr_Format(PyExc_RuntimeError, "%s is not embedded", name);
		return NULL;
	}
	ns = PyDict_New();
	if (ns == NULL || PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) < 0) {
		Py_XDECREF(ns);
		return NULL;
	}
	r = PyRun_String((const char *)f->data, Py_file_input, ns, ns); /* embed.sh ends it with a NUL */
	if (r == NULL) {
		Py_DECREF(ns);
		return NULL;
	}
	Py_DECREF(r);
	return ns;
}

/* Calls the function ns[fn], with the string arg if not NULL: 0, or -1
 * with the Python error set. */
static int call_py(PyObject *ns, const char *fn, const char *arg)
{
	PyObject *f = PyDict_GetItemString(ns, fn), *r;

	if (f == NULL) {
		PyErr_Format(PyExc_RuntimeError, "%s is not defined", fn);
		return -1;
	}
	r = arg ? PyObject_CallFunction(f, "s", arg) : PyObject_CallNoArgs(f);
	Py_XDECREF(r);
	return r ? 0 : -1;
}

/* argv or envp as a list of str (decoded as os.fsdecode does). */
static PyObject *str_list(const char *const *v, size_t skip_none)
{
	PyObject *l = PyList_New(0);
	size_t i;

	(void)skip_none;
	for (i = 0; l && v[i]; i++) {
		PyObject *s = PyUnicode_DecodeFSDefault(v[i]);
		if (s == NULL || PyList_Append(l, s) < 0) {
			Py_XDECREF(s);
			Py_DECREF(l);
			return NULL;
		}
		Py_DECREF(s);
	}
	return l;
}

/* _sc_warm (src/py/_sandcell_warm.py), compiled once in the template
 * (not per run), and kept out of __main__ so the user's code does not see
 * it among its globals. */
static PyObject *warm_fn, *reseed_fn, *rehearse_fn;

static int set_str(PyObject *d, const char *k, const char *v)
{
	PyObject *o = PyUnicode_FromString(v);
	int rc = o ? PyDict_SetItemString(d, k, o) : -1;

	Py_XDECREF(o);
	return rc;
}

static int compile_warm_boot(void)
{
	PyObject *ns = run_py_file("_sandcell_warm.py");

	if (ns == NULL) {
		PyErr_Print();
		return -1;
	}
	warm_fn = PyDict_GetItemString(ns, "_sc_warm");
	reseed_fn = PyDict_GetItemString(ns, "_sc_reseed");
	rehearse_fn = PyDict_GetItemString(ns, "_sc_rehearse");
	Py_XINCREF(warm_fn);
	Py_XINCREF(reseed_fn);
	Py_XINCREF(rehearse_fn);
	Py_DECREF(ns);
	return warm_fn && reseed_fn && rehearse_fn ? 0 : -1;
}

/*
 * The bootstrap's module, _sandcell_main (the sandbox's copy of
 * src/py/_sandcell_main.py, from the same table), compiled and run once
 * here under the name and path a sandbox gives it, so that a run's code
 * process calls its _sandcell_run at once instead of compiling
 * _sandcell_boot.py and importing the module again: that was most of a
 * trivial run's interpreter work and hundreds of its copy-on-write faults.
 * Its frames carry the path a cold run's do, which is how the bootstrap
 * leaves its own frames out of the code's tracebacks.  As after the boot
 * file's import, the module is not in sys.modules.  _sc_warm uses it only
 * when the run's bootstrap is in that directory (a run's /.sandcell).
 */
#define SANDBOX_MAIN_PATH "/.sandcell/_sandcell_main.py"
static PyObject *main_fn;

static int compile_main_module(void)
{
	const struct sc_py_file *f = sc_py_files;
	PyObject *ns, *code, *r;

	while (f->name && strcmp(f->name, "_sandcell_main.py") != 0)
		f++;
	if (f->name == NULL)
		return -1;
	code = Py_CompileString((const char *)f->data, SANDBOX_MAIN_PATH, Py_file_input);
	ns = PyDict_New();
	if (code == NULL || ns == NULL || PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) < 0 ||
	    set_str(ns, "__name__", "_sandcell_main") < 0 || set_str(ns, "__file__", SANDBOX_MAIN_PATH) < 0) {
		Py_XDECREF(code);
		Py_XDECREF(ns);
		return -1;
	}
	r = PyEval_EvalCode(code, ns, ns);
	Py_DECREF(code);
	Py_XDECREF(r);
	main_fn = r ? PyDict_GetItemString(ns, "_sandcell_run") : NULL;
	Py_XINCREF(main_fn);
	Py_DECREF(ns);
	return main_fn ? 0 : -1;
}

/* The open fds, as a bitmap of the first 1024: 0 if it could be read. */
static int open_fds(unsigned char map[128])
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	memset(map, 0, 128);
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] != '.' && fd != dirfd(d) && fd >= 0 && fd < 1024)
			map[fd / 8] |= (unsigned char)(1u << (fd % 8));
		else if (fd >= 1024) {
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	return 0;
}

/* The warm-up (_sc_warm_up in tpl, the template file's namespace). */
static int run_warm_up(PyObject *tpl)
{
	unsigned char before[128], after[128];

	if (open_fds(before) < 0) {
		logmsg("cannot list the template's fds");
		return -1;
	}
	if (call_py(tpl, "_sc_warm_up", NULL) < 0) {
		/* The traceback would name only the runtime's own paths: still,
		 * the error goes, not its state (sys.last_value). */
		PyErr_Clear();
		logmsg("the warm-up failed: runs start without it");
	}
	/* Fail closed: a file the warm-up left open would be in every
	 * worker, held by an object that closes its number in a run. */
	if (open_fds(after) < 0 || memcmp(before, after, sizeof(before)) != 0) {
		logmsg("the warm-up left a file open");
		return -1;
	}
	return 0;
}

/* The last step, _sc_freeze (gc.freeze), with nothing of the template
 * file left to freeze: its namespace is emptied first (its functions
 * reference it, a cycle only the collector would free, and nothing is
 * collected once frozen), and the function itself goes after its call. */
static void freeze_gc(PyObject *tpl)
{
	PyObject *f = PyDict_GetItemString(tpl, "_sc_freeze"), *r;

	Py_XINCREF(f);
	PyDict_Clear(tpl);
	Py_DECREF(tpl);
	r = f ? PyObject_CallNoArgs(f) : NULL;
	if (r == NULL)
		PyErr_Print();
	Py_XDECREF(r);
	Py_XDECREF(f);
}

/* The steps learn_likely_pages runs, kept past freeze_gc (which empties
 * their module's namespace: they use none of its names). */
static PyObject *learn_boot, *learn_warm;

/* CPython in the template: isolated as `python3 -I`, then the Python
 * steps of src/py/_sandcell_template.py, in its order. */
static int init_python(const struct opts *o)
{
	PyPreConfig pre;
	PyConfig config;
	PyStatus st;
	PyObject *tpl;
	char *list, *tok, *save = NULL;
	wchar_t *w;

	/* LC_CTYPE from the fixed environment (C.UTF-8), as `python3 -I`
	 * sets it in a cold run: the locale is process state every run
	 * inherits. */
	PyPreConfig_InitIsolatedConfig(&pre);
	pre.configure_locale = 1;
	/* See heap_on_huge_pages: objects in glibc's THP heap, not in
	 * pymalloc's 4 KiB-page arenas. */
	if (heap_thp)
		pre.allocator = PYMEM_ALLOCATOR_MALLOC;
	st = Py_PreInitialize(&pre);
	if (PyStatus_Exception(st))
		return -1;
	PyConfig_InitIsolatedConfig(&config);
	config.write_bytecode = 0;
	w = Py_DecodeLocale(o->python, NULL);
	if (w) {
		PyConfig_SetString(&config, &config.program_name, w);
		PyConfig_SetString(&config, &config.executable, w);
		PyMem_RawFree(w);
	}
	st = Py_InitializeFromConfig(&config);
	PyConfig_Clear(&config);
	if (PyStatus_Exception(st))
		return -1;
	tpl = run_py_file("_sandcell_template.py");
	if (tpl == NULL || call_py(tpl, "_sc_base_imports", NULL) < 0) {
		PyErr_Print();
		Py_XDECREF(tpl);
		return -1;
	}
	list = strdup(o->preload);
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (tok[0] == '\0')
			continue;
		if (call_py(tpl, "_sc_preload", tok) < 0) {
			PyErr_Print();
			logmsg("preloading %s failed", tok);
			free(list);
			Py_DECREF(tpl);
			return -1;
		}
		if (strcmp(tok, "matplotlib") == 0 && call_py(tpl, "_sc_agg", NULL) < 0)
			PyErr_Print();
	}
	free(list);
	if (run_warm_up(tpl) < 0) {
		Py_DECREF(tpl);
		return -1;
	}
	if (compile_warm_boot() < 0 || compile_main_module() < 0) {
		PyErr_Print();
		logmsg("compiling the run bootstrap failed");
		Py_DECREF(tpl);
		return -1;
	}
	learn_boot = PyDict_GetItemString(tpl, "_sc_profile_boot");
	learn_warm = PyDict_GetItemString(tpl, "_sc_warm_up");
	Py_XINCREF(learn_boot);
	Py_XINCREF(learn_warm);
	freeze_gc(tpl);
	return 0;
}

/* ---- forks, and the code's start ---- */

pid_t template_fork(void)
{
	pid_t pid;

	PyOS_BeforeFork();
	pid = fork();
	/* No PyOS_AfterFork_Child() in the child: a worker runs no Python,
	 * and the interpreter's after-fork work (its locks, the at-fork
	 * hooks of the modules: random, threading, logging...) would write
	 * hundreds of the template's pages in every worker.  The code, the
	 * only process below that runs Python, does it (code_prepare), as
	 * the child of this fork. */
	if (pid != 0)
		PyOS_AfterFork_Parent();
	return pid;
}

static PyObject *code_argv, *code_envp;
static bool code_idle_done;

/*
 * In a spare's code process while it is idle, before its GO: the
 * interpreter's after-fork work (its locks, the modules' at-fork hooks),
 * a fresh random state (_sc_reseed), then the bootstrap's own steps on an
 * empty program (_sc_rehearse), which copies the pages a run's bootstrap
 * writes before the request instead of on its path.  None of it depends
 * on the request, so it is done off the request's path, with the
 * copy-on-write faults it takes.  Only the interpreter's, the preloaded
 * modules' and the bootstrap's own code runs here, and no byte of a
 * request has reached this process.  A reseed that fails ends the spare:
 * no run may start with the template's random state.  A rehearsal that
 * fails costs only its gain: the run's bootstrap takes the faults, and
 * fails on its own if something is wrong.
 */
static void idle_prepare(void)
{
	PyObject *r;

	PyOS_AfterFork_Child();
	r = PyObject_CallNoArgs(reseed_fn);
	if (r == NULL) {
		PyErr_Print();
		_exit(127);
	}
	Py_DECREF(r);
	r = PyObject_CallOneArg(rehearse_fn, main_fn);
	if (r == NULL)
		PyErr_Clear();
	Py_XDECREF(r);
}

void code_idle(int chan)
{
	idle_prepare();
	code_idle_done = true;
	pages_write_ahead(chan);
}

/*
 * The pages a run is likely to write (pages.c), learnt once per template,
 * after the drain (a run's own allocations never reuse the template's
 * free chunks), in a fork that runs trusted steps only, in the order of
 * their weight for a typical run: what every run's bootstrap does
 * (_sc_profile_boot), then the warm-up's data part (numpy, pandas), then
 * its plot part.  It first does what an idle code process does anyway
 * (idle_prepare) and counts only what each step wrote after that.  The list
 * comes back in a shared mapping; a fork that fails leaves it empty, and
 * runs take their faults as before.  At most max pages (--write-ahead):
 * each is one page of private memory in every idle spare, charged to its
 * run (factory.c, spare_serves).
 */
/* The steps write no file (the warm-up's promise); this fork runs them
 * in the host's view, so Landlock holds it to that: read anywhere,
 * write and create nowhere, no TCP.  Without Landlock nothing is learnt. */
static void learn_child_confine(void)
{
	static const char *const all[] = { "/" };
	const struct sc_landlock_rules rules = { all, 1, NULL, 0, NULL, 0, false };
	struct sc_landlock_info ll;
	struct sandcell_error e;

	if (sc_landlock_probe(&ll) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    sc_landlock_apply(&ll, &rules, &e) < 0)
		_exit(1);
}

static void learn_child(uintptr_t *out, size_t max)
{
	PyObject *steps[3] = { learn_boot, learn_warm, learn_warm };
	const char *arg[3] = { NULL, "data", "plot" };
	struct page_set prev, now;
	size_t n = 0;

	learn_child_confine();
	idle_prepare();
	if (pages_snapshot(&prev) < 0)
		_exit(1);
	for (int i = 0; i < 3; i++) {
		PyObject *r = NULL;
		if (steps[i] != NULL)
			r = arg[i] ? PyObject_CallFunction(steps[i], "s", arg[i]) : PyObject_CallNoArgs(steps[i]);
		if (r == NULL)
			PyErr_Clear(); /* a step that fails adds what it wrote */
		Py_XDECREF(r);
		if (pages_snapshot(&now) < 0)
			_exit(1);
		n += pages_new(&now, &prev, out + 1 + n, max - n);
		pages_free(&prev);
		prev = now;
	}
	out[0] = n;
	_exit(0);
}

#define LEARN_SEC 30

static bool child_exits_within(pid_t pid, int sec)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0), r;
	struct pollfd p;

	if (fd < 0)
		return true; /* waitpid alone then */
	p = (struct pollfd){ fd, POLLIN, 0 };
	do
		r = poll(&p, 1, sec * 1000);
	while (r < 0 && errno == EINTR);
	close(fd);
	return r > 0;
}

void learn_likely_pages(size_t max)
{
	size_t size = (max + 1) * sizeof(uintptr_t);
	uintptr_t *shared = max ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)
				: MAP_FAILED;
	pid_t pid;
	int st = 0;

	if (shared != MAP_FAILED) {
		pid = template_fork();
		if (pid == 0)
			learn_child(shared, max);
		/* The steps are the warm-up's, which the template ran
		 * already: one that stalls here (a library waiting on
		 * something) is killed, and the list stays empty. */
		if (pid > 0 && !child_exits_within(pid, LEARN_SEC))
			kill(pid, SIGKILL);
		while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || shared[0] > max)
			logmsg("learning the pages to write in advance failed: idle spares write none");
		else if (pages_keep(shared + 1, shared[0]) < 0)
			logmsg("cannot keep the list of pages to write in advance");
		munmap(shared, size);
	}
	Py_CLEAR(learn_boot);
	Py_CLEAR(learn_warm);
}

int code_prepare(const char *const *argv, const char *const *envp)
{
	if (!code_idle_done)
		PyOS_AfterFork_Child();
	code_argv = str_list(argv, 0);
	code_envp = str_list(envp, 0);
	if (code_argv == NULL || code_envp == NULL) {
		PyErr_Print();
		return -1;
	}
	return 0;
}

void code_run(void)
{
	PyObject *r;

	if (code_argv == NULL || code_envp == NULL)
		return;
	/* _sc_warm ends with os._exit(); SystemExit inside is its business.
	 * Getting here means the bootstrap itself failed. */
	r = PyObject_CallFunctionObjArgs(warm_fn, code_argv, code_envp, main_fn,
					 code_idle_done ? Py_True : Py_False, NULL);
	if (r == NULL)
		PyErr_Print();
}

/* ---- a fork into a spare sandbox ---- */

/*
 * The code's process of a spare (docs/warm.md, "Isolated spares") is a
 * fork of this template made inside the spare's namespaces.  The template
 * itself never enters them: an unprivileged template could not return to
 * its own pid namespace (setns to a pid namespace owned by the host's
 * user namespace needs privilege there).  A helper that shares the
 * template's memory (CLONE_VM, so no copy is made for it) and runs while
 * the template waits (CLONE_VFORK) enters them, and its fork is the one
 * copy of the template a run gets: pid 3 of the spare's pid namespace,
 * with the spare's root and hostname.  The helper exits at once; the
 * template, a child subreaper, inherits the code's process and reaps it
 * (dispatch.c relays its wait status to the spare's supervisor).  The
 * helper's stack is mapped once and emptied after each use: the code runs
 * on its own copy of it.
 */
#define INTO_STACK (8u << 20)
static char *into_stack;
/* For asan.h: the bounds of the stack template_fork_into left. */
static const void *into_old_bottom;
static size_t into_old_size;

struct into {
	int pidfd;
	int cgfd;
	void (*child)(void *, bool);
	void *arg;
	pid_t pid;
	int err;
};

/*
 * Where glibc keeps the thread's cached tid and its robust-mutex list:
 * what its fork() sets up in a child.  The template's own, read once
 * (the kernel holds both addresses: set_tid_address and set_robust_list
 * at startup); tid_addr NULL if the kernel does not say.
 */
static void *tid_addr, *robust_head;
static size_t robust_len;
static bool thread_addrs_read;

static void read_thread_addrs(void)
{
	if (thread_addrs_read)
		return;
	thread_addrs_read = true;
	if (prctl(PR_GET_TID_ADDRESS, &tid_addr, 0, 0, 0) < 0 ||
	    syscall(SYS_get_robust_list, 0, &robust_head, &robust_len) < 0)
		tid_addr = NULL;
}

/*
 * The fork of the code's process, born in the run's v2 cgroup (clone3
 * with CLONE_INTO_CGROUP): a process moved there later (a write to
 * cgroup.procs) takes the cgroup threadgroup lock for writing, which
 * waits for an RCU grace period (6 ms on this 2-core VM when idle) while
 * holding the global cgroup mutex, so every cgroup operation of the
 * other runs (their supervisors' cgroup.kill, mkdir, rmdir) stalls
 * behind a spare being built.  clone3 without CLONE_VM is a fork; what
 * glibc's fork() does beyond the system call is done here the same way
 * for this single-threaded process: the tid cached in the child's copy
 * (CLONE_CHILD_SETTID at glibc's own address) and the kernel's pointer
 * to the robust-mutex list.  pthread_atfork handlers do not run: the
 * interpreter's at-fork work is PyOS_BeforeFork/AfterFork (done around
 * this fork, and in code_idle), and the one library of the template
 * that registers a handler (libbsd's arc4random) also reseeds on a
 * change of pid.  -1 with errno when the kernel refuses (the caller
 * then forks and the child moves itself).
 */
static pid_t fork_into_cgroup(int cgfd)
{
	struct clone_args ca;
	pid_t pid;

	if (cgfd < 0 || tid_addr == NULL) {
		errno = ENOSYS;
		return -1;
	}
	memset(&ca, 0, sizeof(ca));
	ca.flags = CLONE_INTO_CGROUP | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID;
	ca.child_tid = (uint64_t)(uintptr_t)tid_addr;
	ca.exit_signal = SIGCHLD;
	ca.cgroup = (uint64_t)cgfd;
	PyOS_BeforeFork();
	pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid == 0) {
		syscall(SYS_set_robust_list, robust_head, robust_len);
		return 0;
	}
	PyOS_AfterFork_Parent();
	return pid;
}

/* The helper: every namespace of the spare but its cgroup namespace
 * (the child enters that one once it is in its cgroups: CLONE_INTO_CGROUP
 * checks the run cgroup against the caller's cgroup namespace, and the
 * spare's is rooted at that very cgroup), then the fork. */
static int into_helper(void *p)
{
	struct into *a = p;
	bool born_in = true;

	asan_stack_arrived(NULL, &into_old_bottom, &into_old_size);
	if (setns(a->pidfd, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
				    CLONE_NEWUTS) < 0) {
		a->err = errno;
		_exit(1);
	}
	a->pid = fork_into_cgroup(a->cgfd);
	if (a->pid < 0) {
		born_in = false;
		a->pid = template_fork();
	}
	if (a->pid == 0)
		a->child(a->arg, born_in); /* does not return */
	if (a->pid < 0)
		a->err = errno;
	_exit(0);
}

pid_t template_fork_into(int init_pidfd, int cgfd, void (*child)(void *, bool), void *arg)
{
	struct into a = { init_pidfd, cgfd, child, arg, -1, 0 };
	void *fake = NULL;
	pid_t h;

	read_thread_addrs();
	if (into_stack == NULL) {
		char *m = mmap(NULL, INTO_STACK, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
		if (m == MAP_FAILED)
			return -1;
		into_stack = m;
	}
	/* The helper shares this memory, ASan's record of the stack in use
	 * included: it arrives on into_stack, and so does the fork it makes;
	 * this side then goes back to its own (a clone that failed arrives
	 * nowhere: the switch is completed here instead). */
	asan_stack_leave(&fake, into_stack, INTO_STACK);
	h = clone(into_helper, into_stack + INTO_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
	if (h < 0)
		asan_stack_arrived(NULL, &into_old_bottom, &into_old_size);
	asan_stack_leave(NULL, into_old_bottom, into_old_size);
	asan_stack_arrived(fake, NULL, NULL);
	if (h < 0)
		return -1;
	while (waitpid(h, NULL, 0) < 0 && errno == EINTR)
		;
	asan_frames_forget(into_stack, INTO_STACK);
	madvise(into_stack, INTO_STACK, MADV_DONTNEED);
	if (a.pid < 0)
		errno = a.err ? a.err : EIO;
	return a.pid;
}

/* ---- the spare factory ---- */

/* Forked before the interpreter exists, so that what makes the spares is
 * a small C process (factory.c), and inside the template's user namespace
 * (unprivileged), so that the template may enter what it makes. */
int factory_fork(const struct opts *o)
{
	int sv[2];
	pid_t pid;
	const char *step = "";

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		/* Only the template accepts: a factory or a spare's supervisor
		 * holding the socket would keep clients connecting, and then
		 * waiting unanswered, after the template is gone. */
		if (inherited_ls >= 0)
			close(inherited_ls);
		/* Unprivileged, the template keeps its mount namespace (it
		 * cannot return to the host's): the factory leaves the import
		 * view in a copy of its own, so that the template's private
		 * /tmp stays while it imports. */
		if (host_mnt_fd < 0 && unshare(CLONE_NEWNS) < 0) {
			logmsg("spare factory: unshare(CLONE_NEWNS): %s", strerror(errno));
			_exit(1);
		}
		if (template_view_leave(&step) < 0) {
			logmsg("spare factory: %s: %s", step, strerror(errno));
			_exit(1);
		}
		/* It keeps the template's copies of the command line (the
		 * spares use o): no run's code is a copy of it. */
		factory_main(sv[1], o);
	}
	close(sv[1]);
	return sv[0];
}

/* ---- the template ---- */

/* The template interpreter, in a sandbox's view (template_view_enter),
 * the exec hook, and the seccomp filter compiled once for every run to
 * inherit. */
int make_template(const struct opts *o, bool respawned, int *factory)
{
	struct sandcell_error e;
	struct sc_bpf b;
	const char *step = "";

	/* Fail closed: a template importing in the host's view would hand
	 * the host name and its paths to every run. */
	if (template_view_enter(respawned, &step) < 0) {
		logmsg("cannot give the template a sandbox's view (%s): %s", step, strerror(errno));
		return -1;
	}
	*factory = factory_fork(o);
	if (*factory < 0) {
		logmsg("cannot start the spare factory: %s", strerror(errno));
		return -1;
	}
	if (init_python(o) < 0) {
		logmsg("cannot start the template interpreter");
		return -1;
	}
	if (template_view_leave(&step) < 0) {
		logmsg("cannot leave the template's import view (%s): %s", step, strerror(errno));
		return -1;
	}
	sc_set_exec_hook(warm_exec); /* worker.c */
	if (sc_seccomp_compile(&b, false, &e) < 0) {
		logmsg("%s", e.msg);
		return -1;
	}
	sc_seccomp_free(&b);
	return 0;
}
