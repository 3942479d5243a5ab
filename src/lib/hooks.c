/*
 * Test hooks (test builds only; see internal.h).  The shipped binary is
 * built without SANDCELL_TEST_HOOKS, and then this file is empty.
 */
#include "internal.h"

#ifdef SANDCELL_TEST_HOOKS
#include <stdlib.h>
#include <string.h>

unsigned sc_hooks;

static const struct {
	const char *name;
	unsigned bit;
} hook_names[] = {
	{ "no-seccomp", SC_HOOK_NO_SECCOMP },
	{ "no-landlock", SC_HOOK_NO_LANDLOCK },
	{ "no-mount-isolation", SC_HOOK_NO_MOUNT_ISOLATION },
	{ "no-netns", SC_HOOK_NO_NETNS },
	{ "no-uidmap", SC_HOOK_NO_UIDMAP },
	{ "no-limits", SC_HOOK_NO_LIMITS },
	{ "no-fdclose", SC_HOOK_NO_FDCLOSE },
	{ "mut-no-arch-check", SC_HOOK_MUT_NO_ARCH_CHECK },
	{ "mut-x32-allowed", SC_HOOK_MUT_X32_ALLOWED },
	{ "mut-clone3-allowed", SC_HOOK_MUT_CLONE3_ALLOWED },
	{ "mut-io-uring-allowed", SC_HOOK_MUT_IO_URING_ALLOWED },
	{ "mut-default-allow", SC_HOOK_MUT_DEFAULT_ALLOW },
	{ "mut-no-nnp", SC_HOOK_MUT_NO_NNP },
	{ "mut-no-setsid", SC_HOOK_MUT_NO_SETSID },
	{ "mut-collect-follows", SC_HOOK_MUT_COLLECT_FOLLOWS },
	{ "no-userns-owner", SC_HOOK_NO_USERNS_OWNER },
	{ "no-user-budgets", SC_HOOK_NO_USER_BUDGETS },
	{ "mut-shared-uid", SC_HOOK_MUT_SHARED_UID },
	{ "mut-no-pdeathsig", SC_HOOK_MUT_NO_PDEATHSIG },
	{ "shared-inodes", SC_HOOK_SHARED_INODES },
};

void sc_hooks_load(void)
{
	const char *env = getenv("SANDCELL_TEST_HOOKS");
	size_t i;

	sc_hooks = 0;
	if (env == NULL)
		return;
	for (i = 0; i < sizeof(hook_names) / sizeof(hook_names[0]); i++) {
		const char *p = strstr(env, hook_names[i].name);
		size_t n = strlen(hook_names[i].name);
		if (p && (p == env || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
			sc_hooks |= hook_names[i].bit;
	}
}
#else
/* ISO C forbids an empty translation unit. */
typedef int sc_hooks_unused;
#endif
