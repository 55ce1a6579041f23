//! seccomp allowlist policies: loading, compiling, installing, and serving denials.
