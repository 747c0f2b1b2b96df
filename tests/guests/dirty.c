/* dirty: the memory-dirtying guest for migration tests. Each pass increments byte 0 of every
   4 KiB page of [start, end) in order and prints a heartbeat "dirty: pass N ..." on COM1.
   Before incrementing it checks the byte still holds the pass number (mod 256), so a
   migration that loses or reorders a page is caught inside the guest.
   Range: from the first page after the kernel image to the end of the Multiboot memory
   region that contains it (or fw_cfg RAM size), limited by cmdline dirty_mb=<MiB>.
   cmdline passes=<N> stops after N passes with exit code 0; default 0 runs forever. */
#include "guest.h"

#define PAGE 4096u

static uint32_t region_end_containing(uint32_t addr) {
    if (boot_info->flags & (1u << 6)) {
        uint32_t p = boot_info->mmap_addr, end = p + boot_info->mmap_length;
        while (p < end) {
            const struct mb1_mmap_entry* e = (const struct mb1_mmap_entry*)p;
            if (e->type == 1 && e->addr <= addr && addr < e->addr + e->len) {
                uint64_t region_end = e->addr + e->len;
                return region_end > 0xFFFFF000ull ? 0xFFFFF000u : (uint32_t)region_end;
            }
            p += e->size + 4;
        }
    }
    uint64_t ram = fw_cfg_ram_size();
    if (ram != 0) {
        return ram > 0xB0000000ull ? 0xB0000000u : (uint32_t)ram;
    }
    return 0x100000u + boot_info->mem_upper * 1024u;
}

int guest_main(void) {
    uint32_t start = ((uint32_t)__image_end + PAGE - 1) & ~(PAGE - 1);
    uint32_t end = region_end_containing(start) & ~(PAGE - 1);
    uint32_t limit_mb = cmdline_uint("dirty_mb", 0);
    if (limit_mb != 0 && limit_mb < (end - start) >> 20) {
        end = start + (limit_mb << 20);
    }
    uint32_t passes = cmdline_uint("passes", 0);
    if (end <= start) {
        guest_printf("FAIL: no memory to dirty (start 0x%x end 0x%x)\n", start, end);
        return 2;
    }
    uint32_t pages = (end - start) / PAGE;
    guest_printf("dirty: range 0x%x-0x%x, %u pages, passes %u (0 = forever)\n", start, end, pages,
                 passes);
    for (uint32_t p = start; p < end; p += PAGE) {
        *(volatile uint8_t*)p = 0;
    }
    for (uint32_t pass = 1; passes == 0 || pass <= passes; ++pass) {
        uint8_t expected = (uint8_t)(pass - 1);
        for (uint32_t p = start; p < end; p += PAGE) {
            volatile uint8_t* byte = (volatile uint8_t*)p;
            if (*byte != expected) {
                guest_printf("FAIL: dirty: page 0x%x holds %u, expected %u in pass %u\n", p, *byte,
                             expected, pass);
                return 3;
            }
            *byte = (uint8_t)(expected + 1);
        }
        guest_printf("dirty: pass %u done, %u pages\n", pass, pages);
    }
    guest_printf("dirty: PASS\n");
    return 0;
}
