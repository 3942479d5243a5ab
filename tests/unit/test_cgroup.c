/* cgroup.c's pure decisions: whether --memory bounds swap on this host. */
#include "internal.h"
#include "unit.h"

static const char header[] = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
static const char one_area[] = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
			       "/swapfile                               file\t\t1048572\t\t0\t\t-2\n";

static void test_swap_state(void)
{
	/* A limit written (v2 memory.swap.max = 0 or v1 memsw) bounds swap
	 * whatever /proc/swaps says. */
	CHECK_STR(sc_cgroup_swap_state(true, true, one_area), "limited");
	CHECK_STR(sc_cgroup_swap_state(true, true, ""), "limited");
	/* No accounting: harmless only without swap. */
	CHECK_STR(sc_cgroup_swap_state(true, false, header), "no-swap");
	CHECK_STR(sc_cgroup_swap_state(true, false, ""), "no-swap");
	CHECK_STR(sc_cgroup_swap_state(true, false, one_area), "unlimited");
	/* /proc/swaps unreadable: assume swap (fail closed). */
	CHECK_STR(sc_cgroup_swap_state(true, false, NULL), "unlimited");
	CHECK_STR(sc_cgroup_swap_state(true, true, NULL), "limited");
	/* No memory cgroup at all: nothing is bounded by it. */
	CHECK_STR(sc_cgroup_swap_state(false, false, one_area), "none");
	CHECK_STR(sc_cgroup_swap_state(false, true, ""), "none");
}

int main(void)
{
	test_swap_state();
	return unit_done("test_cgroup");
}
