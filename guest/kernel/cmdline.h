/* The kernel command line: options before "--", program arguments after. */
#ifndef CMDLINE_H
#define CMDLINE_H

/* The words after "--" into words[] (NULL-terminated, at most max - 1),
 * taking the kernel options before it; NUL-terminates in place.  Returns
 * how many words. */
int cmdline_args(char *cmdline, char **words, int max);

#endif
