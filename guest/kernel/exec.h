/* Starting the user program. */
#ifndef EXEC_H
#define EXEC_H
#include "elf.h"

void exec_start(const struct elf_info *info, int argc, char **argv) __attribute__((noreturn));

#endif
