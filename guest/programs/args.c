/* args: prints argc and argv[1..]; argv[0] is left out because it is the
 * program's path, which differs between the VM and a host run. */
#include <stdio.h>

int main(int argc, char **argv)
{
    printf("argc: %d\n", argc);
    for (int i = 1; i < argc; i++)
        printf("argv[%d]: %s\n", i, argv[i]);
    return 0;
}
