/* Ending the VM: the debug-exit port carries the status to the host. */
#include "kernel.h"
#include "layout.h"
#include "serial.h"
#include "x86.h"

void vm_exit(uint32_t status)
{
    outl(DEBUG_EXIT_PORT, status);
    /* Still here: no debug-exit device.  Stop the CPU for good. */
    halt_forever();
    __builtin_unreachable();
}

void panic(const char *reason)
{
    serial_start_line();
    serial_puts("panic: ");
    serial_puts(reason);
    serial_puts("\n");
    vm_exit(EXIT_PANIC);
}
