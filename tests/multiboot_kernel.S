/* A Multiboot 1 kernel nobody needs a loader for: it checks EAX, then prints what the
   multiboot_info says on COM1 and ends through the debug-exit port. */
        .text
        .code32
        .globl _start
        .align 4
header: .long 0x1BADB002                /* the Multiboot header, first in .text */
        .long 0x00000003                /* page-aligned modules, memory information */
        .long -(0x1BADB002 + 0x00000003)
_start:
        mov     $stack_top, %esp
        cmp     $0x2BADB002, %eax
        jne     fail
        mov     %ebx, %esi
        mov     $s_magic, %edi
        call    puts
        mov     $s_lower, %edi
        call    puts
        mov     4(%esi), %eax
        call    putdec
        mov     $s_upper, %edi
        call    puts
        mov     8(%esi), %eax
        call    putdec
        mov     $s_mods, %edi
        call    puts
        mov     20(%esi), %eax
        call    putdec
        mov     $s_module, %edi
        call    puts
        mov     24(%esi), %ebx          /* mods_addr */
        mov     0(%ebx), %edi           /* mod_start */
        mov     4(%ebx), %ecx
        sub     %edi, %ecx              /* its length */
        call    putn
        mov     $s_mmap, %edi
        call    puts
        mov     44(%esi), %eax          /* mmap_length */
        mov     48(%esi), %ebx          /* mmap_addr */
        xor     %edx, %edx              /* RAM entries */
1:      test    %eax, %eax
        jle     2f
        cmpl    $1, 20(%ebx)
        jne     3f
        inc     %edx
3:      mov     (%ebx), %ecx
        add     $4, %ecx
        add     %ecx, %ebx
        sub     %ecx, %eax
        jmp     1b
2:      mov     %edx, %eax
        call    putdec
        mov     $s_nl, %edi
        call    puts
        xor     %eax, %eax
        out     %eax, $0xf4
fail:   mov     $1, %eax
        out     %eax, $0xf4
        hlt

putc:   push    %edx
        push    %eax
        mov     $0x3fd, %dx
4:      in      %dx, %al
        test    $0x20, %al
        jz      4b
        pop     %eax
        mov     $0x3f8, %dx
        out     %al, %dx
        pop     %edx
        ret
puts:   movb    (%edi), %al
        test    %al, %al
        jz      5f
        call    putc
        inc     %edi
        jmp     puts
5:      ret
putn:   test    %ecx, %ecx
        jz      6f
        movb    (%edi), %al
        call    putc
        inc     %edi
        dec     %ecx
        jmp     putn
6:      ret
putdec: push    %ebx
        push    %edx
        mov     $10, %ebx
        xor     %ecx, %ecx
7:      xor     %edx, %edx
        div     %ebx
        push    %edx
        inc     %ecx
        test    %eax, %eax
        jnz     7b
8:      pop     %eax
        add     $'0', %al
        call    putc
        loop    8b
        pop     %edx
        pop     %ebx
        ret

        .section .rodata
s_magic:  .asciz "multiboot: magic ok\n"
s_lower:  .asciz "mem_lower="
s_upper:  .asciz " mem_upper="
s_mods:   .asciz "\nmods_count="
s_module: .asciz "\nmodule: "
s_mmap:   .asciz "\nRAM entries in the memory map: "
s_nl:     .asciz "\n"
        .bss
        .align 16
        .skip 4096
stack_top:
