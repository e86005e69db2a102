/* The kernel command line: options before "--", program arguments after. */
#ifndef CMDLINE_H
#define CMDLINE_H

/* Splits cmdline in place.  argv[0] = "init", then every token after a
 * standalone "--".  Returns argc (at most max); argv[argc] = 0. */
int cmdline_args(char *cmdline, char **argv, int max);

#endif
