//! x86_64 syscall numbers and names.
