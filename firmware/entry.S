/*
 * From the reset vector to C, and from C to the PVH kernel.
 *
 * Reset state (Intel SDM 3A 9.1.4): real mode, CS selector 0xF000 with base 0xFFFF0000,
 * IP 0xFFF0, so the first instruction is the one at physical 0xFFFFFFF0, the last 16 bytes
 * of this image. Everything 16-bit therefore lies in the image's last 64 KiB and is
 * addressed through CS with 16-bit offsets (addr - 0xFFFF0000).
 *
 * The real-mode part is five instructions: load the ROM GDT, set CR0 to PE|ET (which also
 * clears the reset value's CD and NW, as PVH wants), and far-jump into 32-bit code.
 */
#include "layout.h"

#define CR0_PE  0x01
#define CR0_ET  0x10

/* ---- 16-bit: the first instructions after reset ----------------------------------- */
        .section .text16, "ax"
        .code16
        .globl  reset16
reset16:
        cli
        cld
        lgdtl   %cs:rom_gdt_desc_cs_offset      /* 6-byte descriptor, 32-bit base */
        movl    $(CR0_PE | CR0_ET), %eax
        movl    %eax, %cr0
        ljmpl   $BOOT_CS, $start32              /* 66 EA: 32-bit offset, to 0xFFFFxxxx */

/* The reset vector itself: a near jump within the CS=F000 segment. */
        .section .resetvector, "ax"
        .code16
        jmp     reset16
        .balign 16, 0xF4                        /* pad with hlt to 4 GiB */

/* ---- 32-bit: flat protected mode, paging off ------------------------------------ */
        .text
        .code32
start32:
        movl    $BOOT_DS, %eax
        movl    %eax, %ds
        movl    %eax, %es
        movl    %eax, %ss
        movl    %eax, %fs
        movl    %eax, %gs
        movl    $FW_STACK_TOP, %esp
        call    firmware_main                   /* does not return */
1:      cli
        hlt
        jmp     1b

/*
 * void pvh_enter(uint32_t entry, uint32_t start_info): the PVH entry state (Xen
 * docs/misc/pvh.pandoc), the same as the VMM's direct boot (vmm/arch/x86/pvh.py):
 * GDT at BOOT_GDT_ADDR (the caller copied rom_gdt there), CS/DS/ES/FS/GS/SS flat,
 * TR = the 104-byte TSS at 0, EFLAGS = 2, EBX = &hvm_start_info, every other general
 * register 0. The entry address travels through the last word of the (now dead) stack.
 */
        .globl  pvh_enter
pvh_enter:
        movl    4(%esp), %ecx
        movl    8(%esp), %ebx
        movl    %ecx, FW_STACK_TOP - 4
        lgdtl   boot_gdt_desc
        ljmpl   $BOOT_CS, $1f
1:      movl    $BOOT_DS, %eax
        movl    %eax, %ds
        movl    %eax, %es
        movl    %eax, %ss
        movl    %eax, %fs
        movl    %eax, %gs
        movl    $BOOT_TR, %eax
        ltr     %ax
        xorl    %eax, %eax
        xorl    %ecx, %ecx
        xorl    %edx, %edx
        xorl    %esi, %esi
        xorl    %edi, %edi
        xorl    %ebp, %ebp
        pushl   $2                              /* after the xors, which set flags */
        popfl
        movl    $0, %esp                        /* mov leaves the flags alone */
        jmp     *(FW_STACK_TOP - 4)

/* ---- the GDT, as vmm/arch/x86/pvh.py BOOT_GDT ----------------------------------- */
        .section .rodata
        .balign 8
        .globl  rom_gdt, rom_gdt_end
rom_gdt:
        .quad   0
        .quad   0x00CF9B000000FFFF      /* 0x08 code: base 0, limit 4 GiB, 32-bit, exec/read */
        .quad   0x00CF93000000FFFF      /* 0x10 data: base 0, limit 4 GiB, read/write */
        .quad   0x0000890000000067      /* 0x18 TSS: base 0, limit 0x67, 32-bit available */
rom_gdt_end:

        .balign 4
        .globl  rom_gdt_desc
        .short  0
rom_gdt_desc:                           /* used from real mode: the GDT where it lies in ROM */
        .short  rom_gdt_end - rom_gdt - 1
        .long   rom_gdt
        .short  0
boot_gdt_desc:                          /* used at hand-over: the copy in RAM */
        .short  rom_gdt_end - rom_gdt - 1
        .long   BOOT_GDT_ADDR

        .section .note.GNU-stack, "", @progbits
