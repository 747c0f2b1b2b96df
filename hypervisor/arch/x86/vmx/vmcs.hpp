// Typed access to the current VMCS (after VMPTRLD): every read and write names a VmcsField.
#pragma once

#include "arch/x86/intrinsics.hpp"
#include "arch/x86/vmx/vmcs_fields.hpp"

namespace godwit::hv::vmx {

inline u64 vmcs_read(VmcsField field) {
    u64 value = 0;
    x86::vmread(static_cast<u64>(field), value);
    return value;
}

// Collects VMWRITE failures so a VMCS set-up can report the first field that was refused.
class VmcsWriter {
  public:
    void write(VmcsField field, u64 value) {
        if (!x86::vmwrite(static_cast<u64>(field), value) && failed_field_ == 0xFFFFFFFF) {
            failed_field_ = static_cast<u32>(field);
        }
    }
    bool ok() const { return failed_field_ == 0xFFFFFFFF; }
    u32 failed_field() const { return failed_field_; }

  private:
    u32 failed_field_ = 0xFFFFFFFF;
};

} // namespace godwit::hv::vmx
