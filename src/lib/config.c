/* The defaults of a run: safe, finite limits for every resource (README,
 * "CLI reference").  Kept apart from run.c so parsers and fuzzers can use
 * them without the supervisor. */
#include "internal.h"

#include <string.h>

void sandcell_config_init(struct sandcell_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->python = "/usr/bin/python3";
	cfg->stdin_fd = -1;
	cfg->cancel_fd = -1;
	cfg->stdout_fd = 1;
	cfg->stderr_fd = 2;
	cfg->limits.wall_sec = 30;
	cfg->limits.cpu_sec = 30;
	cfg->limits.memory = 1ull << 30;
	cfg->limits.pids = 128;
	cfg->limits.disk = 512ull << 20;
	cfg->limits.disk_inodes = 16384;
	cfg->limits.files = 256;
	cfg->limits.stream = 8ull << 20;
	cfg->limits.output_files = 1000;
	cfg->limits.output_bytes = 512ull << 20;
	cfg->limits.output_depth = 32;
	cfg->limits.result_bytes = 1ull << 20;
	cfg->limits.cell_bytes = 16ull << 20;
	cfg->limits.cell_outputs = 10000;
	cfg->limits.cell_output_bytes = 8ull << 20;
}
