/* echo: reads one line from fd 0 and writes it back as "echo: <line>".
 * read() blocks until input arrives (in the VM the kernel halts until the
 * UART's interrupt), then may return any part of the input (whatever has
 * arrived), so keep reading until a newline or end of input. A line
 * longer than the buffer is cut short; bytes after the newline are dropped. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    char line[256];
    size_t len = 0;

    while (len < sizeof(line) - 1) {
        ssize_t n = read(STDIN_FILENO, line + len, sizeof(line) - 1 - len);
        if (n < 0) {
            printf("echo: read failed: %ld\n", (long)n);
            return 1;
        }
        if (n == 0)
            break;
        char *newline = memchr(line + len, '\n', (size_t)n);
        if (newline) {
            len = (size_t)(newline - line);
            break;
        }
        len += (size_t)n;
    }
    line[len] = '\0';
    printf("echo: %s\n", line);
    return 0;
}
