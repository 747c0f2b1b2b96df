/* godwit-hcprobe: runs in the root partition's userspace (CPL 3) and checks that the
 * hypervisor refuses hypercalls from there: VMCALL exits to the hypervisor whatever the
 * privilege level, and the ABI (docs/hypercall-abi.md) answers GODWIT_HC_DENIED without
 * looking at the arguments — here deliberately bad ones (a user virtual address, a huge
 * length, an unknown call number). Exit status 0 when every call was denied and the
 * process is still alive to say so. */
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "abi/godwit_hypercall.h"

static uint64_t vmcall(uint64_t call, uint64_t a0, uint64_t a1, uint64_t a2)
{
	uint64_t rax = call;
	__asm__ volatile("vmcall" : "+a"(rax), "+d"(a2) : "D"(a0), "S"(a1) : "memory");
	return rax;
}

int main(void)
{
	unsigned eax, ebx, ecx, edx;
	char signature[13] = {0};
	static char buffer[4096];
	struct {
		const char *what;
		uint64_t call, a0, a1, a2;
	} probes[] = {
		{"VERSION with a user pointer", GODWIT_HC_VERSION, (uint64_t)(uintptr_t)buffer,
		 sizeof(struct godwit_hc_version), 0},
		{"CONSOLE_READ with a huge length", GODWIT_HC_CONSOLE_READ, 0x1000, 1ull << 40, 0},
		{"unknown call 0xdeadbeef", 0xdeadbeef, 0, 0, 0},
	};
	int failures = 0;

	__cpuid(GODWIT_CPUID_LEAF_SIGNATURE, eax, ebx, ecx, edx);
	memcpy(signature, &ebx, 4);
	memcpy(signature + 4, &ecx, 4);
	memcpy(signature + 8, &edx, 4);
	if (strcmp(signature, "GodwitGodwit") != 0) {
		printf("hcprobe: not running on Godwit (CPUID signature '%s')\n", signature);
		return 2;
	}
	for (unsigned i = 0; i < sizeof(probes) / sizeof(probes[0]); ++i) {
		uint64_t status = vmcall(probes[i].call, probes[i].a0, probes[i].a1, probes[i].a2);
		int ok = status == GODWIT_HC_DENIED;
		printf("hcprobe: CPL 3 %s -> status %llu (%s)\n", probes[i].what,
		       (unsigned long long)status, ok ? "denied, as it must be" : "NOT DENIED");
		failures += !ok;
	}
	printf("hcprobe: %s\n", failures ? "FAIL" : "PASS");
	return failures ? 1 : 0;
}
