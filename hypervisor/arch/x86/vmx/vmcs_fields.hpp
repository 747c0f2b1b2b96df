// VMCS field encodings (Intel SDM Vol. 3D, Appendix B "Field Encoding in VMCS"), as one
// enum class read and written through the accessor in vmcs.hpp. An encoding carries its own
// width (bits 14:13), type (bits 11:10) and access type (bit 0); the static_asserts check a
// sample of each group against those rules.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv::vmx {

enum class VmcsField : u32 {
    // 16-bit
    vpid = 0x0000,
    guest_es_selector = 0x0800,
    guest_cs_selector = 0x0802,
    guest_ss_selector = 0x0804,
    guest_ds_selector = 0x0806,
    guest_fs_selector = 0x0808,
    guest_gs_selector = 0x080A,
    guest_ldtr_selector = 0x080C,
    guest_tr_selector = 0x080E,
    guest_pml_index = 0x0812,
    host_es_selector = 0x0C00,
    host_cs_selector = 0x0C02,
    host_ss_selector = 0x0C04,
    host_ds_selector = 0x0C06,
    host_fs_selector = 0x0C08,
    host_gs_selector = 0x0C0A,
    host_tr_selector = 0x0C0C,
    // 64-bit
    io_bitmap_a = 0x2000,
    io_bitmap_b = 0x2002,
    msr_bitmap = 0x2004,
    pml_address = 0x200E,
    tsc_offset = 0x2010,
    ept_pointer = 0x201A,
    xss_exiting_bitmap = 0x202C,
    guest_physical_address = 0x2400,
    vmcs_link_pointer = 0x2800,
    guest_debugctl = 0x2802,
    guest_pat = 0x2804,
    guest_pdpte0 = 0x280A,
    guest_pdpte1 = 0x280C,
    guest_pdpte2 = 0x280E,
    guest_pdpte3 = 0x2810,
    guest_efer = 0x2806,
    host_pat = 0x2C00,
    host_efer = 0x2C02,
    // 32-bit
    pin_based_controls = 0x4000,
    primary_processor_controls = 0x4002,
    exception_bitmap = 0x4004,
    page_fault_error_mask = 0x4006,
    page_fault_error_match = 0x4008,
    cr3_target_count = 0x400A,
    exit_controls = 0x400C,
    exit_msr_store_count = 0x400E,
    exit_msr_load_count = 0x4010,
    entry_controls = 0x4012,
    entry_msr_load_count = 0x4014,
    entry_interruption_info = 0x4016,
    entry_exception_error_code = 0x4018,
    entry_instruction_length = 0x401A,
    secondary_processor_controls = 0x401E,
    vm_instruction_error = 0x4400,
    exit_reason = 0x4402,
    exit_interruption_info = 0x4404,
    exit_interruption_error_code = 0x4406,
    idt_vectoring_info = 0x4408,
    idt_vectoring_error_code = 0x440A,
    exit_instruction_length = 0x440C,
    exit_instruction_info = 0x440E,
    guest_es_limit = 0x4800,
    guest_cs_limit = 0x4802,
    guest_ss_limit = 0x4804,
    guest_ds_limit = 0x4806,
    guest_fs_limit = 0x4808,
    guest_gs_limit = 0x480A,
    guest_ldtr_limit = 0x480C,
    guest_tr_limit = 0x480E,
    guest_gdtr_limit = 0x4810,
    guest_idtr_limit = 0x4812,
    guest_es_access_rights = 0x4814,
    guest_cs_access_rights = 0x4816,
    guest_ss_access_rights = 0x4818,
    guest_ds_access_rights = 0x481A,
    guest_fs_access_rights = 0x481C,
    guest_gs_access_rights = 0x481E,
    guest_ldtr_access_rights = 0x4820,
    guest_tr_access_rights = 0x4822,
    guest_interruptibility = 0x4824,
    guest_activity_state = 0x4826,
    guest_sysenter_cs = 0x482A,
    guest_preemption_timer = 0x482E,
    host_sysenter_cs = 0x4C00,
    // natural width
    cr0_guest_host_mask = 0x6000,
    cr4_guest_host_mask = 0x6002,
    cr0_read_shadow = 0x6004,
    cr4_read_shadow = 0x6006,
    exit_qualification = 0x6400,
    guest_linear_address = 0x640A,
    guest_cr0 = 0x6800,
    guest_cr3 = 0x6802,
    guest_cr4 = 0x6804,
    guest_es_base = 0x6806,
    guest_cs_base = 0x6808,
    guest_ss_base = 0x680A,
    guest_ds_base = 0x680C,
    guest_fs_base = 0x680E,
    guest_gs_base = 0x6810,
    guest_ldtr_base = 0x6812,
    guest_tr_base = 0x6814,
    guest_gdtr_base = 0x6816,
    guest_idtr_base = 0x6818,
    guest_dr7 = 0x681A,
    guest_rsp = 0x681C,
    guest_rip = 0x681E,
    guest_rflags = 0x6820,
    guest_pending_debug = 0x6822,
    guest_sysenter_esp = 0x6824,
    guest_sysenter_eip = 0x6826,
    host_cr0 = 0x6C00,
    host_cr3 = 0x6C02,
    host_cr4 = 0x6C04,
    host_fs_base = 0x6C06,
    host_gs_base = 0x6C08,
    host_tr_base = 0x6C0A,
    host_gdtr_base = 0x6C0C,
    host_idtr_base = 0x6C0E,
    host_sysenter_esp = 0x6C10,
    host_sysenter_eip = 0x6C12,
    host_rsp = 0x6C14,
    host_rip = 0x6C16,
};

enum class FieldWidth : u8 { bits16 = 0, bits64 = 1, bits32 = 2, natural = 3 };
enum class FieldType : u8 { control = 0, read_only = 1, guest_state = 2, host_state = 3 };

constexpr FieldWidth width_of(VmcsField f) {
    return static_cast<FieldWidth>((static_cast<u32>(f) >> 13) & 3);
}
constexpr FieldType type_of(VmcsField f) {
    return static_cast<FieldType>((static_cast<u32>(f) >> 10) & 3);
}
constexpr bool is_high_access(VmcsField f) {
    return (static_cast<u32>(f) & 1) != 0;
}

static_assert(width_of(VmcsField::vpid) == FieldWidth::bits16);
static_assert(width_of(VmcsField::ept_pointer) == FieldWidth::bits64);
static_assert(width_of(VmcsField::exit_reason) == FieldWidth::bits32);
static_assert(width_of(VmcsField::guest_rip) == FieldWidth::natural);
static_assert(type_of(VmcsField::exit_qualification) == FieldType::read_only);
static_assert(type_of(VmcsField::guest_cr0) == FieldType::guest_state);
static_assert(type_of(VmcsField::host_rip) == FieldType::host_state);
static_assert(type_of(VmcsField::primary_processor_controls) == FieldType::control);
static_assert(!is_high_access(VmcsField::guest_efer));

} // namespace godwit::hv::vmx
