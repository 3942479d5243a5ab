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
	const char *const *argv;
	int sock;
	int stdin_r, stdout_w, stderr_w, result_w;
	bool drop_groups;
	bool cgroupns;
};

__attribute__((noreturn)) void sc_child_main(const struct sc_child *c);
#endif
