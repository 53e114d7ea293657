/* SPDX-License-Identifier: MIT */
/* The dashboard page, embedded into the binary at build time (.incbin of
 * server/admin/dashboard.html: one self-contained file, plain JavaScript and
 * inline SVG, nothing fetched at run time). */
#include "admin/admin.h"

__asm__(".section .rodata\n"
        ".global adm_page_start\n"
        ".global adm_page_end\n"
        "adm_page_start:\n"
        ".incbin \"server/admin/dashboard.html\"\n"
        "adm_page_end:\n"
        ".byte 0\n"
        ".previous\n");

extern const char adm_page_start[], adm_page_end[];

const char *adm_page(size_t *len) {
  *len = (size_t)(adm_page_end - adm_page_start);
  return adm_page_start;
}
