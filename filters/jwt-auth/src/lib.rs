//! tollgate jwt-auth (work in progress).
