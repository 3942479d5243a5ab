#ifndef SANDCELL_CONTAIN_H
#define SANDCELL_CONTAIN_H
#include "internal.h"

/* Everything the cloned child needs, prepared by the supervisor before the
 * clone so the child allocates nothing and calls no library code. */
struct sc_child {
	struct sc_mount_plan *plan;
	const struct sandcell_limits *limits;
	const struct sc_bpf *bpf;
	const struct sc_landlock_info *landlock;
	const struct sc_landlock_rules *ll_rules;
	const char *const *argv;
	const char *const *envp;
	const char *workdir;	/* the code's cwd */
	int sock;
	int id_lock_fd;		/* held while init lives (-1 = none) */
	int cg_join[SC_CGROUP_V1_JOIN]; /* v1 run cgroups' tasks files (sc_cgroup_join_open) */
	int stdin_r, stdout_w, stderr_w, result_w;
	bool drop_groups;
	bool cgroupns;
	bool reduced;		/* no namespaces: Landlock, seccomp, rlimits only */
	bool session;		/* the code is a session loop: it starts with SIGINT ignored */
	bool spare;		/* a spare: waits for its request (spare_run) and forks no code */
};

__attribute__((noreturn)) void sc_child_main(const struct sc_child *c);
#endif
