//! FFI glue: everything that touches FreeRADIUS C types lives below this module.
