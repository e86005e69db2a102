/* cpuid: prints what CPUID tells ring 3 about the (virtual) CPU:
 * the vendor (leaf 0), the hypervisor signature (leaf 0x40000000, EBX ECX
 * EDX) and the "running under a hypervisor" bit (leaf 1, ECX bit 31). */
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Twelve characters from three registers, cut at the first NUL and with
 * unprintable bytes shown as '.'. */
static void regs_to_text(char out[13], uint32_t r0, uint32_t r1, uint32_t r2)
{
    memcpy(out, &r0, 4);
    memcpy(out + 4, &r1, 4);
    memcpy(out + 8, &r2, 4);
    out[12] = '\0';
    for (int i = 0; out[i]; i++)
        if (out[i] < 0x20 || out[i] > 0x7e)
            out[i] = '.';
}

int main(void)
{
    uint32_t a, b, c, d;
    char text[13];

    __cpuid(0, a, b, c, d);
    regs_to_text(text, b, d, c);            /* "Genu" "ineI" "ntel" */
    printf("vendor: %s\n", text);

    __cpuid(0x40000000, a, b, c, d);
    regs_to_text(text, b, c, d);
    printf("hypervisor: %s\n", text);

    __cpuid(1, a, b, c, d);
    printf("hypervisor-bit: %u\n", (c >> 31) & 1);
    return 0;
}
