//! tollgate key-inject (work in progress).
