/*
 * The Xen PVH boot note (xen/include/public/elfnote.h, XEN_ELFNOTE_PHYS32_ENTRY):
 * its presence tells QEMU's -kernel (and our VMM) that this ELF is entered in
 * 32-bit protected mode at the given physical address with EBX pointing at
 * struct hvm_start_info.
 *
 * The descriptor is 8 bytes (.quad), like Linux's ELFNOTE32(... _ASM_PTR ...)
 * on x86-64: QEMU 7.2's read_pvh_start_addr() reads a size_t from the
 * descriptor of an ELF64 kernel.  The low 4 bytes are the 32-bit entry, so a
 * loader that reads a u32 gets the same value.  The section is 4-aligned
 * because QEMU aligns the name size up to the note segment's p_align.
 */
#include "layout.h"

    .section .note.Xen, "a", @note
    .balign 4
    .long 2f - 1f                   /* namesz */
    .long 4f - 3f                   /* descsz */
    .long XEN_ELFNOTE_PHYS32_ENTRY  /* type */
1:  .asciz "Xen"
2:  .balign 4
3:  .quad pvh_start
4:  .balign 4
