// Placeholder translation unit so the targets configure before any component exists.
// Remove once hypervisor components provide sources.
