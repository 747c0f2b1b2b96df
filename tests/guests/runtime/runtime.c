/* Entry from boot.S, exit through the debug-exit port, fw_cfg, Multiboot command line. */
#include "guest.h"

const struct mb1_info* boot_info;

_Noreturn void guest_exit(uint32_t code) {
    guest_printf("guest exit code %u\n", code);
    outl(DEBUG_EXIT_PORT, code);
    /* No debug-exit device (or it did not stop us): park. */
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}

void guest_entry(uint32_t magic, const struct mb1_info* info);
void guest_entry(uint32_t magic, const struct mb1_info* info) {
    serial_init();
    if (magic != MB1_BOOTLOADER_MAGIC) {
        guest_printf("FAIL: bad Multiboot magic 0x%x\n", magic);
        guest_exit(0x7e);
    }
    boot_info = info;
    guest_exit((uint32_t)guest_main());
}

/* fw_cfg traditional interface: 16-bit selector at 0x510, byte-wide data at 0x511. */
#define FW_CFG_PORT_SELECTOR 0x510
#define FW_CFG_PORT_DATA 0x511

void fw_cfg_read(uint16_t key, void* buf, uint32_t len) {
    outw(FW_CFG_PORT_SELECTOR, key);
    uint8_t* p = buf;
    for (uint32_t i = 0; i < len; ++i) {
        p[i] = inb(FW_CFG_PORT_DATA);
    }
}

bool fw_cfg_present(void) {
    char signature[4];
    fw_cfg_read(FW_CFG_SIGNATURE, signature, sizeof signature);
    return signature[0] == 'Q' && signature[1] == 'E' && signature[2] == 'M' && signature[3] == 'U';
}

uint32_t fw_cfg_cpu_count(void) {
    if (!fw_cfg_present()) {
        return 1;
    }
    uint16_t count = 0; /* little-endian, like every fw_cfg integer item */
    fw_cfg_read(FW_CFG_NB_CPUS, &count, sizeof count);
    return count;
}

uint64_t fw_cfg_ram_size(void) {
    if (!fw_cfg_present()) {
        return 0;
    }
    uint64_t size = 0;
    fw_cfg_read(FW_CFG_RAM_SIZE, &size, sizeof size);
    return size;
}

const char* boot_cmdline(void) {
    if (boot_info && (boot_info->flags & (1u << 2)) && boot_info->cmdline) {
        return (const char*)boot_info->cmdline;
    }
    return "";
}

uint32_t cmdline_uint(const char* key, uint32_t def) {
    const char* s = boot_cmdline();
    size_t key_len = 0;
    while (key[key_len]) {
        ++key_len;
    }
    for (; *s; ++s) {
        bool at_word_start = s == boot_cmdline() || s[-1] == ' ';
        size_t i = 0;
        while (i < key_len && s[i] == key[i]) {
            ++i;
        }
        if (at_word_start && i == key_len && s[i] == '=') {
            const char* d = s + i + 1;
            if (*d < '0' || *d > '9') {
                return def;
            }
            uint32_t v = 0;
            for (; *d >= '0' && *d <= '9'; ++d) {
                v = v * 10 + (uint32_t)(*d - '0');
            }
            return v;
        }
    }
    return def;
}
