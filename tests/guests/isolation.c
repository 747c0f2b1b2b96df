/* isolation: touch guest-physical memory just outside the VM's RAM. Under Godwit there is no
   EPT mapping there, so the VMM stops the VM at the write (exit "memory access outside guest
   RAM") and the report below is never printed. Under QEMU the address is unassigned: writes
   are dropped and reads return a fixed value, which this guest reports and checks. */
#include "guest.h"

int guest_main(void) {
    uint64_t ram = fw_cfg_ram_size();
    if (ram == 0 || ram > 0xB0000000ull) {
        guest_printf("FAIL: need fw_cfg RAM size below 2.75 GiB, have 0x%llx\n", ram);
        return 2;
    }
    uint32_t ram_end = (uint32_t)ram;
    volatile uint32_t* inside = (volatile uint32_t*)(ram_end - 4096);
    *inside = 0xa5a5a5a5;
    guest_printf("isolation: last RAM page 0x%x holds 0x%x\n", (uint32_t)inside, *inside);
    if (*inside != 0xa5a5a5a5) {
        guest_printf("FAIL: RAM below the end does not hold a write\n");
        return 3;
    }
    uint32_t outside_addr = ram_end + 0x1000000; /* 16 MiB past the end of RAM */
    volatile uint32_t* outside = (volatile uint32_t*)outside_addr;
    guest_printf("isolation: RAM ends at 0x%x, writing 0x5a5a5a5a to 0x%x\n", ram_end,
                 outside_addr);
    *outside = 0x5a5a5a5a;
    uint32_t read = *outside;
    guest_printf("isolation: read back 0x%x from outside RAM\n", read);
    if (read == 0x5a5a5a5a) {
        guest_printf("FAIL: memory outside the VM's RAM kept a write\n");
        return 1;
    }
    guest_printf("isolation: PASS (write outside RAM was not retained)\n");
    return 0;
}
