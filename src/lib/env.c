/*
 * The code's environment is fixed, never inherited: no host secrets,
 * tokens or paths leak in.  BLAS and OpenMP pools are pinned to one thread
 * so a run's CPU use matches its pids and CPU limits, and matplotlib draws
 * without a display.
 */
#include "internal.h"

#include <stddef.h>

const char *const sc_env[] = {
	"HOME=/tmp",
	"TMPDIR=/tmp",
	"USER=sandbox",
	"LOGNAME=sandbox",
	"PATH=/usr/local/bin:/usr/bin:/bin",
	"LANG=C.UTF-8",
	"LC_ALL=C.UTF-8",
	"TZ=UTC",
	"MPLBACKEND=Agg",
	"MPLCONFIGDIR=/tmp/.matplotlib",
	"XDG_CACHE_HOME=/tmp/.cache",
	"OPENBLAS_NUM_THREADS=1",
	"OMP_NUM_THREADS=1",
	"MKL_NUM_THREADS=1",
	"NUMEXPR_NUM_THREADS=1",
	"VECLIB_MAXIMUM_THREADS=1",
	"PYTHONDONTWRITEBYTECODE=1",
	"SANDCELL=1",
	NULL,
};
