//! seccomp BPF filters from OCI profiles (placeholder: being written).
