/* `sandcell selftest`: checks on this host that the confinement holds. */
#ifndef SANDCELL_CLI_SELFTEST_H
#define SANDCELL_CLI_SELFTEST_H

/* argv[0] is "selftest".  Returns the process exit code: 0 when every
 * check passed, 1 when one failed, 125 on a usage error and 126 when the
 * sandbox cannot start at all. */
int sandcell_selftest(int argc, char **argv);

#endif
