/* The system-call table (table.c), read by the entry path (traps.S). */
#ifndef SYSCALL_TABLE_H
#define SYSCALL_TABLE_H
#include <stdint.h>
#include "linux_abi.h"

typedef long (*syscall_fn)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
extern const syscall_fn syscall_table[NR_SYSCALLS];
extern uint8_t syscall_full_path[NR_SYSCALLS];

#endif
