//! tollgate prompt-guard (work in progress).
