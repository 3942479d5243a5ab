/*
 * What crosses the files of the warm server (sandcell-warm, docs/warm.md).
 */
#ifndef SANDCELL_WARM_SERVER_H
#define SANDCELL_WARM_SERVER_H

#include "internal.h"

/* The server's own Python, src/py/_sandcell_template.py (the template's
 * start) and src/py/_sandcell_warm.py (a run's bootstrap), embedded by
 * tools/embed.sh (warm); ends with { NULL, NULL }.  Never written into a
 * sandbox. */
extern const struct sc_py_file sc_warm_py_files[];

#endif
