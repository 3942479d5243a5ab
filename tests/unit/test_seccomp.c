/* The seccomp programs linked into the library (generated at build time by
 * tools/gen-bpf.c) must be exactly what libseccomp compiles from the
 * declared policy now: a stale or hand-edited table fails here. */
#include "internal.h"
#include "unit.h"

#include <linux/filter.h>

static void test_prebuilt_equals_fresh(bool reduced)
{
	struct sandcell_error err = { 0, "" };
	struct sc_bpf used, fresh;

	CHECK(sc_bpf_prebuilt[reduced].len > 0);
	CHECK_EQ_INT(sc_seccomp_compile(&used, reduced, &err), 0);
	CHECK_EQ_INT(sc_seccomp_compile_fresh(&fresh, reduced, &err), 0);
	CHECK_EQ_INT(used.len, fresh.len);
	CHECK(used.len == fresh.len &&
	      memcmp(used.insns, fresh.insns, used.len * sizeof(struct sock_filter)) == 0);
	/* What the library hands out is the linked table, copied. */
	CHECK(used.len == sc_bpf_prebuilt[reduced].len &&
	      memcmp(used.insns, sc_bpf_prebuilt[reduced].insns, used.len * sizeof(struct sock_filter)) == 0);
	CHECK(used.insns != sc_bpf_prebuilt[reduced].insns);
	sc_seccomp_free(&used);
	sc_seccomp_free(&fresh);
}

static void test_modes_differ(void)
{
	struct sandcell_error err = { 0, "" };
	struct sc_bpf full, reduced;

	CHECK_EQ_INT(sc_seccomp_compile(&full, false, &err), 0);
	CHECK_EQ_INT(sc_seccomp_compile(&reduced, true, &err), 0);
	CHECK(full.len != reduced.len ||
	      memcmp(full.insns, reduced.insns, full.len * sizeof(struct sock_filter)) != 0);
	sc_seccomp_free(&full);
	sc_seccomp_free(&reduced);
}

int main(void)
{
	test_prebuilt_equals_fresh(false);
	test_prebuilt_equals_fresh(true);
	test_modes_differ();
	return unit_done("test_seccomp");
}
