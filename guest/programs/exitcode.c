/* exitcode: exits with status 42, or with the decimal status in argv[1],
 * so the VMM can check that a guest's exit status reaches the host. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int status = argc > 1 ? atoi(argv[1]) & 0xff : 42;

    printf("exiting with status %d\n", status);
    return status;
}
