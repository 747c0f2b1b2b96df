# godwit_freestanding_target(<target>): flags for the bare-metal hypervisor image.
# Freestanding C++20: no exceptions, no RTTI, no hosted libstdc++ (only freestanding
# headers such as <cstdint>, <type_traits>, <bit>, <atomic>, <new>), no red zone (interrupts
# and VM exits use the same stack), no SSE in generated code (the guest's FPU state is the
# guest's), statically linked at a fixed address by hypervisor/linker.ld.
function(godwit_freestanding_target target)
  target_compile_definitions(${target} PRIVATE GODWIT_FREESTANDING=1)
  target_compile_options(${target} PRIVATE
    -ffreestanding -fno-builtin -nostdlib -fno-stack-protector -fno-pic -fno-pie
    -mno-red-zone -mgeneral-regs-only -mcmodel=small -fno-asynchronous-unwind-tables
    -fno-tree-loop-distribute-patterns --param=min-pagesize=0
    -fno-omit-frame-pointer -Wall -Wextra
    $<$<COMPILE_LANGUAGE:ASM>:-Wa,--noexecstack>
    $<$<COMPILE_LANGUAGE:CXX>:-fno-exceptions -fno-rtti -fno-threadsafe-statics -fno-use-cxa-atexit>
    $<$<BOOL:${GODWIT_WERROR}>:-Werror>)
  target_link_options(${target} PRIVATE
    -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,max-page-size=0x1000
    -Wl,-T,${PROJECT_SOURCE_DIR}/hypervisor/linker.ld)
  target_link_libraries(${target} PRIVATE gcc)
  set_target_properties(${target} PROPERTIES LINK_DEPENDS ${PROJECT_SOURCE_DIR}/hypervisor/linker.ld)
endfunction()
