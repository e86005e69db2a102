/* hello: the smallest program; proves the VM reaches ring 3 and can write. */
#include <stdio.h>

int main(void)
{
    puts("hello from ring 3");
    return 0;
}
