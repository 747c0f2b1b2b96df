/* hello: the smallest useful guest — console, Multiboot info, fw_cfg, exit code. */
#include "guest.h"

int guest_main(void) {
    guest_printf("hello: Godwit test guest\n");
    guest_printf("hello: cmdline '%s'\n", boot_cmdline());
    if (boot_info->flags & 1u) {
        guest_printf("hello: mem_lower %u KiB mem_upper %u KiB\n", boot_info->mem_lower,
                     boot_info->mem_upper);
    }
    if (!fw_cfg_present()) {
        guest_printf("FAIL: no fw_cfg signature at 0x510\n");
        return 2;
    }
    uint32_t id = 0;
    fw_cfg_read(FW_CFG_ID, &id, sizeof id);
    guest_printf("hello: fw_cfg id 0x%x, %u CPU(s), %llu MiB RAM\n", id, fw_cfg_cpu_count(),
                 fw_cfg_ram_size() >> 20);
    guest_printf("hello: PASS\n");
    return 0;
}
