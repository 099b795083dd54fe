//! tollgate secret-mask (work in progress).
